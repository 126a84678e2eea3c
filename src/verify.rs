//! `alliance verify`: the warehouse against what the pipeline recorded (the equivalent of
//! `git fsck`).
//!
//! Checks, reading every byte:
//! - every pipeline's manifest is readable, and every staging object it says a file owns is
//!   there with the size and content hash recorded when it was written;
//! - no object under a pipeline's `staging/<table>/` is unowned (an unowned object would be read
//!   by the models as if it had been loaded);
//! - every intermediate model and published mart with a recorded build matches its seal, and no
//!   published mart lacks a recorded build.
//!
//! Any difference is a [`Finding`]; the command exits non-zero when there is one.

use crate::config::Pipeline;
use crate::error::{Error, Result};
use crate::ingest::manifest::Manifest;
use crate::integrity::{check, Depth, Seal, SealState};
use crate::storage::Store;
use crate::transform::graph::Graph;
use crate::transform::model::Layer;
use crate::transform::{publish, state};
use serde::Serialize;
use std::collections::BTreeSet;

/// One difference between the warehouse and the records.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    /// The object or state file concerned.
    pub object: String,
    /// What is wrong.
    pub problem: String,
}

/// What `verify` checked and found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Objects compared byte for byte with their seals.
    pub objects_checked: u64,
    /// Recorded objects without a seal (written before seals were recorded): only their presence
    /// is checked.
    pub objects_unsealed: u64,
    pub manifests_checked: u64,
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    pub fn clean(&self) -> bool {
        self.findings.is_empty()
    }

    fn found(&mut self, object: impl Into<String>, problem: impl Into<String>) {
        self.findings.push(Finding { object: object.into(), problem: problem.into() });
    }

    async fn compare(&mut self, store: &Store, seal: &Seal) -> Result<()> {
        self.objects_checked += 1;
        match check(store, seal, Depth::Deep).await? {
            SealState::Intact => {}
            other => self.found(&seal.path, other.describe()),
        }
        Ok(())
    }
}

/// Verifies the warehouse; see the module documentation.
pub async fn verify(warehouse: &Store, pipelines: &[Pipeline], graph: &Graph) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    for p in pipelines {
        let manifest = match Manifest::load(warehouse, &p.name).await {
            Ok(m) => m,
            Err(Error::State { reason, .. }) => {
                report.found(Manifest::location(&p.name), reason);
                continue;
            }
            Err(e) => return Err(e),
        };
        report.manifests_checked += 1;
        let mut owned = BTreeSet::new();
        for object in manifest.live_objects() {
            owned.insert(object.path.clone());
            match &object.seal {
                Some(seal) => report.compare(warehouse, seal).await?,
                None => {
                    report.objects_unsealed += 1;
                    if warehouse.head(&object.path).await?.is_none() {
                        report.found(&object.path, SealState::Missing.describe());
                    }
                }
            }
        }
        for meta in warehouse.list(&format!("staging/{}/", p.table)).await? {
            let path = meta.location.to_string();
            if !owned.contains(&path) {
                report.found(path, format!("not recorded in the manifest of pipeline {}", p.name));
            }
        }
    }
    let states = state::load_all(warehouse).await?;
    for m in graph.models.iter().filter(|m| m.layer != Layer::Staging) {
        let expected = match m.layer {
            Layer::Mart => publish::published_path(&m.name),
            _ => publish::model_path(&m.name),
        };
        let present = warehouse.head(&expected).await?.is_some();
        match states.get(&m.name).map(|s| s.object.as_ref()) {
            Some(Some(seal)) => report.compare(warehouse, seal).await?,
            // Built before seals were recorded: presence only.
            Some(None) => {
                report.objects_unsealed += 1;
                if !present {
                    report.found(expected, SealState::Missing.describe());
                }
            }
            None if m.layer == Layer::Mart && present => {
                report.found(expected, "published but no successful build of it is recorded");
            }
            None => {}
        }
    }
    Ok(report)
}
