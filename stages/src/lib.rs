//! amt's music: the built-in stages and the libraries behind them.
//!
//! Each stage is a library function plus an entry in [`BUILTINS`], which the
//! `amt` binary exposes as `amt stage NAME` and registers with the engine.

pub mod cluster;
pub mod collect;
pub mod context;
pub mod describe;
pub mod embed;
pub mod midi;
pub mod table;

pub use context::StageContext;

/// A stage built into amt.
pub struct Builtin {
    /// The name used by `builtin = "…"` in amt.toml.
    pub name: &'static str,
    /// The code version: a digest of the stage's sources, computed at build time.
    pub version: &'static str,
    /// One line for `amt stage --list`.
    pub summary: &'static str,
    /// The stage itself.
    pub run: fn(&StageContext) -> anyhow::Result<()>,
}

/// Every built-in stage.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "collect",
        version: env!("AMT_CODE_COLLECT"),
        summary: "MIDI metadata of a folder of MIDI files (midi.parquet, rejects.parquet)",
        run: collect::run,
    },
    Builtin {
        name: "describe",
        version: env!("AMT_CODE_DESCRIBE"),
        summary: "a text for every piece from captions, a file or Wikipedia (texts.parquet)",
        run: describe::run,
    },
    Builtin {
        name: "embed",
        version: env!("AMT_CODE_EMBED"),
        summary: "BERT sentence embeddings of the texts (embeddings.parquet, embed.json)",
        run: embed::run,
    },
    Builtin {
        name: "cluster",
        version: env!("AMT_CODE_CLUSTER"),
        summary: "k-means semantic tokens (tokens.parquet, centroids.json, report.json)",
        run: cluster::run,
    },
];

/// Finds a built-in stage by name.
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}
