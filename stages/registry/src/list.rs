//! The one list of built-in stages. `build.rs` reads it to derive each stage's
//! code version from the sources its entry module reaches; `lib.rs` turns it,
//! with those versions, into [`crate::BUILTINS`].
//!
//! This file is compiled twice (into the build script and into the crate), so
//! it uses nothing but `core`.

/// A built-in stage as declared here.
pub struct Declared {
    /// The name used by `builtin = "…"` in amt.toml.
    pub name: &'static str,
    /// The module of `stages/src` whose `run` implements it.
    pub module: &'static str,
    /// One line for `amt stage --list`.
    pub summary: &'static str,
}

/// Every built-in stage, in pipeline order.
pub const DECLARED: &[Declared] = &[
    Declared {
        name: "collect",
        module: "collect",
        summary: "MIDI metadata of a folder of MIDI files (midi.parquet, rejects.parquet)",
    },
    Declared {
        name: "describe",
        module: "describe",
        summary: "a text for every piece from captions, a file or Wikipedia (texts.parquet)",
    },
    Declared {
        name: "embed",
        module: "embed",
        summary: "BERT sentence embeddings of the texts (embeddings.parquet, embed.json)",
    },
    Declared {
        name: "cluster",
        module: "cluster",
        summary: "k-means semantic tokens (tokens.parquet, centroids.json, report.json)",
    },
    Declared {
        name: "prepare",
        module: "prepare",
        summary: "token windows split into train/val/test shards (vocab.json, *.parquet)",
    },
    Declared {
        name: "train",
        module: "train",
        summary: "a GPT-2 fitted to the windows, resumable (model/, hf/, loss.csv, loss.png)",
    },
    Declared {
        name: "generate",
        module: "generate",
        summary: "MIDI for each prompt in a file (*.mid, generations.json)",
    },
    Declared {
        name: "evaluate",
        module: "evaluate",
        summary: "metrics against the test split and baselines (metrics.json, pieces.parquet, report.md)",
    },
];

/// The module of `stages/src` behind `amt-stage --probe`. Like a stage's
/// entry module, it is something the binary runs *instead of* a stage, so
/// its code is in no stage's code version (its answers are in their keys).
pub const PROBE_MODULE: &str = "facts";

/// What makes a machine fact part of a stage's action key.
pub enum Trigger {
    /// The stage's code names this external crate.
    Extern(&'static str),
    /// The stage's code reaches this module of `stages/src`.
    Module(&'static str),
}

/// Facts about the machine that can change a stage's bytes, and which code
/// makes a stage depend on them. `amt-stage --probe` reports their values.
pub const FACTS: &[(&str, Trigger)] = &[
    // libtorch's version: kernels and their numerics change between releases.
    ("libtorch", Trigger::Extern("tch")),
    // The CPU kernels libtorch dispatches to (AVX2, AVX-512): they sum in other orders.
    ("cpu", Trigger::Extern("tch")),
    // Variables that steer libtorch's oneDNN, MKL and TF32 code paths.
    ("torch_env", Trigger::Extern("tch")),
    // The GPUs libtorch can use: `device = "auto"` picks CUDA, with bf16 autocast.
    ("cuda", Trigger::Extern("tch")),
    // The font the charts' text is drawn with (or none): it is in every PNG.
    ("font", Trigger::Module("plot")),
];

/// Variables that steer libtorch's oneDNN, MKL and TF32 code paths: the
/// `torch_env` fact holds the values of those that are set.
pub const TORCH_VARS: &[&str] = &[
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
    "NVIDIA_TF32_OVERRIDE",
    "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
];

/// The other variables the facts read: the CPU kernels (`cpu`), the GPUs
/// (`cuda`) and which libtorch is loaded (`libtorch`). With [`TORCH_VARS`],
/// every variable whose change calls for a new probe.
pub const PROBE_VARS: &[&str] = &[
    "ATEN_CPU_CAPABILITY",
    "CUDA_VISIBLE_DEVICES",
    "LD_LIBRARY_PATH",
];
