//! The contract between the engine and the built-in stages: each stage's
//! name, summary, code version, the sources behind that version and the
//! machine facts its bytes depend on, and the protocols any stage's command
//! speaks: its invocation (the variables amt sets) and its progress reports.
//! It depends on nothing heavy, so the `amt` binary can register the stages
//! without linking what they use (libtorch makes every start of a binary
//! that links it cost about half a second). The stages themselves run in the
//! `amt-stage` binary.

pub mod invocation;
mod list;
pub mod progress;
#[cfg(test)]
mod lock;
#[cfg(test)]
#[allow(dead_code)]
mod reach;

pub use list::{FACTS, PROBE_MODULE, PROBE_VARS, TORCH_VARS};

/// A built-in stage's public description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuiltinInfo {
    /// The name used by `builtin = "…"` in amt.toml.
    pub name: &'static str,
    /// The module of `stages/src` that implements it.
    pub module: &'static str,
    /// A digest of the sources the stage's code reaches, Cargo.lock and the
    /// compiler version, computed at build time.
    pub version: &'static str,
    /// One line for `amt stage --list`.
    pub summary: &'static str,
    /// The files of `stages/` behind `version`.
    pub sources: &'static [&'static str],
    /// The machine facts (see [`FACTS`]) that enter the stage's action key.
    pub facts: &'static [&'static str],
}

