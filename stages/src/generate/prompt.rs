//! Musical attributes named in a prompt: tempo (BPM, an Italian term or a
//! plain word), key, time signature and instruments. Whatever the text does
//! not mention stays `None` (the N/A token), as in captions with dropped fields.
//! The stretches of text that were read are kept, so that the words that
//! named nothing can be shown: only the semantic token hears those.

use std::ops::Range;

use crate::midi::gm;
use crate::midi::key::Key;
use crate::tokenizer::grid::nearest_time_signature;
use crate::tokenizer::prefix::tempo_class;
use crate::midi::tempo::{TEMPO_TERMS, typical_bpm};
use crate::tokenizer::vocab::TIME_SIGNATURES;

/// What a prompt asks for; `None` where it says nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attributes {
    pub tempo_class: Option<u32>,
    /// The BPM asked for: as written, or typical of the tempo word used.
    pub bpm: Option<f64>,
    pub key: Option<Key>,
    pub time_signature: Option<(u8, u32)>,
    /// Instrument families in the order named (program / 8, 16 for drums).
    pub instruments: Vec<u8>,
    /// The byte ranges of the text read as attributes (a negated tempo word
    /// with its negation included: it was read, and means no tempo).
    pub read: Vec<Range<usize>>,
}

/// An attribute's value and the bytes of the text that named it.
type Found<T> = (T, Range<usize>);

/// Words that carry no meaning of their own here: articles, prepositions,
/// conjunctions and the glue around attributes ("in 6/8 time").
const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "the", "in", "on", "of", "for", "with", "and", "or", "by", "to", "at", "from",
    "into", "as", "is", "it", "its", "that", "this", "then", "but", "played", "playing",
    "plays", "key", "time", "tempo", "bpm",
];

