//! amt's engine: a content-hashed DAG runner in the style of make and bazel.
//!
//! It knows stages, files, hashes, parameters and processes, and nothing about
//! music; the music lives in `stages/`.

pub mod action_cache;
pub mod change;
pub mod config;
pub mod dag;
pub mod digest;
pub mod engine;
pub mod exec;
pub mod executor;
pub mod explain;
pub mod fingerprint;
pub mod fsck;
pub mod fsutil;
pub mod gc;
pub mod guard;
pub mod inputs;
pub mod ledger;
pub mod lock;
pub mod names;
pub mod params;
pub mod project;
pub mod remote;
pub mod run_context;
pub mod running;
pub mod scheduler;
pub mod stage_env;
pub mod slurm;
pub mod statcache;
pub mod state;
pub mod store;
pub mod sweep;
pub mod tree;
pub mod warning;
