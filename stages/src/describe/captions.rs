//! MidiCaps-style captions written from a piece's features and its
//! collection's labels: key, tempo (Italian term or plain word, and BPM), time
//! signature, main instruments by playing time, a duration word, mood and
//! energy, and tune type, groove and region where the manifest has them.
//!
//! Several templates give varied order; optional fields are dropped at random.
//! The randomness is seeded by the caption seed and the piece's path, so the
//! same inputs always give the same caption.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use crate::manifest::Labels;
use super::template::{Template, TemplateError};
use crate::collect::table::PieceRow;
use crate::midi::key::Key;

/// The fields a template may use.
pub const FIELDS: &[&str] = &[
    "mood",
    "energy",
    "form",
    "key",
    "tempo",
    "bpm",
    "tempo_word",
    "meter",
    "instruments",
    "duration",
    "region",
    "groove",
];

/// Fields that may be dropped at random; the rest are always present.
const DROPPABLE: &[&str] = &[
    "key",
    "tempo",
    "bpm",
    "meter",
    "instruments",
    "duration",
    "region",
    "groove",
];

/// The built-in templates.
pub const DEFAULT_TEMPLATES: &[&str] = &[
    "a {mood} {form}[ in {key}][ for {instruments}][, {tempo}][, in {meter}][, from {region}].",
    "[{tempo}: ]a {energy}[ {duration}] {form}[ in {key}][ played by {instruments}][ in {meter}].",
    "this[ {duration}] {form} is {mood} and {energy}[, in {key}][ with {instruments}][ at {bpm} BPM][ in {meter}][. Origin: {region}].",
    "[a {groove} groove, ]{energy} and {mood}[, in {key}][, {meter}][, {tempo}][, featuring {instruments}].",
    "[a {form} from {region}, ]{mood} in character[, in {key}][, {tempo}][, scored for {instruments}][, in {meter}].",
];

/// `[params] describe.captions.*`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptionParams {
    /// Templates to choose from (default: [`DEFAULT_TEMPLATES`]).
    #[serde(default)]
    pub templates: Option<Vec<String>>,
    /// Chance that each optional field is left out.
    #[serde(default = "default_drop")]
    pub drop_probability: f64,
    /// Seed for template choice, dropped fields and word choice.
    #[serde(default)]
    pub seed: u64,
    /// Captions per piece in `captions.parquet`, each from its own seed
    /// (none of them the training text's): evaluate's held-out prompts.
    #[serde(default = "default_heldout")]
    pub heldout: u32,
}

fn default_heldout() -> u32 {
    7
}

fn default_drop() -> f64 {
    0.25
}

impl Default for CaptionParams {
    fn default() -> Self {
        Self {
            templates: None,
            drop_probability: default_drop(),
            seed: 0,
            heldout: default_heldout(),
        }
    }
}

/// Writes captions.
pub struct Captioner {
    templates: Vec<Template>,
    drop_probability: f64,
    seed: u64,
}

impl Captioner {
    /// Validates the templates.
    pub fn new(params: &CaptionParams) -> Result<Self, TemplateError> {
        let sources: Vec<String> = match &params.templates {
            Some(t) if !t.is_empty() => t.clone(),
            _ => DEFAULT_TEMPLATES.iter().map(|s| (*s).to_owned()).collect(),
        };
        let templates = sources
            .iter()
            .map(|s| Template::parse(s, FIELDS))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            templates,
            drop_probability: params.drop_probability.clamp(0.0, 1.0),
            seed: params.seed,
        })
    }

    /// The same captioner with another seed.
    pub fn reseeded(&self, seed: u64) -> Self {
        Self {
            templates: self.templates.clone(),
            drop_probability: self.drop_probability,
            seed,
        }
    }

    /// The seed of held-out caption `variant`: never the training text's.
    pub fn heldout_seed(&self, variant: u32) -> u64 {
        self.seed.wrapping_add(1 + u64::from(variant))
    }

    fn rng(&self, path: &str) -> ChaCha8Rng {
        let mut h = blake3::Hasher::new();
        h.update(&self.seed.to_le_bytes());
        h.update(path.as_bytes());
        ChaCha8Rng::from_seed(*h.finalize().as_bytes())
    }

    /// The caption of one piece.
    pub fn caption(&self, piece: &PieceRow, labels: Option<&Labels>) -> String {
        let mut rng = self.rng(&piece.path);
        let default_labels = Labels::default();
        let labels = labels.unwrap_or(&default_labels);
        let mut values = fields(piece, labels, &mut rng);
        for f in DROPPABLE {
            if rng.random_bool(self.drop_probability) {
                values.remove(f);
            }
        }
        let template = &self.templates[rng.random_range(0..self.templates.len())];
        template.render(&values)
    }
}

