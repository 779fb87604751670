//! What the engine records of a stage: its state (the record `amt status`
//! and `why` read), and its row for the run ledger, which it keeps for its
//! caller to take (see `run_context::Recorder`).

use super::{Check, Engine, StageError};
use crate::config::Stage;
use crate::ledger::{ExecutionStatus, RunRow, now_ms};
use crate::params::json_of_canonical;
use crate::state::{Origin, StageRecord};
use crate::store::OutRecord;

impl Engine<'_> {
    /// A ledger row for a stage's execution, to be completed by the caller.
    pub(super) fn ledger_row(
        &self,
        stage: &Stage,
        check: &Check,
        started_at_ms: u64,
        duration_ms: u64,
    ) -> RunRow {
        let params: serde_json::Map<String, serde_json::Value> = check
            .inputs
            .params
            .iter()
            .map(|(k, v)| (k.to_string(), json_of_canonical(v)))
            .collect();
        RunRow {
            invocation: self.invocation.clone(),
            stage: stage.name.to_string(),
            action_key: check.key.to_string(),
            params: serde_json::Value::Object(params).to_string(),
            started_at_ms: started_at_ms as i64,
            duration_ms: duration_ms as i64,
            peak_rss_kb: None,
            // Set by the caller once the outcome is known.
            status: ExecutionStatus::Unknown(String::new()),
            exit_code: None,
            cache_hit: false,
            metrics: None,
            executor: String::new(),
            job_id: None,
        }
    }

    /// Keeps an execution's finished row for the caller.
    pub(super) fn log_run(&self, row: RunRow) {
        self.executions.push(row);
    }

    /// The stage's metrics files as one JSON object by path (text where a file is not JSON).
    pub(super) fn read_metrics(&self, stage: &Stage) -> Option<String> {
        if stage.metrics.is_empty() {
            return None;
        }
        let map: serde_json::Map<String, serde_json::Value> = stage
            .metrics
            .iter()
            .filter_map(|m| {
                let text = std::fs::read_to_string(m.to_fs(self.root())).ok()?;
                let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
                Some((m.to_string(), value))
            })
            .collect();
        Some(serde_json::Value::Object(map).to_string())
    }

    /// Writes the stage record, and keeps the deps' manifests so `why` can diff them later.
    pub(super) fn record(
        &self,
        stage: &Stage,
        check: Check,
        outs: Vec<OutRecord>,
        origin: Origin,
        duration_ms: u64,
    ) -> Result<(), StageError> {
        for (digest, bytes) in &check.dep_manifests {
            self.store.put_bytes(digest, bytes)?;
        }
        let recorded_at_ms = now_ms();
        let record = StageRecord {
            stage: stage.name.clone(),
            action_key: check.key,
            inputs: check.inputs,
            outs,
            origin,
            recorded_at_ms,
            duration_ms,
        };
        self.state.save(&record).map_err(|source| StageError::Io {
            what: format!("the record of stage `{}`", stage.name),
            source,
        })
    }
}
