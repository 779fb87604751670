//! `[params]`: a tree of values addressed by dotted keys (`train.lr`).
//!
//! [`ParamKey`] is a validated dotted key and [`Params`] owns the tree; this
//! is the one module that walks it: lookups, the leaves a stage declares,
//! overlays (profiles, sweep points) and the canonical form that enters
//! action keys.

use std::fmt;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

/// A dotted key into `[params]`: non-empty segments of letters, digits, `_` and `-`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ParamKey(String);

/// A key that cannot be, or is not, in `[params]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("`{0}` is not a param key (dotted names of letters, digits, `_` and `-`)")]
    BadKey(String),
    #[error("`{key}` is not defined in [params]{hint}")]
    Unknown { key: String, hint: String },
    #[error("`{key}` is a table in [params]; set the keys inside it (`{key}.…`)")]
    Table { key: String },
    #[error("`{key}` is {expected} in [params], not {found}")]
    Type {
        key: String,
        expected: &'static str,
        found: &'static str,
    },
}

/// A TOML value's kind, for messages.
fn kind(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

impl ParamKey {
    /// Validates a dotted key.
    pub fn parse(s: &str) -> Result<Self, ParamError> {
        let ok = |seg: &str| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if s.split('.').all(ok) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParamError::BadKey(s.to_owned()))
        }
    }

    /// The key as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its segments, outermost first.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }

    /// True when `self` is `other` or lies inside it (`train.lr` within `train`).
    pub fn within(&self, other: &ParamKey) -> bool {
        self.0 == other.0
            || (self.0.len() > other.0.len()
                && self.0.starts_with(&other.0)
                && self.0.as_bytes()[other.0.len()] == b'.')
    }

    /// True when either key lies within the other.
    pub fn overlaps(&self, other: &ParamKey) -> bool {
        self.within(other) || other.within(self)
    }

    /// `AMT_PARAM_TRAIN_LR` for `train.lr`.
    pub fn env_var(&self) -> String {
        let upper: String = self
            .0
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("AMT_PARAM_{upper}")
    }

    fn child(&self, segment: &str) -> ParamKey {
        ParamKey(format!("{}.{segment}", self.0))
    }
}

impl TryFrom<String> for ParamKey {
    type Error = ParamError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ParamKey> for String {
    fn from(k: ParamKey) -> String {
        k.0
    }
}

impl fmt::Display for ParamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `[params]` tree.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params(toml::Table);

impl Params {
    /// The tree as parsed from `amt.toml`.
    pub fn new(table: toml::Table) -> Self {
        Self(table)
    }

    /// The value (a leaf or a table) at `key`.
    pub fn get(&self, key: &ParamKey) -> Option<&toml::Value> {
        let mut segments = key.segments();
        let mut value = self.0.get(segments.next()?)?;
        for s in segments {
            value = value.as_table()?.get(s)?;
        }
        Some(value)
    }

    /// Every key, tables included, sorted.
    pub fn keys(&self) -> Vec<ParamKey> {
        fn walk(prefix: Option<&ParamKey>, t: &toml::Table, out: &mut Vec<ParamKey>) {
            for (k, v) in t {
                let key = match prefix {
                    Some(p) => p.child(k),
                    None => ParamKey(k.clone()),
                };
                if let toml::Value::Table(sub) = v {
                    walk(Some(&key), sub, out);
                }
                out.push(key);
            }
        }
        let mut out = Vec::new();
        walk(None, &self.0, &mut out);
        out.sort();
        out
    }

    /// The leaves at or under `key`: the value itself, or every leaf of a
    /// table (an empty table is a leaf), so a change to one value inside a
    /// declared table is reported by its own key.
    pub fn leaves(&self, key: &ParamKey) -> Vec<(ParamKey, &toml::Value)> {
        fn walk<'a>(key: ParamKey, v: &'a toml::Value, out: &mut Vec<(ParamKey, &'a toml::Value)>) {
            match v {
                toml::Value::Table(t) if !t.is_empty() => {
                    for (k, sub) in t {
                        walk(key.child(k), sub, out);
                    }
                }
                _ => out.push((key, v)),
            }
        }
        let mut out = Vec::new();
        if let Some(v) = self.get(key) {
            walk(key.clone(), v, &mut out);
        }
        out
    }

    /// Every leaf of the tree.
    pub fn all_leaves(&self) -> Vec<(ParamKey, &toml::Value)> {
        let mut out = Vec::new();
        for k in self.0.keys() {
            out.extend(self.leaves(&ParamKey(k.clone())));
        }
        out
    }