fn pick<'a>(rng: &mut ChaCha8Rng, words: &[&'a str]) -> &'a str {
    words[rng.random_range(0..words.len())]
}

pub use crate::midi::tempo::{tempo_plain, tempo_term};

fn duration_word(seconds: f64) -> &'static str {
    match seconds {
        s if s < 30.0 => "short",
        s if s < 90.0 => "medium-length",
        s if s < 240.0 => "long",
        _ => "very long",
    }
}

/// `["a", "b", "c"]` → `"a, b and c"`.
fn join(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// `"BossaNova"` → `"bossa nova"`.
fn split_camel(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && c.is_uppercase() {
            out.push(' ');
        }
        out.extend(c.to_lowercase());
    }
    out
}

fn ensemble(piece: &PieceRow, labels: &Labels) -> Option<String> {
    let satb = ["soprano", "alto", "tenor", "bass"];
    let parts: Vec<String> = labels
        .part_names
        .iter()
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    if !parts.is_empty() {
        if parts.iter().all(|p| satb.contains(&p.as_str())) {
            return Some("a four-part choir".into());
        }
        let mut unique: Vec<String> = Vec::new();
        for p in parts {
            if !unique.contains(&p) {
                unique.push(p);
            }
        }
        unique.truncate(4);
        return Some(join(&unique));
    }
    let mut names: Vec<String> = piece
        .instruments
        .iter()
        .take(3)
        .map(|n| n.to_lowercase())
        .collect();
    if piece.has_drums {
        names.push("drums".into());
    }
    (!names.is_empty()).then(|| join(&names))
}

fn is_minor(key: &str) -> bool {
    let k = key.to_lowercase();
    ["minor", "dorian", "phrygian", "aeolian", "locrian"]
        .iter()
        .any(|m| k.contains(m))
}

