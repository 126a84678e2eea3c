//! Marts that read the same inputs fail and hold together.
//!
//! A mart whose data tests fail says something may be wrong with what it read. Every other mart
//! of the same run that reads one of those inputs — an intermediate model, a mart, or the staging
//! table of a fact pipeline, looking through staging views — is held back too: it passed its own
//! tests but is not published, and its last good version stays. Reference tables (pipelines
//! loaded `full_replace`: lookups, populations, standards) are read by almost every mart and do
//! not tie marts together. A mart that reads a held mart is held as well.

use super::graph::Graph;
use super::model::Layer;
use crate::config::pipeline::{LoadMode, Pipeline};
use std::collections::{BTreeMap, BTreeSet};

/// The inputs of `model` that tie it to other marts: upstream intermediate models and marts,
/// and fact staging tables, seen through staging views.
pub fn shared_inputs(graph: &Graph, pipelines: &[Pipeline], model: &str) -> BTreeSet<String> {
    let facts: BTreeSet<&str> =
        pipelines.iter().filter(|p| p.load.mode != LoadMode::FullReplace).map(|p| p.table.as_str()).collect();
    let layers: BTreeMap<&str, Layer> = graph.models.iter().map(|m| (m.name.as_str(), m.layer)).collect();
    let mut out = BTreeSet::new();
    let mut stack = vec![model.to_string()];
    let mut seen = BTreeSet::new();
    while let Some(name) = stack.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        out.extend(graph.sources[&name].iter().filter(|t| facts.contains(t.as_str())).cloned());
        for up in &graph.upstream[&name] {
            match layers.get(up.as_str()) {
                Some(Layer::Staging) => stack.push(up.clone()),
                _ => {
                    out.insert(up.clone());
                }
            }
        }
    }
    out
}

/// Of `candidates` (marts of this run that passed their tests, in graph order), those to hold
/// back because a mart in `test_failures` reads the same inputs, or because they read a held
/// mart; each with the reason.
pub fn held_marts(
    graph: &Graph,
    pipelines: &[Pipeline],
    test_failures: &[String],
    candidates: &[String],
) -> BTreeMap<String, String> {
    let failed_inputs: Vec<(&String, BTreeSet<String>)> =
        test_failures.iter().map(|f| (f, shared_inputs(graph, pipelines, f))).collect();
    let mut held: BTreeMap<String, String> = BTreeMap::new();
    for mart in candidates {
        let inputs = shared_inputs(graph, pipelines, mart);
        if let Some(upstream) = inputs.iter().find(|i| held.contains_key(*i)) {
            held.insert(mart.clone(), format!("held back: it reads {upstream}, which was held back"));
            continue;
        }
        for (failure, theirs) in &failed_inputs {
            if let Some(common) = inputs.intersection(theirs).next() {
                let reason =
                    format!("held back: it reads {common}, as does {failure}, whose data tests failed in this run");
                held.insert(mart.clone(), reason);
                break;
            }
        }
    }
    held
}
