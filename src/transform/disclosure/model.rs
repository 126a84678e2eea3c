//! The declared disclosure model of a mart (`[disclosure]` in its `.toml`): which columns are
//! protected counts, and every additive structure that links them, so that suppression and its
//! audit see what an attacker reading the published file can see.
//!
//! - **Identities** hold on every row: `total = sum(parts)` (within + breaches = total), or
//!   `total ≥ sum(parts)` when `complete = false` (open pathways ≥ those over 62 days).
//! - **Partitions**: within one value of the `within` columns, the rows of each value of `by`
//!   (each dimension: IMD quintile, ethnicity, age band …) add up to the same population.
//! - **Hierarchies**: within one value of `within`, each parent row equals the sum of its child
//!   rows (practice → borough, practice → IMD quintile), or is at least that sum when
//!   `complete = false`. Parent and child rows are chosen by column values (`where`) and matched
//!   by key (`parent.key = child.key`); `columns` maps a parent column to the child column it
//!   adds up (by default every count to itself), which also expresses copies (a 2019 baseline
//!   that is the activity of the 2019 row).
//! - **Same value**: a column repeated on every row of a group holds one value.
//!
//! A count is withheld when it is between 1 and `threshold − 1`; zero is published. Dependent
//! columns (rates, proportions, interval bounds) are withheld on every row with a withheld count,
//! and on rows whose public denominator (population) is below the threshold.

use datafusion::arrow::datatypes::Schema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[disclosure]` of a mart.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DisclosureSpec {
    /// The policy in plain words, shown in the catalogue.
    #[serde(default)]
    pub policy: String,
    /// Smallest count published as is (default [`DisclosureSpec::DEFAULT_THRESHOLD`]: counts
    /// 1–4 are withheld).
    #[serde(default = "DisclosureSpec::default_threshold")]
    pub threshold: f64,
    /// Smallest width the interval of values consistent with everything published may have for
    /// any withheld count (default [`DisclosureSpec::DEFAULT_PROTECTION`]).
    #[serde(default = "DisclosureSpec::default_protection")]
    pub protection: f64,
    /// Protected count columns: the cells of the additive structure.
    pub counts: Vec<String>,
    /// Denominators from public data (population): never withheld, but a row whose value is
    /// below the threshold has its dependent values withheld.
    #[serde(default)]
    pub public_denominators: Vec<String>,
    /// Values computed from the counts (rates, proportions, interval bounds).
    #[serde(default)]
    pub dependent: Vec<String>,
    /// Row identities.
    #[serde(default)]
    pub identities: Vec<Identity>,
    /// Dimensions that partition one population.
    #[serde(default)]
    pub partitions: Vec<Partition>,
    /// Parent rows that add up their child rows.
    #[serde(default)]
    pub hierarchies: Vec<Hierarchy>,
    /// Columns repeated with one value across the rows of a group.
    #[serde(default)]
    pub same_value: Vec<SameValue>,
}

/// `total = sum(parts)` (or `≥` when not complete) on every row.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub total: String,
    pub parts: Vec<String>,
    /// False when the parts do not cover the total (the rest is not published).
    #[serde(default = "yes")]
    pub complete: bool,
}

/// Within each value of `within`, every value of `by` partitions the same population.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    pub within: Vec<String>,
    pub by: String,
}

/// Within each value of `within`, a parent row adds up its child rows.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Hierarchy {
    /// What the hierarchy is, for messages ("practice → borough").
    pub name: String,
    #[serde(default)]
    pub within: Vec<String>,
    pub parent: RowSet,
    pub child: RowSet,
    /// `[parent column, child column]` pairs; empty means every count adds up itself.
    #[serde(default)]
    pub columns: Vec<[String; 2]>,
    /// False when the children need not cover the parent.
    #[serde(default = "yes")]
    pub complete: bool,
}

/// Rows chosen by column values, matched to the other side by `key`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RowSet {
    /// `column = value` conditions (values compared as text); none means every row.
    #[serde(default, rename = "where")]
    pub filter: BTreeMap<String, String>,
    /// Column matched between parent and child rows; none means every row of the set.
    #[serde(default)]
    pub key: Option<String>,
}

/// One value of `column` across the rows of each value of `within`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SameValue {
    pub column: String,
    pub within: Vec<String>,
}

fn yes() -> bool {
    true
}

impl DisclosureSpec {
    pub const DEFAULT_THRESHOLD: f64 = 5.0;
    pub const DEFAULT_PROTECTION: f64 = 5.0;

    fn default_threshold() -> f64 {
        Self::DEFAULT_THRESHOLD
    }

    fn default_protection() -> f64 {
        Self::DEFAULT_PROTECTION
    }

    /// Checks the declaration against the mart's schema: every named column exists, every
    /// column of an identity, hierarchy or same-value rule is a declared count.
    pub fn check(&self, schema: &Schema) -> std::result::Result<(), String> {
        let exists = |c: &str| -> std::result::Result<(), String> {
            schema
                .index_of(c)
                .map(|_| ())
                .map_err(|_| format!("disclosure names column '{c}', which the mart does not have"))
        };
        let counted = |c: &str| -> std::result::Result<(), String> {
            if self.counts.iter().any(|k| k == c) {
                Ok(())
            } else {
                Err(format!("disclosure structure uses '{c}', which is not one of its counts"))
            }
        };
        if self.counts.is_empty() {
            return Err("disclosure declares no counts".into());
        }
        if !(self.threshold >= 1.0 && self.protection >= 0.0) {
            return Err("disclosure threshold must be at least 1 and protection at least 0".into());
        }
        for c in self.counts.iter().chain(&self.public_denominators).chain(&self.dependent) {
            exists(c)?;
        }
        for i in &self.identities {
            for c in std::iter::once(&i.total).chain(&i.parts) {
                counted(c)?;
            }
        }
        for p in &self.partitions {
            for c in p.within.iter().chain(std::iter::once(&p.by)) {
                exists(c)?;
            }
        }
        for h in &self.hierarchies {
            for side in [&h.parent, &h.child] {
                for c in side.filter.keys().chain(side.key.iter()) {
                    exists(c)?;
                }
            }
            for c in &h.within {
                exists(c)?;
            }
            if h.parent.key.is_some() != h.child.key.is_some() {
                return Err(format!("hierarchy '{}': parent and child need a key each, or neither", h.name));
            }
            for [p, c] in &h.columns {
                counted(p)?;
                counted(c)?;
            }
        }
        for s in &self.same_value {
            counted(&s.column)?;
            for c in &s.within {
                exists(c)?;
            }
        }
        if schema.index_of("suppressed").is_ok() {
            return Err("the mart must not have its own 'suppressed' column".into());
        }
        Ok(())
    }
}
