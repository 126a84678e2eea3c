//! Per-pipeline manifest (`_state/manifests/<pipeline>.json`): every landing file seen, its
//! identity (size, ETag, last-modified, BLAKE3 content hash when the file was read whole or streamed), the run
//! that loaded it, row counts, and the staging objects it currently owns.
//!
//! The manifest is rewritten whole (an atomic put) after each file, so after a crash it describes
//! either the state before that file or after it; objects written by an interrupted file are
//! overwritten by the re-run, which produces the same object names.

use super::writer::OutputObject;
use crate::error::{Error, Result};
use crate::storage::Store;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Row accounting of one file: `rows_in = rows_written + rows_quarantined + rows_dropped`, each
/// row counted once. `values_nulled` counts values, not rows: invalid values of
/// `on_invalid = "null_value"` columns quarantined alone, in rows that were written (and are
/// in `rows_written`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowCounts {
    /// Records read (blank lines excluded).
    pub rows_in: u64,
    /// Rows written to staging.
    pub rows_written: u64,
    /// Rows rejected to quarantine.
    pub rows_quarantined: u64,
    /// Rows dropped by a declared rule (e.g. totals rows).
    pub rows_dropped: u64,
    /// Values quarantined alone and nulled in written rows (quarantine entries of level
    /// `value`). Absent in manifests written before value-level quarantine: 0.
    #[serde(default)]
    pub values_nulled: u64,
}

impl RowCounts {
    pub fn add(&mut self, other: &RowCounts) {
        self.rows_in += other.rows_in;
        self.rows_written += other.rows_written;
        self.rows_quarantined += other.rows_quarantined;
        self.rows_dropped += other.rows_dropped;
        self.values_nulled += other.values_nulled;
    }

    /// True when every row is accounted for.
    pub fn balanced(&self) -> bool {
        self.rows_in == self.rows_written + self.rows_quarantined + self.rows_dropped
    }
}

/// Outcome of the last ingestion of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    Loaded,
    Rejected,
    /// A revision the revision guard holds (reconsidered every run); `error` holds the reason.
    Held,
    /// A copy of another loaded file (`error` names it); never read.
    Duplicate,
}

/// What the manifest knows of one landing file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRecord {
    pub size: u64,
    pub e_tag: Option<String>,
    pub last_modified: DateTime<Utc>,
    /// BLAKE3 of the file's bytes (hex), to recognise a touched-but-identical file.
    pub content_hash: Option<String>,
    pub run_id: String,
    pub ingested_at: DateTime<Utc>,
    pub status: FileStatus,
    #[serde(default)]
    pub error: Option<String>,
    pub counts: RowCounts,
    /// Staging objects this file's data currently lives in.
    #[serde(default)]
    pub outputs: Vec<OutputObject>,
    #[serde(default)]
    pub quarantine: Option<String>,
}

/// The manifest of one pipeline.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub pipeline: String,
    /// [`super::pipeline_fingerprint`] of the definition the files were last read with.
    #[serde(default)]
    pub pipeline_fingerprint: Option<String>,
    /// Landing path → record.
    pub files: BTreeMap<String, FileRecord>,
}

impl Manifest {
    pub fn location(pipeline: &str) -> String {
        format!("_state/manifests/{pipeline}.json")
    }

    pub async fn load(store: &Store, pipeline: &str) -> Result<Self> {
        let location = Self::location(pipeline);
        match store.get_opt(&location).await? {
            None => Ok(Self { pipeline: pipeline.to_string(), pipeline_fingerprint: None, files: BTreeMap::new() }),
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::State {
                location: store.display(&location),
                reason: format!("unreadable manifest: {e}"),
            }),
        }
    }

    pub async fn save(&self, store: &Store) -> Result<()> {
        let location = Self::location(&self.pipeline);
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::State { location: location.clone(), reason: e.to_string() })?;
        store.put(&location, json).await
    }

    /// Records that `path` now owns `outputs`: other files lose those objects. Returns objects
    /// that the file owned before but no longer writes (to delete).
    pub fn take_ownership(&mut self, path: &str, outputs: &[OutputObject]) -> Vec<String> {
        for (other, record) in self.files.iter_mut() {
            if other != path {
                record.outputs.retain(|o| !outputs.iter().any(|n| n.path == o.path));
            }
        }
        let previous = self.files.get(path).map(|r| r.outputs.clone()).unwrap_or_default();
        previous.into_iter().filter(|o| !outputs.iter().any(|n| n.path == o.path)).map(|o| o.path).collect()
    }

    /// Every staging object some file owns.
    pub fn live_objects(&self) -> Vec<&OutputObject> {
        self.files.values().flat_map(|r| r.outputs.iter()).collect()
    }
}
