//! amt's music: the built-in stages and the libraries behind them.
//!
//! Each stage is a library function, registered by name in `amt-registry`
//! (which the `amt` binary reads) and run by the `amt-stage` binary.

pub mod atomic;
pub mod cluster;
pub mod collect;
pub mod context;
pub mod describe;
pub mod device;
pub mod embed;
pub mod evaluate;
pub mod facts;
pub mod generate;
pub mod midi;
pub mod model;
pub mod plot;
pub mod prepare;
pub mod table;
pub mod tokenizer;
pub mod train;

pub use context::StageContext;

pub use amt_registry::{BUILTINS, BuiltinInfo, FACTS, builtin};

/// A built-in stage's implementation.
pub type Runner = fn(&StageContext) -> anyhow::Result<()>;

/// The implementation of a built-in stage named in the registry.
pub fn runner(name: &str) -> Option<Runner> {
    match name {
        "collect" => Some(collect::run),
        "describe" => Some(describe::run),
        "embed" => Some(embed::run),
        "cluster" => Some(cluster::run),
        "prepare" => Some(prepare::run),
        "train" => Some(train::run),
        "generate" => Some(generate::run),
        "evaluate" => Some(evaluate::run),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_registered_stage_has_an_implementation() {
        for b in super::BUILTINS {
            assert!(super::runner(b.name).is_some(), "{} has no runner", b.name);
        }
    }
}