/// The words of `text` (letters and digits) with their byte offsets.
fn words_at(text: &str, separator: impl Fn(char) -> bool) -> Vec<(usize, &str)> {
    let mut words = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (separator(c), start) {
            (true, Some(s)) => {
                words.push((s, &text[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        words.push((s, &text[s..]));
    }
    words
}

/// The words of `text` that named no attribute and say something (not a
/// function word), in order, lowercased and without repeats.
pub fn unread(text: &str, read: &[Range<usize>]) -> Vec<String> {
    let words = words_at(text, |c| !c.is_alphanumeric());
    let inside = |at: usize, word: &str| read.iter().any(|r| r.start < at + word.len() && at < r.end);
    // A word read once is read wherever it stands ("a slow, slow air").
    let read_words: Vec<String> = words
        .iter()
        .filter(|(at, w)| inside(*at, w))
        .map(|(_, w)| w.to_lowercase())
        .collect();
    let mut out: Vec<String> = Vec::new();
    for (at, word) in words {
        let lower = word.to_lowercase();
        if inside(at, word)
            || read_words.contains(&lower)
            || FUNCTION_WORDS.contains(&lower.as_str())
            || out.contains(&lower)
        {
            continue;
        }
        out.push(lower);
    }
    out
}

/// Plain tempo words and a BPM typical of each: the middle of a tempo
/// class (MidiCaps bin) inside the range the captions use the word for.
const TEMPO_WORDS: &[(&str, f64)] = &[
    ("very fast", 185.0),
    ("very slow", 50.0),
    ("slow", 65.0),
    ("moderate", 100.0),
    ("fast", 150.0),
];

/// Words for instrument families besides the General MIDI program names.
const FAMILY_WORDS: &[(&str, u8)] = &[
    ("drums", 16),
    ("drum kit", 16),
    ("percussion", 16),
    ("piano", 0),
    ("keyboard", 0),
    ("organ", 2),
    ("guitar", 3),
    ("bass", 4),
    ("strings", 5),
    ("fiddle", 5),
    ("string quartet", 5),
    ("choir", 6),
    ("voices", 6),
    ("brass", 7),
    ("saxophone", 8),
    ("woodwinds", 8),
    ("flute", 9),
    ("whistle", 9),
    ("synth", 10),
    ("synth strings", 6),
    ("string ensemble", 6),
];

/// Byte offsets where `phrase` occurs in `text` as whole words.
fn find_words(text: &str, phrase: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find(phrase) {
        let at = from + i;
        let end = at + phrase.len();
        let before = at == 0 || !bytes[at - 1].is_ascii_alphanumeric();
        // A plural "s" still names the instrument ("violins").
        let after = end == bytes.len()
            || !bytes[end].is_ascii_alphanumeric()
            || (bytes[end] == b's'
                && (end + 1 == bytes.len() || !bytes[end + 1].is_ascii_alphanumeric()));
        if before && after {
            found.push(at);
        }
        from = at + 1;
    }
    found
}

/// Where the negation of the phrase at byte `at` of `text` starts, if it is
/// negated ("not fast", "never too slow").
fn negation(text: &str, at: usize) -> Option<usize> {
    let before = words_at(&text[..at], char::is_whitespace);
    let neg = |w: &str| matches!(w.trim_matches(|c: char| !c.is_alphanumeric()), "not" | "never" | "no");
    match before.as_slice() {
        [.., (s, w)] if neg(w) => Some(*s),
        [.., (s, w), (_, "too" | "so" | "overly")] if neg(w) => Some(*s),
        _ => None,
    }
}

/// The tempo named first, with the span that named it, and the spans of
/// negated tempo words.
fn tempo(text: &str) -> (Option<Found<f64>>, Vec<Range<usize>>) {
    let words = words_at(text, |c| c.is_whitespace() || c == '(' || c == ')' || c == ',');
    for (i, &(at, w)) in words.iter().enumerate() {
        let number = w.trim_end_matches("bpm");
        let next = words.get(i + 1).filter(|(_, n)| n.starts_with("bpm"));
        let followed = w.ends_with("bpm") && number.len() < w.len() || next.is_some();
        if followed
            && let Ok(bpm) = number.parse::<f64>()
            && bpm > 0.0
        {
            let end = match next {
                Some(&(n_at, n)) if number.len() == w.len() => n_at + n.len(),
                _ => at + w.len(),
            };
            return (Some((bpm, at..end)), negated_tempo_words(text));
        }
    }
    // The tempo named first wins, an Italian term or a plain word ("a fast
    // reel with a slow intro" is fast); at one place the longer phrase
    // ("very slow" over "slow"); a negated one does not count ("not too fast").
    let named = tempo_words()
        .flat_map(|(w, bpm)| {
            let len = w.len();
            find_words(text, &w).into_iter().map(move |at| (at, len, bpm))
        })
        .filter(|&(at, _, _)| negation(text, at).is_none())
        .min_by_key(|&(at, len, _)| (at, usize::MAX - len))
        .map(|(at, len, bpm)| (bpm, at..at + len));
    (named, negated_tempo_words(text))
}

/// Every tempo word the lowercased text is searched for, with a BPM typical
/// of it: the Italian terms of [`TEMPO_TERMS`], then the plain words.
fn tempo_words() -> impl Iterator<Item = (String, f64)> {
    let terms = TEMPO_TERMS
        .iter()
        .enumerate()
        .map(|(i, (term, _))| (term.to_lowercase(), typical_bpm(i)));
    terms.chain(TEMPO_WORDS.iter().map(|&(w, bpm)| (w.to_owned(), bpm)))
}

/// Each negated tempo term or word, from its negation to its end ("not too fast").
fn negated_tempo_words(text: &str) -> Vec<Range<usize>> {
    tempo_words()
        .flat_map(|(w, _)| {
            let len = w.len();
            find_words(text, &w)
                .into_iter()
                .filter_map(move |at| negation(text, at).map(|from| from..at + len))
        })
        .collect()
}

/// The key named in `text`: a tonic before "major" or "minor". "A" or "a"
/// with no accidental is the article when a word follows in its clause ("a
/// minor ballad", "A major work") unless "in", "of", "to" or "key" comes
/// before it ("in a minor", "modulates to a minor").
fn key(text: &str) -> Option<Found<Key>> {
    let mut offset = 0;
    for clause in text.split([',', '.', ';', ':', '!', '?', '(', ')']) {
        let clause_at = offset;
        offset += clause.len() + 1;
        let spans = words_at(clause, char::is_whitespace);
        let words: Vec<String> = spans.iter().map(|(_, w)| w.to_lowercase()).collect();
        for (i, w) in words.iter().enumerate() {
            let minor = match w.as_str() {
                "major" | "maj" => false,
                "minor" | "min" => true,
                _ => continue,
            };
            // "D major", "F# minor", or "B flat major".
            let before = |n: usize| i.checked_sub(n);
            let (tonic_at, accidental) = match before(1).map(|j| words[j].as_str()) {
                Some("sharp") => (before(2), "#"),
                Some("flat") => (before(2), "b"),
                _ => (before(1), ""),
            };
            let Some(at) = tonic_at else { continue };
            let introduced = at
                .checked_sub(1)
                .is_some_and(|j| matches!(words[j].as_str(), "in" | "of" | "to" | "key"));
            let article = words[at] == "a" && accidental.is_empty() && i + 1 < words.len() && !introduced;
            if article {
                continue;
            }
            if let Some(k) = Key::from_tonic(&format!("{}{accidental}", words[at]), minor) {
                let (start, (end_at, end_word)) = (spans[at].0, spans[i]);
                return Some((k, clause_at + start..clause_at + end_at + end_word.len()));
            }
        }
    }
    None
}

fn meter(text: &str) -> Option<Found<(u8, u32)>> {
    for (at, w) in words_at(text, |c| !(c.is_ascii_digit() || c == '/')) {
        if let Some((n, d)) = w.split_once('/')
            && let (Ok(n), Ok(d)) = (n.parse::<u8>(), d.parse::<u32>())
            && n > 0
            && d.is_power_of_two()
        {
            let ts = nearest_time_signature(n, d);
            return TIME_SIGNATURES.contains(&ts).then_some((ts, at..at + w.len()));
        }
    }
    let at = *find_words(text, "waltz").first()?;
    Some(((3, 4), at..at + "waltz".len()))
}

/// The families named, and the spans of every name read.
fn instruments(text: &str, most: usize) -> (Vec<u8>, Vec<Range<usize>>) {
    let mut found: Vec<(usize, usize, u8)> = Vec::new();
    for (program, name) in gm::PROGRAM_NAMES.iter().enumerate() {
        let name = name.to_lowercase();
        let name = name.split(" (").next().unwrap_or(&name).to_owned();
        for at in find_words(text, &name) {
            found.push((at, usize::MAX - name.len(), program as u8 / 8));
        }
    }
    for &(word, family) in FAMILY_WORDS {
        for at in find_words(text, word) {
            found.push((at, usize::MAX - word.len(), family));
        }
    }
    // By position, the longest name first; a name inside one already read
    // is not read again ("bass" in "acoustic bass", "strings" in "synth strings").
    found.sort();
    let mut families = Vec::new();
    let mut read = Vec::new();
    let mut covered = 0;
    for (at, shorter, family) in found {
        if at < covered {
            continue;
        }
        covered = at + (usize::MAX - shorter);
        if families.contains(&family) {
            read.push(at..covered);
        } else if families.len() < most {
            families.push(family);
            read.push(at..covered);
        }
    }
    (families, read)
}

/// Reads the attributes a prompt names; at most `most_instruments` instrument families.
pub fn parse(text: &str, most_instruments: usize) -> Attributes {
    // ASCII lowercasing keeps every byte where it was, so spans fit `text`.
    // (It differs from full lowercasing only for U+212A and U+0130, which
    // lowercase to ASCII letters and are read as themselves here.)
    let lower = text.to_ascii_lowercase();
    let (tempo, mut read) = tempo(&lower);
    let key = key(text);
    let meter = meter(&lower);
    let (instruments, names) = instruments(&lower, most_instruments);
    read.extend(tempo.iter().map(|t| t.1.clone()));
    read.extend(key.iter().map(|k| k.1.clone()));
    read.extend(meter.iter().map(|m| m.1.clone()));
    read.extend(names);
    read.sort_by_key(|r| (r.start, r.end));
    let bpm = tempo.map(|t| t.0);
    Attributes {
        tempo_class: bpm.map(tempo_class),
        bpm,
        key: key.map(|k| k.0),
        time_signature: meter.map(|m| m.0),
        instruments,
        read,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tempo_from_bpm_terms_and_words() {
        assert_eq!(
            parse("a reel at 132 BPM", 3).tempo_class,
            Some(tempo_class(132.0))
        );
        assert_eq!(
            parse("a reel at 132bpm", 3).tempo_class,
            Some(tempo_class(132.0))
        );
        assert_eq!(
            parse("Allegro (140 BPM)", 3).tempo_class,
            Some(tempo_class(140.0))
        );
        assert_eq!(parse("an Adagio for strings", 3).tempo_class, Some(3));
        assert_eq!(parse("a slow air", 3).tempo_class, Some(tempo_class(65.0)));
        assert_eq!(
            parse("a very fast reel", 3).tempo_class,
            Some(tempo_class(185.0))
        );
        assert_eq!(parse("a reel at 132 BPM", 3).bpm, Some(132.0));
        assert_eq!(
            parse("an Adagio", 3).bpm,
            Some(71.0),
            "the middle of Adagio's 66–76"
        );
        assert_eq!(parse("a tune", 3).tempo_class, None);
        assert_eq!(
            parse("a fast reel with a slow intro", 3).bpm,
            Some(150.0),
            "the tempo named first"
        );
        assert_eq!(parse("a very slow air, never fast", 3).bpm, Some(50.0));
        assert_eq!(parse("not too fast, slow and sad", 3).bpm, Some(65.0), "negated");
        assert_eq!(parse("a fast reel, moderato middle", 3).bpm, Some(150.0));
        // Each word's BPM lies inside the range the captions use it for
        // (they have no "very slow").
        for (word, bpm) in TEMPO_WORDS.iter().filter(|(w, _)| *w != "very slow") {
            assert_eq!(crate::midi::tempo::tempo_plain(*bpm), *word, "{word}");
        }
        assert_eq!(parse("an adagio, never presto", 3).bpm, Some(71.0));
    }

    #[test]
    fn reads_keys() {
        assert_eq!(parse("a jig in D major", 3).key, Key::parse("D major"));
        assert_eq!(parse("in A minor, slow", 3).key, Key::parse("A minor"));
        assert_eq!(parse("in F# minor", 3).key, Key::parse("F# minor"));
        assert_eq!(parse("in B flat major", 3).key, Key::parse("Bb major"));
        assert_eq!(parse("in Eb major", 3).key, Key::parse("Eb major"));
        assert_eq!(parse("a major work", 3).key, None, "'a' is the article");
        assert_eq!(
            parse("a minor ballad in F major", 3).key,
            Key::parse("F major"),
            "the article does not hide the key named later"
        );
        assert_eq!(parse("a ballad in a minor", 3).key, Key::parse("A minor"));
        assert_eq!(parse("A minor ballad", 3).key, None, "the article, capitalised");
        assert_eq!(parse("A major work in D minor", 3).key, Key::parse("D minor"));
        assert_eq!(parse("sad piano tune, a minor", 3).key, Key::parse("A minor"));
        assert_eq!(parse("key: a minor", 3).key, Key::parse("A minor"));
        assert_eq!(parse("it modulates to a minor", 3).key, Key::parse("A minor"));
        assert_eq!(parse("a flat major nocturne", 3).key, Key::parse("Ab major"));
        assert_eq!(parse("a sharp minor study", 3).key, Key::parse("A# minor"));
        assert_eq!(parse("a ballad in the key of a major", 3).key, Key::parse("A major"));
        assert_eq!(
            parse("minor-key feel, major lift, in G minor", 3).key,
            Key::parse("G minor"),
            "a leading 'major' or 'minor' does not stop the search"
        );
        assert_eq!(parse("Major scales in E flat major", 3).key, Key::parse("Eb major"));
        assert_eq!(parse("a cheerful tune", 3).key, None);
    }

    #[test]
    fn says_which_words_named_nothing() {
        let unread_in = |t: &str| unread(t, &parse(t, 3).read);
        assert_eq!(
            unread_in("a cheerful jig in D major, 6/8, played on fiddle"),
            ["cheerful", "jig"]
        );
        // An explicit BPM wins; the term beside it is not what was read.
        assert_eq!(unread_in("Allegro (140 BPM) for string quartet"), ["allegro"]);
        assert_eq!(unread_in("a reel at 132 bpm"), ["reel"]);
        // Only the tempo named first is read; the other is not.
        assert_eq!(unread_in("a fast reel with a slow intro"), ["reel", "slow", "intro"]);
        // A negated tempo is read (it means: not that tempo).
        assert_eq!(unread_in("not too fast, slow and sad"), ["sad"]);
        assert_eq!(unread_in("a ballad in B flat major"), ["ballad"]);
        // "harp" names no General MIDI program or family word on its own.
        assert_eq!(unread_in("a waltz for violins and a dreamy, dreamy harp"), ["dreamy", "harp"]);
        assert_eq!(unread_in("Élégie für Bratsche"), ["élégie", "für", "bratsche"]);
        // A word that named an attribute is read where it repeats, too.
        assert_eq!(unread_in("a slow, slow air in 6/8, 6/8"), ["air"]);
        // A negation is read beside an explicit BPM as well.
        assert_eq!(unread_in("not fast, 140 bpm"), Vec::<String>::new());
        let a = parse("in F# minor", 3);
        assert_eq!(a.read, vec![3..11], "the tonic with its accidental and the mode");
    }

    #[test]
    fn reads_meters_and_instruments() {
        assert_eq!(parse("in 6/8 time", 3).time_signature, Some((6, 8)));
        assert_eq!(parse("a waltz", 3).time_signature, Some((3, 4)));
        assert_eq!(parse("in 4/4", 3).time_signature, Some((4, 4)));
        assert_eq!(parse("a tune", 3).time_signature, None);
        assert_eq!(
            parse("for violin, piano and drums", 3).instruments,
            vec![5, 0, 16]
        );
        assert_eq!(
            parse("for Acoustic Bass and flute", 3).instruments,
            vec![4, 9]
        );
        assert_eq!(
            parse("for Soprano Sax and Bassoon", 3).instruments,
            vec![8],
            "both reeds; 'bass' is not in 'Bassoon'"
        );
        assert_eq!(parse("for violins and cellos", 3).instruments, vec![5]);
        assert_eq!(
            parse("synth strings and piano", 3).instruments,
            vec![6, 0],
            "synth strings are an ensemble, neither synth lead nor strings"
        );
        assert_eq!(parse("a synth lead over strings", 3).instruments, vec![10, 5]);
        assert_eq!(
            parse("synth strings, then strings", 3).instruments,
            vec![6, 5],
            "a name read inside a longer one still counts where it stands alone"
        );
        assert_eq!(parse("synth strings with a synth solo", 3).instruments, vec![6, 10]);
        assert!(parse("a cheerful tune", 3).instruments.is_empty());
    }

    #[test]
    fn reads_at_most_the_instruments_asked_for() {
        let band = "for violin, piano, drums, flute, trumpet, organ and guitar";
        assert_eq!(parse(band, 6).instruments, vec![5, 0, 16, 9, 7, 2]);
        assert_eq!(parse(band, 3).instruments, vec![5, 0, 16]);
        let read = parse(band, 6).read;
        assert!(
            !read.iter().any(|r| band[r.clone()].contains("guitar")),
            "a seventh family is not read, so the prompt says it was not understood"
        );
    }
}
