"""Writes stages/tests/fixtures/minilm_reference.json: sentence-transformers'
embeddings of 128 varied texts, the reference for the Rust BERT parity test.

Run once, in a venv with sentence-transformers (scripts/setup.sh's `ref` venv):
    $AMT_HOME/venv-ref/bin/python scripts/make_embedding_fixture.py models/all-MiniLM-L6-v2
The model directory is the one the Rust encoder loads, so both read the same weights.
"""

import itertools
import json
import sys

from sentence_transformers import SentenceTransformer

HANDWRITTEN = [
    "a calm waltz in D minor for strings",
    "An energetic reel in G major played on fiddle and tin whistle, 132 BPM.",
    "Slow, melancholic chorale for four-part choir in F minor.",
    "bossa nova groove with nylon guitar, brushed drums and upright bass",
    "",
    " ",
    "A",
    "jazz",
    "Allegro (144 BPM): a lively march in B-flat major for brass band.",
    "A dark, driving techno track at 128 bpm with a pounding kick and acid synth lines.",
    "Ein ruhiges Volkslied in C-Dur für Klavier.",
    "Une valse mélancolique en la mineur pour accordéon.",
    "Un tango apasionado en re menor para bandoneón y violín.",
    "古筝演奏的宁静中国民歌",
    "日本の伝統的な尺八の曲",
    "Мелодия в ми миноре для скрипки",
    "emoji test 🎻🎹🥁 — a happy tune!",
    "UPPER CASE CAPTION WITH SHOUTING",
    "tabs\tand\nnewlines\nin the text",
    "punctuation!!! ??? ... ;;; ---",
    "numbers 3/4 6/8 7/8 120 BPM 44.1kHz",
    "The Kesh is a traditional Irish jig in G major, often played in sessions.",
    "Hey Jude is a song by the English rock band the Beatles, released in August 1968.",
    "A short hymn in 4/4 time, set in E-flat major, for church organ.",
    "Ragtime piano piece with syncopated right hand over a stride left hand.",
    "Lullaby in 6/8 with a gentle celesta melody and soft pads.",
    "Polka for accordion and tuba in a bright 2/4.",
    "Heavy metal riff in drop D with distorted guitars and double bass drums.",
    "Minimalist piano loop in C major, repeating arpeggios, very slow.",
    "A cheerful children's song with xylophone and ukulele.",
]

# A text far beyond the model's 256-token limit, to check truncation.
LONG = " ".join(
    f"Bar {i} of the fugue brings back the subject in the {voice} voice, now in {key}."
    for i, (voice, key) in enumerate(itertools.islice(itertools.cycle(
        itertools.product(["soprano", "alto", "tenor", "bass"], ["C major", "A minor", "G major", "E minor", "F major"])), 60))
)

moods = ["calm", "melancholic", "joyful", "dark", "lively", "wistful", "gentle", "driving"]
forms = ["waltz", "reel", "jig", "chorale", "march", "tango", "ballad", "nocturne"]
keys = ["C major", "A minor", "D major", "B minor", "E-flat major", "F-sharp minor"]
ensembles = ["piano", "string quartet", "brass band", "solo violin", "jazz trio", "choir"]
# 96 distinct combinations, spread over the whole product.
combos = list(itertools.product(moods, forms, keys, ensembles))
GENERATED = [f"A {m} {f} in {k} for {e}." for (m, f, k, e) in combos[::len(combos) // 96][:96]]
assert len(set(GENERATED)) == 96

texts = HANDWRITTEN + [LONG, LONG] + GENERATED  # LONG twice: duplicates must embed identically
assert len(texts) == 128, len(texts)

model = SentenceTransformer(sys.argv[1], device="cpu")
vectors = model.encode(texts, batch_size=16, normalize_embeddings=True, convert_to_numpy=True)
out = {
    "model": "sentence-transformers/all-MiniLM-L6-v2",
    "max_seq_length": model.max_seq_length,
    "texts": texts,
    "vectors": [[float(x) for x in v] for v in vectors],
}
with open("stages/tests/fixtures/minilm_reference.json", "w", encoding="utf-8") as f:
    json.dump(out, f, ensure_ascii=False)
    f.write("\n")
print(f"wrote {len(texts)} texts x {vectors.shape[1]} dims")
