//! The built-in stages as the engine sees them: name, summary and code
//! version. This crate has no dependencies, so the `amt` binary can register
//! the stages without linking what they use (libtorch makes every start of a
//! binary that links it cost about half a second). The stages themselves run
//! in the `amt-stage` binary.

/// A built-in stage's public description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuiltinInfo {
    /// The name used by `builtin = "…"` in amt.toml.
    pub name: &'static str,
    /// A digest of the stage's source files and Cargo.lock, computed at build time.
    pub version: &'static str,
    /// One line for `amt stage --list`.
    pub summary: &'static str,
}

/// Every built-in stage, in pipeline order.
pub const BUILTINS: &[BuiltinInfo] = &[
    BuiltinInfo {
        name: "collect",
        version: env!("AMT_CODE_COLLECT"),
        summary: "MIDI metadata of a folder of MIDI files (midi.parquet, rejects.parquet)",
    },
    BuiltinInfo {
        name: "describe",
        version: env!("AMT_CODE_DESCRIBE"),
        summary: "a text for every piece from captions, a file or Wikipedia (texts.parquet)",
    },
    BuiltinInfo {
        name: "embed",
        version: env!("AMT_CODE_EMBED"),
        summary: "BERT sentence embeddings of the texts (embeddings.parquet, embed.json)",
    },
    BuiltinInfo {
        name: "cluster",
        version: env!("AMT_CODE_CLUSTER"),
        summary: "k-means semantic tokens (tokens.parquet, centroids.json, report.json)",
    },
    BuiltinInfo {
        name: "prepare",
        version: env!("AMT_CODE_PREPARE"),
        summary: "token windows split into train/val/test shards (vocab.json, *.parquet)",
    },
    BuiltinInfo {
        name: "train",
        version: env!("AMT_CODE_TRAIN"),
        summary: "a GPT-2 fitted to the windows, resumable (model/, hf/, loss.csv, loss.png)",
    },
    BuiltinInfo {
        name: "generate",
        version: env!("AMT_CODE_GENERATE"),
        summary: "MIDI for each prompt in a file (*.mid, generations.json)",
    },
    BuiltinInfo {
        name: "evaluate",
        version: env!("AMT_CODE_EVALUATE"),
        summary: "metrics against the test split and baselines (metrics.json, pieces.parquet, report.md)",
    },
];

/// Finds a built-in stage by name.
pub fn builtin(name: &str) -> Option<&'static BuiltinInfo> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// The binary that runs built-in stages, installed next to `amt`.
pub const STAGE_BINARY: &str = "amt-stage";