include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// Finds a built-in stage by name.
pub fn builtin(name: &str) -> Option<&'static BuiltinInfo> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// The binary that runs built-in stages, installed next to `amt`.
pub const STAGE_BINARY: &str = "amt-stage";

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use super::*;

    fn stages_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn sources(stage: &str) -> BTreeSet<&'static str> {
        builtin(stage).unwrap().sources.iter().copied().collect()
    }

    /// Only stages whose code uses libtorch or draws charts depend on those facts.
    #[test]
    fn facts_follow_the_code() {
        let facts = |s: &str| builtin(s).unwrap().facts.to_vec();
        assert_eq!(facts("collect"), Vec::<&str>::new());
        assert_eq!(facts("prepare"), Vec::<&str>::new());
        assert_eq!(facts("embed"), ["libtorch", "cpu", "torch_env", "cuda"]);
        // cluster reads embed's vectors, not the encoder that made them.
        assert_eq!(facts("cluster"), Vec::<&str>::new());
        // generate draws no charts.
        assert_eq!(facts("generate"), ["libtorch", "cpu", "torch_env", "cuda"]);
        assert_eq!(facts("train"), ["libtorch", "cpu", "torch_env", "cuda", "font"]);
        assert_eq!(facts("evaluate"), ["libtorch", "cpu", "torch_env", "cuda", "font"]);
    }

    #[test]
    fn the_list_is_in_pipeline_order_and_complete() {
        let names: Vec<&str> = BUILTINS.iter().map(|b| b.name).collect();
        assert_eq!(
            names,
            ["collect", "describe", "embed", "cluster", "prepare", "train", "generate", "evaluate"]
        );
    }

    /// The cases a hand-kept list got wrong: each stage reaches what its code uses.
    #[test]
    fn stages_reach_the_code_they_use() {
        for b in BUILTINS {
            let s = sources(b.name);
            assert!(s.contains("src/lib.rs"), "{}", b.name);
            assert!(s.contains("src/bin/amt-stage.rs"), "{}", b.name);
            assert!(s.contains("src/context.rs"), "{}", b.name);
        }
        let train = sources("train");
        for f in ["src/tokenizer/mod.rs", "src/tokenizer/grid.rs", "src/midi/mod.rs"] {
            assert!(train.contains(f), "train misses {f}: {train:?}");
        }
        assert!(sources("evaluate").contains("src/cluster/tokens.rs"));
        assert!(sources("cluster").contains("src/embed/vectors.rs"));
        assert!(sources("train").contains("src/prepare/shard.rs"));
    }

    /// Editing a stage does not rerun stages that cannot run its code.
    #[test]
    fn stages_do_not_reach_code_they_cannot_run() {
        let train = sources("train");
        assert!(!train.iter().any(|f| f.starts_with("src/evaluate/")), "{train:?}");
        assert!(!train.iter().any(|f| f.starts_with("src/generate/")), "{train:?}");
        let collect = sources("collect");
        for dir in ["src/model/", "src/train/", "src/tokenizer/", "src/embed/", "src/facts.rs"] {
            assert!(!collect.iter().any(|f| f.starts_with(dir)), "{collect:?}");
        }
        assert!(!sources("prepare").iter().any(|f| f.starts_with("src/train/")));
        // A reader of an artifact reaches the module that owns its schema,
        // not the code of the stage that writes it.
        let cluster = sources("cluster");
        for f in ["src/embed/mod.rs", "src/embed/encode.rs", "src/embed/bert.rs"] {
            assert!(!cluster.contains(f), "cluster reaches {f}");
        }
        for stage in ["describe", "prepare"] {
            assert!(!sources(stage).contains("src/collect/mod.rs"), "{stage} reaches collect's code");
        }
        let generate = sources("generate");
        for f in [
            "src/train/mod.rs",
            "src/train/eval.rs",
            "src/train/data.rs",
            "src/train/optim.rs",
            "src/cluster/kmeans.rs",
        ] {
            assert!(!generate.contains(f), "generate reaches {f}");
        }
        let evaluate = sources("evaluate");
        for f in ["src/prepare/mod.rs", "src/train/mod.rs", "src/cluster/mod.rs"] {
            assert!(!evaluate.contains(f), "evaluate reaches {f}");
        }
    }

    /// Every library file is reached by some stage: a file no stage reaches is
    /// dead code or a gap in the walker, and either should fail here.
    #[test]
    fn every_library_file_is_reached_by_some_stage() {
        let reached: BTreeSet<&str> = BUILTINS.iter().flat_map(|b| b.sources).copied().collect();
        let src = stages_dir().join("src");
        let mut missed = Vec::new();
        for entry in std::fs::read_dir(&src).unwrap().flatten() {
            collect_rs(&entry.path(), &mut missed);
        }
        missed.retain(|f| {
            let rel = f.strip_prefix(stages_dir()).unwrap().to_string_lossy().into_owned();
            // amt-generate is the `amt generate` command, the probe runs
            // instead of a stage, and audio renders for `amt render`, `amt
            // generate --wav` and the studio: none is any stage's code.
            let probe = format!("src/{PROBE_MODULE}.rs");
            let commands = ["src/bin/amt-generate.rs", "src/audio.rs", probe.as_str()];
            !reached.contains(rel.as_str()) && !commands.contains(&rel.as_str())
        });
        assert!(missed.is_empty(), "reached by no stage: {missed:?}");
    }

    fn collect_rs(p: &Path, out: &mut Vec<PathBuf>) {
        if p.is_dir() {
            for e in std::fs::read_dir(p).unwrap().flatten() {
                collect_rs(&e.path(), out);
            }
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p.to_owned());
        }
    }

    /// An independent check of the walker: a plain text scan of every reached
    /// file for `crate::a::b` and `super::x` paths. Each must lead to a file
    /// the stage reaches.
    #[test]
    fn reached_sets_are_closed_under_a_textual_scan() {
        let dir = stages_dir();
        for b in BUILTINS {
            let files = sources(b.name);
            for f in &files {
                let text = std::fs::read_to_string(dir.join(f)).unwrap();
                for path in textual_paths(&text, f) {
                    let instead = |m: &str| {
                        m == PROBE_MODULE || BUILTINS.iter().any(|o| o.name != b.name && o.module == m)
                    };
                    if is_dispatch(f) && path.first().is_some_and(|p| instead(p)) {
                        continue;
                    }
                    if let Some(target) = deepest_file(&dir, &path) {
                        assert!(
                            files.contains(target.as_str()),
                            "stage {}: {f} names {} ({target}), which is not in its sources",
                            b.name,
                            path.join("::")
                        );
                    }
                }
            }
        }
    }

    fn is_dispatch(f: &str) -> bool {
        f.starts_with("src/bin/")
    }

    /// `crate::…` and `super::…` paths in a file's code (comments skipped),
    /// as module paths from the crate root.
    fn textual_paths(text: &str, file: &str) -> Vec<Vec<String>> {
        // The module a file is: src/a/b.rs and src/a/b/mod.rs are a::b.
        let rel = file.trim_start_matches("src/").trim_end_matches(".rs");
        let mut here: Vec<String> = rel.split('/').map(str::to_owned).collect();
        if here.last().is_some_and(|l| l == "mod" || l == "lib") {
            here.pop();
        }
        let code: String = text
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        // Inside a file's inline `mod tests { … }`, `super` is the file's module.
        let tests = inline_tests(&code);
        let mut out = Vec::new();
        for (i, _) in code.match_indices("crate::").chain(code.match_indices("super::")) {
            let prev = code[..i].chars().last();
            if prev.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            let tail: String = code[i..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let mut parts: Vec<&str> = tail.split("::").filter(|s| !s.is_empty()).collect();
            let mut path = here.clone();
            if tests.contains(&i) {
                path.push("tests".to_owned());
            }
            match parts.first() {
                Some(&"crate") => {
                    path.clear();
                    parts.remove(0);
                }
                Some(&"super") => {
                    while parts.first() == Some(&"super") {
                        path.pop();
                        parts.remove(0);
                    }
                }
                _ => continue,
            }
            path.extend(parts.iter().map(|s| s.to_string()));
            out.push(path);
        }
        out
    }

    /// The span of a file's inline `mod tests { … }` block (braces counted,
    /// so an item after the block is outside it); empty when there is none.
    fn inline_tests(code: &str) -> std::ops::Range<usize> {
        let Some(start) = code.find("mod tests {") else {
            return 0..0;
        };
        let mut depth = 0usize;
        for (i, c) in code[start..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return start..start + i;
                    }
                }
                _ => {}
            }
        }
        start..code.len()
    }

    /// The file of the deepest module a path names.
    fn deepest_file(dir: &Path, path: &[String]) -> Option<String> {
        (1..=path.len()).rev().find_map(|n| {
            let rel = path[..n].join("/");
            [format!("src/{rel}.rs"), format!("src/{rel}/mod.rs")]
                .into_iter()
                .find(|f| dir.join(f).is_file())
        })
    }
}
