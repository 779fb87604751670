//! A tiny caption template language: `{field}` placeholders, and `[ … ]`
//! optional groups that vanish when any field inside them is missing.
//!
//! `"A {mood} {form}[ in {key}][ for {instruments}]."` with no instruments
//! renders as `"A calm reel in D major."`.

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(String),
    Group(Vec<Piece>),
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
}

/// A template that cannot be used, with the position of the problem.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("template {template:?}: {message} at character {at}")]
pub struct TemplateError {
    template: String,
    message: String,
    at: usize,
}

impl Template {
    /// Parses a template; every field must be one of `fields`.
    pub fn parse(source: &str, fields: &[&str]) -> Result<Self, TemplateError> {
        let err = |message: String, at: usize| TemplateError {
            template: source.to_owned(),
            message,
            at,
        };
        let mut stack: Vec<Vec<Piece>> = vec![Vec::new()];
        let mut text = String::new();
        let mut chars = source.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some((_, '}')) => break,
                            Some((_, c)) => name.push(c),
                            None => return Err(err("unclosed `{`".into(), i)),
                        }
                    }
                    if !fields.contains(&name.as_str()) {
                        return Err(err(
                            format!("unknown field `{name}` (known: {})", fields.join(", ")),
                            i,
                        ));
                    }
                    let top = stack.last_mut().expect("never empty");
                    if !text.is_empty() {
                        top.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    top.push(Piece::Field(name));
                }
                '[' => {
                    if stack.len() > 1 {
                        return Err(err("groups do not nest".into(), i));
                    }
                    if !text.is_empty() {
                        stack[0].push(Piece::Text(std::mem::take(&mut text)));
                    }
                    stack.push(Vec::new());
                }
                ']' => {
                    if stack.len() < 2 {
                        return Err(err("`]` without `[`".into(), i));
                    }
                    let mut group = stack.pop().expect("checked");
                    if !text.is_empty() {
                        group.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    stack[0].push(Piece::Group(group));
                }
                '}' => return Err(err("`}` without `{`".into(), i)),
                c => text.push(c),
            }
        }
        if stack.len() > 1 {
            return Err(err("unclosed `[`".into(), source.len()));
        }
        if !text.is_empty() {
            stack[0].push(Piece::Text(text));
        }
        Ok(Self {
            source: source.to_owned(),
            pieces: stack.pop().expect("never empty"),
        })
    }

    /// Renders with the given values. A missing field outside a group renders
    /// as nothing; inside a group it drops the whole group.
    pub fn render(&self, values: &BTreeMap<&str, String>) -> String {
        fn walk(pieces: &[Piece], values: &BTreeMap<&str, String>, out: &mut String) -> bool {
            for p in pieces {
                match p {
                    Piece::Text(t) => out.push_str(t),
                    Piece::Field(f) => match values.get(f.as_str()) {
                        Some(v) => out.push_str(v),
                        None => return false,
                    },
                    Piece::Group(g) => {
                        let mut part = String::new();
                        if walk(g, values, &mut part) {
                            out.push_str(&part);
                        }
                    }
                }
            }
            true
        }
        let mut out = String::new();
        for p in &self.pieces {
            walk(std::slice::from_ref(p), values, &mut out);
        }
        let out = out.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut chars = out.chars();
        match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => out,
        }
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_vanish_when_a_field_is_missing() {
        let t = Template::parse(
            "a {mood} {form}[ in {key}][ for {instruments}].",
            &["mood", "form", "key", "instruments"],
        )
        .unwrap();
        let mut v = BTreeMap::from([
            ("mood", "calm".to_owned()),
            ("form", "reel".to_owned()),
            ("key", "D major".to_owned()),
        ]);
        assert_eq!(t.render(&v), "A calm reel in D major.");
        v.insert("instruments", "fiddle".into());
        assert_eq!(t.render(&v), "A calm reel in D major for fiddle.");
    }

    #[test]
    fn bad_templates_say_where() {
        let e = Template::parse("a {moood}", &["mood"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "template \"a {moood}\": unknown field `moood` (known: mood) at character 2"
        );
        assert!(Template::parse("a [b", &[]).is_err());
        assert!(Template::parse("a [[b]]", &[]).is_err());
        assert!(Template::parse("a ]", &[]).is_err());
    }
}
