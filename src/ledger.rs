//! The run ledger, an SQLite database at `cache/ledger.sqlite`: every stage
//! execution (run, restore from the cache, or failure) in `executions`, and
//! every pipeline run (an `amt run`, or one sweep point) in `runs` with its
//! params and metrics. WAL mode and a busy timeout make concurrent writers
//! safe, and users can query it with `sqlite3`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, params};
use serde::Serialize;

/// Milliseconds since the Unix epoch, as the ledger records times.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The database file under a project's cache directory.
pub const FILE: &str = "ledger.sqlite";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS executions (
    id            INTEGER PRIMARY KEY,
    invocation    TEXT NOT NULL,    -- one `amt run`: start time and process id
    stage         TEXT NOT NULL,
    action_key    TEXT NOT NULL,
    params        TEXT NOT NULL,    -- the stage's declared params, JSON
    started_at_ms INTEGER NOT NULL, -- Unix time
    duration_ms   INTEGER NOT NULL,
    peak_rss_kb   INTEGER,          -- the command's peak resident memory (NULL for restores)
    status        TEXT NOT NULL,    -- ran | restored | failed | cancelled
    exit_code     INTEGER,
    cache_hit     INTEGER NOT NULL, -- 1 when restored from the cache
    metrics       TEXT,             -- the stage's metrics files, JSON by path
    executor      TEXT,             -- local | slurm
    job_id        TEXT              -- the cluster's job id, when it ran as one
);
CREATE INDEX IF NOT EXISTS executions_stage ON executions (stage, id);
CREATE TABLE IF NOT EXISTS runs (
    id            INTEGER PRIMARY KEY,
    run           TEXT NOT NULL,    -- the invocation, or the sweep point's id
    sweep         TEXT,             -- the sweep's name (NULL for `amt run`)
    params        TEXT NOT NULL,    -- every [params] leaf, JSON
    status        TEXT NOT NULL,    -- ok | failed | interrupted
    started_at_ms INTEGER NOT NULL,
    duration_ms   INTEGER NOT NULL,
    stages        TEXT NOT NULL,    -- outcome counts, e.g. {\"ran\": 2, \"restored\": 5}
    metrics       TEXT NOT NULL     -- the metrics files afterwards, JSON by path
);
";

/// A ledger error: the database could not be opened or written.
#[derive(Debug, thiserror::Error)]
#[error("run ledger {path}: {source}")]
pub struct LedgerError {
    path: PathBuf,
    #[source]
    source: rusqlite::Error,
}

/// Declares a status enum stored in the ledger by name. A name this build
/// does not know (written by another version of amt, or by hand) reads back
/// as `Unknown`, so one odd row never hides the rest of the history.
macro_rules! status_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
            /// A name this build does not know.
            Unknown(String),
        }

        impl $name {
            /// The name the ledger stores.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Unknown(name) => name,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl rusqlite::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                Ok(match v.as_str()? {
                    $($text => Self::$variant,)+
                    other => Self::Unknown(other.to_owned()),
                })
            }
        }
    };
}

status_enum! {
    /// How a stage execution ended.
    ExecutionStatus {
        /// The command ran and its outputs were stored.
        Ran => "ran",
        /// The outputs came from the cache.
        Restored => "restored",
        /// The command failed, or left its outputs missing.
        Failed => "failed",
        /// Stopped by Ctrl-C.
        Cancelled => "cancelled",
    }
}

status_enum! {
    /// How a pipeline run ended.
    RunStatus {
        /// Every selected stage is up to date.
        Ok => "ok",
        /// A stage failed.
        Failed => "failed",
        /// Stopped by Ctrl-C.
        Interrupted => "interrupted",
    }
}

/// One stage execution.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunRow {
    pub invocation: String,
    pub stage: String,
    pub action_key: String,
    pub params: String,
    pub started_at_ms: i64,
    pub duration_ms: i64,
    pub peak_rss_kb: Option<i64>,
    pub status: ExecutionStatus,
    pub exit_code: Option<i32>,
    pub cache_hit: bool,
    pub metrics: Option<String>,
    /// Where it ran: `local`, `slurm` (empty for restores).
    pub executor: String,
    /// The cluster's job id, when it ran as one.
    pub job_id: Option<String>,
}

