//! What goes wrong without failing a stage: the engine keeps these for its
//! caller (the scheduler hands them to its reporter), and never prints.

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

/// Warnings not yet taken by the caller.
#[derive(Debug, Default)]
pub struct Warnings(Mutex<Vec<Warning>>);

impl Warnings {
    /// Keeps a warning for the caller.
    pub fn push(&self, warning: Warning) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(warning);
    }

    /// The warnings kept since the last call, oldest first.
    pub fn take(&self) -> Vec<Warning> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
