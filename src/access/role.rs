//! Roles and what each may read (SPEC §9, "Who sees what").
//!
//! Every table a session can name falls in one [`TableKind`]. The **analyst** role reads the
//! published marts (disclosure-controlled aggregates), the run history `runs`, the `catalogue`
//! of documented marts and `information_schema`. The **engineer** role reads those and also the
//! staging views (`stg_*`), intermediate models (`int_*`), reference tables (`ref_*`) and the
//! pipelines' staging tables (`trust_pathways_*`, `cwt_*`, `screening_*`, …), some of which are
//! patient-level (pseudonym, LSOA, age, sex, dates) and so are never exposed to analysts.
//! Neither role writes: see [`super::session`].

use crate::config::pipeline::{LoadMode, Pipeline};
use crate::transform::graph::Graph;
use crate::transform::model::Layer;
use std::collections::BTreeMap;

/// Who is asking. Analysts are the default everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, clap::ValueEnum)]
pub enum Role {
    /// Published marts, `runs`, `catalogue` and `information_schema`; read-only.
    #[default]
    Analyst,
    /// Also staging views, intermediate models, reference and pipeline staging tables; read-only.
    Engineer,
}

impl Role {
    /// The role's name as typed on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Role::Analyst => "analyst",
            Role::Engineer => "engineer",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a named table is, which decides who may read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TableKind {
    /// A published mart (`marts/<name>.parquet`).
    Mart,
    /// The run history `runs`.
    Runs,
    /// The `catalogue` of documented models and columns.
    Catalogue,
    /// A staging model (`sql/staging`, a view over staging tables).
    StagingView,
    /// An intermediate model (`sql/intermediate`, `warehouse/models/`).
    Intermediate,
    /// A full-replace pipeline's table (reference data).
    Reference,
    /// Another pipeline's staging table (extracts, some patient-level).
    PipelineStaging,
}

impl TableKind {
    /// The least role that may read a table of this kind.
    pub fn needs(self) -> Role {
        match self {
            TableKind::Mart | TableKind::Runs | TableKind::Catalogue => Role::Analyst,
            TableKind::StagingView | TableKind::Intermediate | TableKind::Reference | TableKind::PipelineStaging => {
                Role::Engineer
            }
        }
    }

    /// True if `role` may read tables of this kind.
    pub fn visible_to(self, role: Role) -> bool {
        role >= self.needs()
    }

    /// How the kind is named in messages and listings.
    pub fn label(self) -> &'static str {
        match self {
            TableKind::Mart => "published mart",
            TableKind::Runs => "run history",
            TableKind::Catalogue => "catalogue",
            TableKind::StagingView => "staging view",
            TableKind::Intermediate => "intermediate model",
            TableKind::Reference => "reference table",
            TableKind::PipelineStaging => "pipeline staging table",
        }
    }
}

impl std::fmt::Display for TableKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// Every table name the warehouse defines, with its kind: the pipelines' staging tables, the
/// models of each layer, `runs` and `catalogue`. Names are lower-case, as SQL normalises them.
pub fn table_kinds(pipelines: &[Pipeline], graph: &Graph) -> BTreeMap<String, TableKind> {
    let mut kinds = BTreeMap::new();
    for p in pipelines {
        let kind = if p.load.mode == LoadMode::FullReplace { TableKind::Reference } else { TableKind::PipelineStaging };
        kinds.insert(p.table.to_lowercase(), kind);
    }
    for m in &graph.models {
        let kind = match m.layer {
            Layer::Staging => TableKind::StagingView,
            Layer::Intermediate => TableKind::Intermediate,
            Layer::Mart => TableKind::Mart,
        };
        kinds.insert(m.name.to_lowercase(), kind);
    }
    kinds.insert("runs".into(), TableKind::Runs);
    kinds.insert("catalogue".into(), TableKind::Catalogue);
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analysts_see_marts_runs_and_the_catalogue_only() {
        let analyst = [TableKind::Mart, TableKind::Runs, TableKind::Catalogue];
        for kind in analyst {
            assert!(kind.visible_to(Role::Analyst) && kind.visible_to(Role::Engineer), "{kind}");
        }
        for kind in [TableKind::StagingView, TableKind::Intermediate, TableKind::Reference, TableKind::PipelineStaging]
        {
            assert!(!kind.visible_to(Role::Analyst), "{kind}");
            assert!(kind.visible_to(Role::Engineer), "{kind}");
            assert_eq!(kind.needs(), Role::Engineer);
        }
        assert_eq!(Role::default(), Role::Analyst);
    }
}