    /// The error for a key `[params]` does not define, with the nearest one.
    pub fn unknown(&self, key: &str) -> ParamError {
        let keys = self.keys();
        let hint = crate::config::suggest(key, keys.iter().map(ParamKey::as_str))
            .map_or(String::new(), |s| format!("; did you mean `{s}`?"));
        ParamError::Unknown {
            key: key.to_owned(),
            hint,
        }
    }

    /// Checks that `key` is defined.
    pub fn require(&self, key: &str) -> Result<ParamKey, ParamError> {
        let k = ParamKey::parse(key)?;
        match self.get(&k) {
            Some(_) => Ok(k),
            None => Err(self.unknown(key)),
        }
    }

    /// Replaces the value at a defined key with one of the same kind (an
    /// integer may stand for a float); a table is replaced key by key, never
    /// as a whole.
    pub fn set(&mut self, key: &ParamKey, value: toml::Value) -> Result<(), ParamError> {
        let value = match (self.get(key), value) {
            (None, _) => return Err(self.unknown(key.as_str())),
            (Some(toml::Value::Table(_)), _) => {
                return Err(ParamError::Table {
                    key: key.to_string(),
                })
            }
            (Some(toml::Value::Float(_)), toml::Value::Integer(i)) => toml::Value::Float(i as f64),
            (Some(old), new) if std::mem::discriminant(old) != std::mem::discriminant(&new) => {
                return Err(ParamError::Type {
                    key: key.to_string(),
                    expected: kind(old),
                    found: kind(&new),
                });
            }
            (Some(_), new) => new,
        };
        let segments: Vec<&str> = key.segments().collect();
        let (last, parents) = segments.split_last().expect("keys have a segment");
        let mut table = &mut self.0;
        for s in parents {
            table = match table.get_mut(*s) {
                Some(toml::Value::Table(t)) => t,
                _ => return Err(self_unknown(key)),
            };
        }
        match table.get_mut(*last) {
            Some(slot) => {
                *slot = value;
                Ok(())
            }
            None => Err(self_unknown(key)),
        }
    }

    /// Applies every leaf of `overlay` (a profile): each must name a defined
    /// key and keep its kind; a table in the overlay sets the leaves inside
    /// it (an empty one sets nothing), never the table.
    pub fn overlay(&mut self, overlay: &toml::Table) -> Result<(), ParamError> {
        let patch = Params(overlay.clone());
        for (key, value) in patch.all_leaves() {
            if value.as_table().is_some_and(|t| t.is_empty()) {
                continue;
            }
            self.set(&key, value.clone())?;
        }
        Ok(())
    }

    /// The tree as a JSON object, values in canonical form.
    pub fn to_json(&self) -> serde_json::Value {
        to_json(&toml::Value::Table(self.0.clone()))
    }
}

fn self_unknown(key: &ParamKey) -> ParamError {
    ParamError::Unknown {
        key: key.to_string(),
        hint: String::new(),
    }
}

/// Canonical JSON text for a value: tables with sorted keys, floats in
/// shortest round-trip form (so `3e-4` and `0.0003` hash alike), NaN and the
/// infinities as strings, datetimes as their TOML text.
pub fn canonical(value: &toml::Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

/// The canonical form as a JSON value.
pub fn to_json(value: &toml::Value) -> serde_json::Value {
    serde_json::from_str(&canonical(value)).expect("canonical text is JSON")
}

/// Parses canonical text back into JSON (as the engine stores it in records).
pub fn json_of_canonical(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("canonical text is JSON")
}

/// A JSON object that nests each value under its dotted key.
pub fn nest<'a>(leaves: impl IntoIterator<Item = (&'a str, serde_json::Value)>) -> serde_json::Value {
    let mut root = serde_json::Map::new();
    for (key, value) in leaves {
        let mut node = &mut root;
        let mut parts = key.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                node.insert(part.to_owned(), value);
                break;
            }
            let entry = node
                .entry(part.to_owned())
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if !entry.is_object() {
                *entry = serde_json::Value::Object(serde_json::Map::new());
            }
            node = entry.as_object_mut().expect("just made an object");
        }
    }
    serde_json::Value::Object(root)
}