/// One pipeline run: an `amt run`, or a sweep point.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PipelineRun {
    pub run: String,
    pub sweep: Option<String>,
    /// Every `[params]` leaf (dotted key → value).
    pub params: serde_json::Map<String, serde_json::Value>,
    pub status: RunStatus,
    pub started_at_ms: i64,
    pub duration_ms: i64,
    pub stages: serde_json::Map<String, serde_json::Value>,
    /// Metrics file path → its JSON.
    pub metrics: serde_json::Map<String, serde_json::Value>,
}

/// The ledger, opened on first write.
pub struct Ledger {
    path: PathBuf,
    conn: Mutex<Option<Connection>>,
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Until the file is in WAL mode, SQLite answers BUSY without waiting when
    // two connections would deadlock upgrading their locks; retry those.
    retry_busy(|| conn.pragma_update(None, "journal_mode", "WAL"))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    retry_busy(|| {
        // IMMEDIATE takes the write lock up front, so two processes cannot
        // both see a column missing and both add it.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(SCHEMA)?;
        // Ledgers written before these columns existed gain them.
        for column in ["executor", "job_id"] {
            let present: bool = tx.query_row(
                "SELECT COUNT(*) FROM pragma_table_info('executions') WHERE name = ?1",
                [column],
                |r| r.get::<_, i64>(0).map(|n| n > 0),
            )?;
            if !present {
                tx.execute_batch(&format!("ALTER TABLE executions ADD COLUMN {column} TEXT"))?;
            }
        }
        tx.commit()
    })?;
    Ok(conn)
}

/// How long a writer waits for another to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `f` again while SQLite reports the database busy, up to [`BUSY_TIMEOUT`].
fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(5);
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

impl Ledger {
    /// The ledger of the project whose cache directory is `cache`.
    pub fn new(cache: &Path) -> Self {
        Self {
            path: cache.join(FILE),
            conn: Mutex::new(None),
        }
    }

    fn err(&self, source: rusqlite::Error) -> LedgerError {
        LedgerError {
            path: self.path.clone(),
            source,
        }
    }

    fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, LedgerError> {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            *guard = Some(open(&self.path).map_err(|e| self.err(e))?);
        }
        f(guard.as_ref().expect("opened above")).map_err(|e| self.err(e))
    }

    /// Appends a pipeline run.
    pub fn record_run(&self, run: &PipelineRun) -> Result<(), LedgerError> {
        let json = |m: &serde_json::Map<String, serde_json::Value>| {
            serde_json::Value::Object(m.clone()).to_string()
        };
        self.with_conn(|conn| {
            conn.execute(
                "INSERT INTO runs (run, sweep, params, status, started_at_ms, duration_ms, stages, metrics)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![run.run, run.sweep, json(&run.params), run.status, run.started_at_ms, run.duration_ms, json(&run.stages), json(&run.metrics)],
            )
            .map(|_| ())
        })
    }

    /// Pipeline runs, oldest first: of one sweep, or all; the newest `last` when given.
    pub fn pipeline_runs(
        &self,
        sweep: Option<&str>,
        last: Option<usize>,
    ) -> Result<Vec<PipelineRun>, LedgerError> {
        if !self.path.exists() {
            return Ok(Vec::new());
        }
        let object = |text: String| match serde_json::from_str(&text) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        let mut out: Vec<PipelineRun> = self.with_conn(|conn| {
            let mut stmt = conn.prepare(
                "SELECT run, sweep, params, status, started_at_ms, duration_ms, stages, metrics
                 FROM runs WHERE ?1 IS NULL OR sweep = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![sweep, last.map_or(-1, |n| n as i64)], |r| {
                Ok(PipelineRun {
                    run: r.get(0)?,
                    sweep: r.get(1)?,
                    params: object(r.get(2)?),
                    status: r.get(3)?,
                    started_at_ms: r.get(4)?,
                    duration_ms: r.get(5)?,
                    stages: object(r.get(6)?),
                    metrics: object(r.get(7)?),
                })
            })?;
            rows.collect()
        })?;
        out.reverse();
        Ok(out)
    }

    /// Appends a stage execution.
    pub fn record(&self, row: &RunRow) -> Result<(), LedgerError> {
        self.with_conn(|conn| {
            conn.execute(
                "INSERT INTO executions (invocation, stage, action_key, params, started_at_ms, duration_ms,
                                   peak_rss_kb, status, exit_code, cache_hit, metrics, executor, job_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    row.invocation,
                    row.stage,
                    row.action_key,
                    row.params,
                    row.started_at_ms,
                    row.duration_ms,
                    row.peak_rss_kb,
                    row.status,
                    row.exit_code,
                    row.cache_hit,
                    row.metrics,
                    row.executor,
                    row.job_id
                ],
            )
            .map(|_| ())
        })
    }

    /// Stage executions, oldest first; the newest `last` when given. An absent ledger has none.
    pub fn rows(
        &self,
        stage: Option<&str>,
        last: Option<usize>,
    ) -> Result<Vec<RunRow>, LedgerError> {
        if !self.path.exists() {
            return Ok(Vec::new());
        }
        let conn = open(&self.path).map_err(|e| self.err(e))?;
        let mut stmt = conn
            .prepare(
                "SELECT invocation, stage, action_key, params, started_at_ms, duration_ms, peak_rss_kb,
                        status, exit_code, cache_hit, metrics, executor, job_id
                 FROM executions WHERE ?1 IS NULL OR stage = ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let limit = last.map_or(-1, |n| n as i64);
        let rows = stmt
            .query_map(params![stage, limit], |r| {
                Ok(RunRow {
                    invocation: r.get(0)?,
                    stage: r.get(1)?,
                    action_key: r.get(2)?,
                    params: r.get(3)?,
                    started_at_ms: r.get(4)?,
                    duration_ms: r.get(5)?,
                    peak_rss_kb: r.get(6)?,
                    status: r.get(7)?,
                    exit_code: r.get(8)?,
                    cache_hit: r.get(9)?,
                    metrics: r.get(10)?,
                    executor: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
                    job_id: r.get(12)?,
                })
            })
            .map_err(|e| self.err(e))?;
        let mut out: Vec<RunRow> = rows.collect::<Result<_, _>>().map_err(|e| self.err(e))?;
        out.reverse();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(stage: &str, status: ExecutionStatus) -> RunRow {
        RunRow {
            invocation: "i1".into(),
            stage: stage.into(),
            action_key: "k".into(),
            params: "{}".into(),
            started_at_ms: 1,
            duration_ms: 2,
            peak_rss_kb: Some(3),
            status,
            exit_code: Some(0),
            executor: "local".into(),
            job_id: None,
            cache_hit: false,
            metrics: None,
        }
    }

    #[test]
    fn rows_come_back_in_order_and_filter_by_stage() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(dir.path());
        assert!(ledger.rows(None, None).unwrap().is_empty(), "no file yet");
        use ExecutionStatus::*;
        for (s, st) in [("a", Ran), ("b", Restored), ("a", Failed)] {
            ledger.record(&row(s, st)).unwrap();
        }
        let all = ledger.rows(None, None).unwrap();
        assert_eq!(
            all.iter().map(|r| r.status.clone()).collect::<Vec<_>>(),
            [Ran, Restored, Failed]
        );
        assert_eq!(ledger.rows(Some("a"), None).unwrap().len(), 2);
        assert_eq!(ledger.rows(None, Some(1)).unwrap()[0].status, Failed);
    }

    #[test]
    fn a_status_this_build_does_not_know_reads_back_as_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(dir.path());
        ledger.record(&row("a", ExecutionStatus::Ran)).unwrap();
        ledger.record(&row("b", ExecutionStatus::Ran)).unwrap();
        let conn = Connection::open(dir.path().join(FILE)).unwrap();
        conn.execute("UPDATE executions SET status = 'paused' WHERE stage = 'b'", [])
            .unwrap();
        let rows = ledger.rows(None, None).unwrap();
        assert_eq!(rows[0].status, ExecutionStatus::Ran);
        assert_eq!(rows[1].status, ExecutionStatus::Unknown("paused".into()));
        assert_eq!(serde_json::to_value(&rows[1].status).unwrap(), "paused");
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        // Several rounds, each on a fresh file: the race is in creating the
        // database and switching it to WAL, which happens once per file.
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            std::thread::scope(|s| {
                for t in 0..8 {
                    let cache = dir.path().to_owned();
                    s.spawn(move || {
                        // Separate connections, as separate amt processes would have.
                        let ledger = Ledger::new(&cache);
                        for i in 0..25 {
                            ledger.record(&row(&format!("s{t}-{i}"), ExecutionStatus::Ran)).unwrap();
                        }
                    });
                }
            });
            assert_eq!(Ledger::new(dir.path()).rows(None, None).unwrap().len(), 200);
        }
    }
}
