//! amt's music: the built-in stages and the libraries behind them.
//!
//! Each stage is a library function, registered by name in `amt-registry`
//! (which the `amt` binary reads) and dispatched to by name in the
//! `amt-stage` binary (the only place that names every stage, so that no
//! stage's code version depends on another's).

pub mod atomic;
pub mod audio;
pub mod bundle;
pub mod cluster;
pub mod collect;
pub mod context;
pub mod describe;
pub mod device;
pub mod embed;
pub mod evaluate;
pub mod facts;
pub mod generate;
pub mod manifest;
pub mod midi;
pub mod model;
pub mod plot;
pub mod prepare;
pub mod progress;
pub mod table;
pub mod tokenizer;
pub mod train;

pub use context::StageContext;

pub use amt_registry::{BUILTINS, BuiltinInfo, FACTS, builtin};

/// A built-in stage's implementation.
pub type Runner = fn(&StageContext) -> anyhow::Result<()>;
