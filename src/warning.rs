//! What goes wrong without failing a stage: the engine keeps these for its
//! caller (the scheduler hands them to its reporter), and never prints; a
//! reporter (the ledger's recorder) may raise them too.
//! [`Kept`] holds them, and the executions the ledger records, until taken.

use std::sync::Mutex;

use crate::ledger::LedgerError;
use crate::names::StageName;
use crate::remote::RemoteError;

/// Something the user should hear about while the run goes on.
#[derive(Debug, thiserror::Error)]
pub enum Warning {
    /// The remote cache failed; the invocation goes on without it.
    #[error("{0}; continuing with the local cache only")]
    RemoteGivenUp(RemoteError),
    /// One entry of the remote cache is bad (corrupt, forged, incomplete); it is skipped.
    #[error("stage {stage}: action {key}: {error}")]
    RemoteEntry {
        stage: StageName,
        key: String,
        error: RemoteError,
    },
    /// The run ledger could not be written.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Events the engine keeps for its caller until taken: warnings, and the
/// executions the ledger records.
#[derive(Debug)]
pub struct Kept<T>(Mutex<Vec<T>>);

impl<T> Default for Kept<T> {
    fn default() -> Self {
        Self(Mutex::new(Vec::new()))
    }
}

impl<T> Kept<T> {
    /// Keeps an event for the caller.
    pub fn push(&self, event: T) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(event);
    }

    /// The events kept since the last call, oldest first.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Warnings not yet taken by the caller.
pub type Warnings = Kept<Warning>;
