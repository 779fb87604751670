//! MIDI I/O and features, built on midly.

pub mod features;
pub mod gm;
pub mod key;
pub mod score;
pub mod tempo;

pub use features::{Features, features};
pub use score::{MidiError, Note, Score, parse};