/// Every field's value for one piece (before random dropping).
fn fields(
    piece: &PieceRow,
    labels: &Labels,
    rng: &mut ChaCha8Rng,
) -> BTreeMap<&'static str, String> {
    let mut v = BTreeMap::new();
    let bpm = piece.mean_tempo_bpm;
    let key = labels.key.clone().or_else(|| {
        piece
            .estimated_key
            .as_ref()
            .and_then(|k| Key::parse(k))
            .map(|k| k.words())
    });
    let minor = key.as_deref().is_some_and(is_minor);
    if let Some(k) = key {
        v.insert("key", k);
    }
    v.insert("bpm", format!("{bpm:.0}"));
    v.insert("tempo_word", tempo_term(bpm).to_owned());
    let tempo = if rng.random_bool(0.5) {
        format!("{} ({bpm:.0} BPM)", tempo_term(bpm))
    } else {
        format!("at a {} {bpm:.0} BPM", tempo_plain(bpm))
    };
    v.insert("tempo", tempo);
    v.insert(
        "meter",
        format!(
            "{} time",
            piece.time_signatures.first().map_or("4/4", String::as_str)
        ),
    );
    if let Some(e) = ensemble(piece, labels) {
        v.insert("instruments", e);
    }
    v.insert("duration", duration_word(piece.duration_s).to_owned());

    // Mood from the mode and the collection's expression words; energy from tempo, density and loudness.
    let mood = if let Some(word) = labels.mood_words.first() {
        word.to_lowercase()
    } else if minor {
        pick(rng, &["melancholic", "wistful", "dark", "sombre"]).to_owned()
    } else {
        pick(rng, &["bright", "cheerful", "joyful", "uplifting"]).to_owned()
    };
    v.insert("mood", mood);
    let density = piece.note_density.unwrap_or(0.0);
    let loud = piece.velocity_mean.unwrap_or(64.0);
    let arousal = (bpm - 60.0) / 120.0 + density / 12.0 + (loud - 64.0) / 128.0;
    let energy = match arousal {
        a if a < 0.45 => pick(rng, &["calm", "gentle", "relaxed"]),
        a if a < 1.0 => pick(rng, &["steady", "flowing", "lilting"]),
        _ => pick(rng, &["lively", "energetic", "driving"]),
    };
    v.insert("energy", energy.to_owned());

    let groove = labels.groove_family.as_deref().map(split_camel);
    let form = labels
        .tune_type
        .as_ref()
        .map(|t| t.to_lowercase())
        .or_else(|| groove.as_ref().map(|g| format!("{g} piece")));
    v.insert(
        "form",
        form.unwrap_or_else(|| pick(rng, &["piece", "tune", "composition"]).to_owned()),
    );
    if let Some(g) = groove {
        v.insert("groove", g);
    }
    let region = labels.region.clone().or_else(|| {
        let a = piece.artist.as_deref()?;
        a.strip_prefix("Traditional (")
            .and_then(|r| r.strip_suffix(')'))
            .map(str::to_owned)
    });
    if let Some(r) = region {
        v.insert("region", r);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece() -> PieceRow {
        PieceRow {
            path: "folk/Traditional (Ireland)/The Kesh.mid".into(),
            artist: Some("Traditional (Ireland)".into()),
            title: "The Kesh".into(),
            duration_s: 42.0,
            first_tempo_bpm: 120.0,
            mean_tempo_bpm: 120.0,
            time_signatures: vec!["6/8".into()],
            key_signatures: vec!["G Major".into()],
            instruments: vec!["Violin".into()],
            has_drums: false,
            n_notes: 200,
            velocity_mean: Some(90.0),
            note_density: Some(4.8),
            estimated_key: Some("G Major".into()),
        }
    }

    #[test]
    fn captions_are_deterministic_and_vary_with_the_seed() {
        let c = Captioner::new(&CaptionParams::default()).unwrap();
        let labels = Labels {
            tune_type: Some("Jig".into()),
            ..Labels::default()
        };
        let a = c.caption(&piece(), Some(&labels));
        assert_eq!(a, c.caption(&piece(), Some(&labels)));
        let variants: std::collections::BTreeSet<String> = (0..20)
            .map(|s| {
                Captioner::new(&CaptionParams {
                    seed: s,
                    ..CaptionParams::default()
                })
                .unwrap()
                .caption(&piece(), Some(&labels))
            })
            .collect();
        assert!(variants.len() > 5, "{variants:?}");
    }

    #[test]
    fn nothing_is_dropped_at_probability_zero() {
        let c = Captioner::new(&CaptionParams {
            templates: Some(vec![
                "{form} in {key}, {meter}[, for {instruments}][, from {region}]".into(),
            ]),
            drop_probability: 0.0,
            seed: 1,
            heldout: 0,
        })
        .unwrap();
        let labels = Labels {
            tune_type: Some("Jig".into()),
            ..Labels::default()
        };
        assert_eq!(
            c.caption(&piece(), Some(&labels)),
            "Jig in G major, 6/8 time, for violin, from Ireland"
        );
    }

    #[test]
    fn word_tables() {
        assert_eq!(tempo_term(72.0), "Adagio");
        assert_eq!(tempo_term(132.0), "Allegro");
        assert_eq!(tempo_plain(190.0), "very fast");
        assert_eq!(split_camel("BossaNova"), "bossa nova");
        assert_eq!(join(&["a".into(), "b".into(), "c".into()]), "a, b and c");
    }
}
