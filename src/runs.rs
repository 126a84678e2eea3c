//! Run records: every run writes `_state/runs/<run_id>.json` in the warehouse with what it read
//! and wrote, row counts, duration and any error.

use crate::error::{Error, Result};
use crate::ingest::PipelineReport;
use crate::storage::Store;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A new run id: UTC timestamp to the millisecond plus a random suffix, sortable by start time
/// (`20261201T014630123Z-1a2b3c4d`). Milliseconds, because two builds can start within one second
/// and the history of a mart is listed in run-id order.
pub fn new_run_id() -> String {
    let now = Utc::now();
    let nanos = now.timestamp_subsec_nanos() ^ std::process::id().rotate_left(13);
    format!("{}-{:08x}", now.format("%Y%m%dT%H%M%S%3fZ"), nanos)
}

/// The record of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    /// `manual`, `schedule`, `new_file`, ...
    pub trigger: String,
    pub command: String,
    pub environment: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub seconds: f64,
    pub pipelines: serde_json::Value,
    /// Models built, their tests and published marts, and the input versions they read.
    #[serde(default)]
    pub build: serde_json::Value,
    /// Landing files named by `--accept-revision` for this run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accepted_revisions: Vec<String>,
    pub error: Option<String>,
    /// Why the run lost the warehouse lock, if it did (it stopped before publishing further).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_lost: Option<String>,
}

impl RunRecord {
    pub fn location(&self) -> String {
        format!("_state/runs/{}.json", self.run_id)
    }

    pub async fn save(&self, store: &Store) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::State { location: self.location(), reason: e.to_string() })?;
        store.put(&self.location(), json).await
    }

    pub fn pipelines_json(reports: &[PipelineReport]) -> serde_json::Value {
        serde_json::to_value(reports).unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_ids_started_within_one_second_sort_by_start() {
        let first = super::new_run_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = super::new_run_id();
        assert!(first < second, "{first} {second}");
        assert_eq!(first.len(), "20261201T014630123Z-1a2b3c4d".len());
    }
}
