//! Before a build: find materialised models changed or deleted outside the pipeline, and put
//! them right.
//!
//! Each intermediate model and published mart with a recorded seal is checked quickly
//! ([`integrity::Depth::Quick`]). A mart that changed or disappeared is restored from the copy of
//! the build its state names (`marts/_history/<mart>/<run_id>.parquet`) when that copy is intact;
//! otherwise — and for intermediate models, which keep no copy — its state is forgotten and the
//! model is rebuilt in this run, whatever the selection. Every finding is logged as a warning and
//! reported in the run record (`build.tampered`).

use super::graph::Graph;
use super::model::Layer;
use super::{publish, state};
use crate::error::Result;
use crate::integrity::{self, Depth, SealState};
use crate::storage::Store;
use serde::Serialize;
use std::collections::BTreeSet;
use tracing::warn;

/// What the build found of one object and what it did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TamperFinding {
    pub model: String,
    pub object: String,
    /// What was found: changed (with why) or missing.
    pub found: SealState,
    /// `restored from <path>`, or `rebuilt`.
    pub action: String,
}

/// What [`check_models`] found, and the models it left to rebuild.
#[derive(Debug, Default)]
pub struct TamperCheck {
    pub findings: Vec<TamperFinding>,
    pub rebuild: BTreeSet<String>,
}

/// Checks every materialised model of `graph` against its seal; restores or schedules rebuilds.
pub async fn check_models(warehouse: &Store, graph: &Graph) -> Result<TamperCheck> {
    let mut out = TamperCheck::default();
    for m in graph.models.iter().filter(|m| m.layer != Layer::Staging) {
        let Some(recorded) = state::load(warehouse, &m.name).await? else { continue };
        let Some(seal) = recorded.object.clone() else { continue };
        let found = integrity::check(warehouse, &seal, Depth::Quick).await?;
        if found.is_intact() {
            continue;
        }
        let restored = match m.layer {
            Layer::Mart => publish::restore(warehouse, &m.name, &recorded.run_id, &seal).await?,
            _ => None,
        };
        let action = match restored {
            Some(new_seal) => {
                let updated = state::ModelState { object: Some(new_seal), ..recorded.clone() };
                state::save(warehouse, &m.name, &updated).await?;
                format!("restored from {}", publish::history_path(&m.name, &recorded.run_id))
            }
            None => {
                state::clear(warehouse, &m.name).await?;
                out.rebuild.insert(m.name.clone());
                "rebuilt".to_string()
            }
        };
        warn!(model = %m.name, object = %seal.path, found = %found.describe(), action = %action, "a materialised model was changed outside the pipeline");
        out.findings.push(TamperFinding { model: m.name.clone(), object: seal.path, found, action });
    }
    Ok(out)
}