fn write_canonical(value: &toml::Value, out: &mut String) {
    use toml::Value::*;
    match value {
        String(s) => out.push_str(&serde_json::to_string(s).expect("strings serialise")),
        Integer(i) => write!(out, "{i}").expect("writing to a String"),
        Float(f) if f.is_nan() => out.push_str("\"nan\""),
        Float(f) if f.is_infinite() => out.push_str(if *f > 0.0 { "\"inf\"" } else { "\"-inf\"" }),
        Float(f) => write!(out, "{f:?}").expect("writing to a String"),
        Boolean(b) => write!(out, "{b}").expect("writing to a String"),
        Datetime(d) => {
            out.push_str(&serde_json::to_string(&d.to_string()).expect("strings serialise"))
        }
        Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Table(t) => {
            out.push('{');
            let mut keys: Vec<_> = t.keys().collect();
            keys.sort();
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).expect("strings serialise"));
                out.push(':');
                write_canonical(&t[k], out);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(text: &str) -> Params {
        Params::new(toml::from_str(text).unwrap())
    }

    fn key(s: &str) -> ParamKey {
        ParamKey::parse(s).unwrap()
    }

    #[test]
    fn keys_are_validated_and_nest() {
        assert!(ParamKey::parse("train.lr").is_ok());
        assert!(ParamKey::parse("train..lr").is_err());
        assert!(ParamKey::parse("").is_err());
        assert!(ParamKey::parse("a b").is_err());
        assert!(key("train.lr").within(&key("train")));
        assert!(!key("train2").within(&key("train")));
        assert_eq!(key("train.lr").env_var(), "AMT_PARAM_TRAIN_LR");
    }

    #[test]
    fn lookups_leaves_and_keys() {
        let p = params("[train]\nlr = 3e-4\nopt = { beta = 0.9 }\n[model]\nlayers = 2");
        assert_eq!(p.get(&key("train.lr")).and_then(|v| v.as_float()), Some(3e-4));
        assert!(p.get(&key("train.x")).is_none());
        let leaves: Vec<String> = p.leaves(&key("train")).iter().map(|(k, _)| k.to_string()).collect();
        assert_eq!(leaves, ["train.lr", "train.opt.beta"]);
        let keys: Vec<String> = p.keys().iter().map(|k| k.to_string()).collect();
        assert_eq!(keys, ["model", "model.layers", "train", "train.lr", "train.opt", "train.opt.beta"]);
    }

    #[test]
    fn overlays_set_leaves_and_refuse_unknown_keys() {
        let mut p = params("[train]\nlr = 3e-4\nsteps = 400\n[model]\npreset = \"tiny\"");
        let dev: toml::Table = toml::from_str("train.steps = 20\nmodel = { preset = \"small\" }").unwrap();
        p.overlay(&dev).unwrap();
        assert_eq!(p.get(&key("train.steps")).and_then(|v| v.as_integer()), Some(20));
        assert_eq!(p.get(&key("train.lr")).and_then(|v| v.as_float()), Some(3e-4), "untouched");
        assert_eq!(p.get(&key("model.preset")).and_then(|v| v.as_str()), Some("small"));
        let typo: toml::Table = toml::from_str("train.stepz = 1").unwrap();
        let e = p.overlay(&typo).unwrap_err().to_string();
        assert_eq!(e, "`train.stepz` is not defined in [params]; did you mean `train.steps`?");
    }

    #[test]
    fn overlays_keep_each_values_kind_and_never_replace_a_table() {
        let mut p = params("[train]\nlr = 3e-4\nsteps = 400\n[model]\npreset = \"tiny\"");
        let overlay = |text: &str| toml::from_str::<toml::Table>(text).unwrap();
        let e = p.clone().overlay(&overlay("model = \"big\"")).unwrap_err().to_string();
        assert_eq!(e, "`model` is a table in [params]; set the keys inside it (`model.…`)");
        let e = p.clone().overlay(&overlay("train.steps = \"forty\"")).unwrap_err().to_string();
        assert_eq!(e, "`train.steps` is an integer in [params], not a string");
        // An empty table sets nothing; an integer may stand for a float.
        p.overlay(&overlay("train = {}\n")).unwrap();
        assert_eq!(p.get(&key("train.steps")).and_then(|v| v.as_integer()), Some(400));
        p.overlay(&overlay("train.lr = 1")).unwrap();
        assert_eq!(p.get(&key("train.lr")), Some(&toml::Value::Float(1.0)));
    }

    #[test]
    fn canonical_values_ignore_spelling_and_key_order() {
        let a: toml::Table = toml::from_str("x = { b = 3e-4, a = [1, \"s\"] }").unwrap();
        let b: toml::Table = toml::from_str("x = { a = [1, \"s\"], b = 0.0003 }").unwrap();
        assert_eq!(canonical(&a["x"]), canonical(&b["x"]));
        assert_eq!(canonical(&a["x"]), r#"{"a":[1,"s"],"b":0.0003}"#);
        assert_eq!(to_json(&a["x"])["b"], 0.0003);
    }

    #[test]
    fn nesting_builds_objects() {
        let v = nest([("a.b", 1.into()), ("a.c", 2.into()), ("d", "x".into())]);
        assert_eq!(v, serde_json::json!({"a": {"b": 1, "c": 2}, "d": "x"}));
    }
}
