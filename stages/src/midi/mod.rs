//! MIDI I/O and features: our own reader (mido's leniencies), midly for writing.

pub mod events;
pub mod features;
pub mod gm;
pub mod key;
pub mod score;
pub mod tempo;

pub use features::{Features, features};
pub use score::{Leniency, MidiError, Note, Score, parse};
