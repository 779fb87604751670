//! amt's studio: a web page and JSON API to write music from text, see it as
//! a piano roll, hear it, and watch the pipeline. `amt serve` runs it.

pub mod access;
pub mod api;
pub mod assets;
pub mod model;
pub mod piece;
pub mod pipeline;
pub mod pool;
pub mod results;
pub mod server;
