//! Validated identifiers and paths: `StageName` and `ProjectPath`.
//!
//! Everything that comes from `amt.toml` is parsed into these types at the edge,
//! so the rest of the engine never sees an absolute path, a `..` or an empty name.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why a stage name or project path was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("stage name is empty")]
    EmptyStage,
    #[error("stage name `{0}` may only use letters, digits, `_`, `-` and `.`")]
    BadStageChar(String),
    #[error("path is empty")]
    EmptyPath,
    #[error("path `{0}` is absolute; paths are relative to the project root")]
    Absolute(String),
    #[error("path `{0}` contains `..`; paths must stay inside the project")]
    ParentDir(String),
}

/// The name of a stage, as declared by `[stages.NAME]`. Safe to use as a file name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StageName(String);

impl StageName {
    /// Validates a stage name.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::EmptyStage);
        }
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if !s.chars().all(ok) || s.starts_with('.') {
            return Err(NameError::BadStageChar(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StageName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<StageName> for String {
    fn from(n: StageName) -> String {
        n.0
    }
}

impl fmt::Display for StageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A normalised path relative to the project root, with `/` separators,
/// no `.` or `..` components and no trailing slash.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProjectPath(String);

impl ProjectPath {
    /// Parses and normalises a path written in `amt.toml`.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.starts_with('/') || Path::new(s).is_absolute() {
            return Err(NameError::Absolute(s.to_owned()));
        }
        let mut parts = Vec::new();
        for part in s.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(NameError::ParentDir(s.to_owned())),
                p => parts.push(p),
            }
        }
        if parts.is_empty() {
            return Err(NameError::EmptyPath);
        }
        Ok(Self(parts.join("/")))
    }

    /// The normalised path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where this path lives on disk under `root`.
    pub fn to_fs(&self, root: &Path) -> PathBuf {
        root.join(&self.0)
    }

    /// A child of this path. `name` must be a single component.
    pub fn join(&self, name: &str) -> Self {
        Self(format!("{}/{}", self.0, name))
    }

    /// True when `self` is `other` or one of its ancestors.
    pub fn contains(&self, other: &ProjectPath) -> bool {
        other.0 == self.0
            || (other.0.len() > self.0.len()
                && other.0.starts_with(&self.0)
                && other.0.as_bytes()[self.0.len()] == b'/')
    }

    /// True when either path contains the other.
    pub fn overlaps(&self, other: &ProjectPath) -> bool {
        self.contains(other) || other.contains(self)
    }
}

impl TryFrom<String> for ProjectPath {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ProjectPath> for String {
    fn from(p: ProjectPath) -> String {
        p.0
    }
}

impl fmt::Display for ProjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised() {
        assert_eq!(ProjectPath::parse("./a//b/").unwrap().as_str(), "a/b");
        assert_eq!(ProjectPath::parse("a/./b").unwrap().as_str(), "a/b");
    }

    #[test]
    fn paths_outside_the_project_are_refused() {
        assert!(matches!(
            ProjectPath::parse("/etc/passwd"),
            Err(NameError::Absolute(_))
        ));
        assert!(matches!(
            ProjectPath::parse("a/../../b"),
            Err(NameError::ParentDir(_))
        ));
        assert!(matches!(
            ProjectPath::parse("./"),
            Err(NameError::EmptyPath)
        ));
    }

    #[test]
    fn containment_respects_component_boundaries() {
        let a = ProjectPath::parse("data/raw").unwrap();
        assert!(a.contains(&ProjectPath::parse("data/raw/x.csv").unwrap()));
        assert!(a.contains(&a));
        assert!(!a.contains(&ProjectPath::parse("data/raw2").unwrap()));
        assert!(!a.contains(&ProjectPath::parse("data").unwrap()));
        assert!(a.overlaps(&ProjectPath::parse("data").unwrap()));
    }

    #[test]
    fn stage_names_are_file_safe() {
        assert!(StageName::parse("train-2.small_x").is_ok());
        assert!(StageName::parse("a/b").is_err());
        assert!(StageName::parse(".hidden").is_err());
        assert!(StageName::parse("").is_err());
    }
}
