//! The revision guard of `replace_by_period` pipelines: a revision must look like a revision.
//!
//! A file of a guarded pipeline is written to a pending area (`_state/pending/<pipeline>/<slug>/`)
//! first. Before its objects replace the staging objects of the same months (and scope), each
//! month is compared with the object it would replace ([`verdict`]):
//!
//! - **Rows.** A revision holding fewer than `(1 - max_row_loss)` of the rows the month held is
//!   not a revision but a fragment (a half-uploaded file, a one-row test extract).
//! - **Organisations.** With `organisation_column` declared, a revision lacking an organisation
//!   the month held before has lost a provider's or a practice's data.
//!
//! Either way the file is *held*: its pending objects are deleted, staging is untouched, the
//! reason goes to `quarantine/<pipeline>/<slug>.held.json`, the report and the manifest (status
//! `held`, never `loaded`, so each run reconsiders it), and `alliance ingest|run
//! --accept-revision FILE` loads it. Months the staging table does not hold yet pass: a first
//! load has nothing to lose.

use crate::config::pipeline::RevisionGuardSpec;
use crate::error::{Error, Result};
use crate::storage::Store;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Date32Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use std::collections::{BTreeMap, BTreeSet};

/// Organisations seen per month (`YYYY-MM`) while a file is written.
#[derive(Debug, Default)]
pub struct PeriodOrganisations {
    columns: Option<(usize, usize)>,
    seen: BTreeMap<String, BTreeSet<String>>,
}

impl PeriodOrganisations {
    /// Collects values of `organisation` per month of `period` (both staging column names);
    /// collects nothing when either is absent.
    pub fn new(schema: &arrow::datatypes::Schema, period: Option<&str>, organisation: Option<&str>) -> Self {
        let index = |c: Option<&str>| c.and_then(|c| schema.index_of(c).ok());
        Self { columns: index(period).zip(index(organisation)), seen: BTreeMap::new() }
    }

    /// Notes the organisations of one normalised batch.
    pub fn observe(&mut self, batch: &RecordBatch) -> Result<()> {
        let Some((period, org)) = self.columns else { return Ok(()) };
        let periods = batch.column(period).as_primitive::<Date32Type>();
        let orgs = arrow::compute::cast(batch.column(org), &DataType::Utf8).map_err(Error::arrow("reading orgs"))?;
        let orgs = orgs.as_string::<i32>();
        for i in (0..batch.num_rows()).filter(|i| periods.is_valid(*i) && orgs.is_valid(*i)) {
            let month = super::dates::month_key(periods.value(i));
            let set = self.seen.entry(month).or_default();
            if !set.contains(orgs.value(i)) {
                set.insert(orgs.value(i).to_string());
            }
        }
        Ok(())
    }

    /// Organisations of a month.
    pub fn of(&self, month: &str) -> BTreeSet<String> {
        self.seen.get(month).cloned().unwrap_or_default()
    }
}

/// One month a revision would replace: what the staging object held and what replaces it.
#[derive(Debug, Clone, PartialEq)]
pub struct Replaced {
    pub period: String,
    pub old_rows: u64,
    pub new_rows: u64,
    /// Organisations of the old object absent from the revision (empty when not checked).
    pub missing_organisations: Vec<String>,
}

/// Why a revision is held, or `None` if it may replace what it covers.
pub fn verdict(spec: &RevisionGuardSpec, replaced: &[Replaced]) -> Option<String> {
    let mut reasons = Vec::new();
    for r in replaced.iter().filter(|r| r.old_rows > 0) {
        let kept = r.new_rows as f64 / r.old_rows as f64;
        if 1.0 - kept > spec.max_row_loss + 1e-12 {
            reasons.push(format!(
                "{} would go from {} rows to {} (loses {:.1}%, more than max_row_loss = {})",
                r.period,
                r.old_rows,
                r.new_rows,
                (1.0 - kept) * 100.0,
                spec.max_row_loss
            ));
        }
        if !r.missing_organisations.is_empty() {
            let column = spec.organisation_column.as_deref().unwrap_or("organisation");
            let shown: Vec<&str> = r.missing_organisations.iter().take(5).map(String::as_str).collect();
            let more = r.missing_organisations.len().saturating_sub(shown.len());
            reasons.push(format!(
                "{} would lose {} {column} value(s) present before ({}{})",
                r.period,
                r.missing_organisations.len(),
                shown.join(", "),
                if more > 0 { format!(" and {more} more") } else { String::new() }
            ));
        }
    }
    (!reasons.is_empty()).then(|| format!("revision guard: {}", reasons.join("; ")))
}

/// Distinct values of `column` (as text) in a staging object.
pub async fn object_values(store: &Store, path: &str, column: &str) -> Result<BTreeSet<String>> {
    let Some(bytes) = store.get_opt(path).await? else { return Ok(BTreeSet::new()) };
    let context = || format!("reading {} of {}", column, store.display(path));
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(Error::parquet(context()))?;
    let Some(index) = builder.schema().index_of(column).ok() else { return Ok(BTreeSet::new()) };
    let mask = ProjectionMask::roots(builder.parquet_schema(), [index]);
    let reader = builder.with_projection(mask).build().map_err(Error::parquet(context()))?;
    let mut values = BTreeSet::new();
    for batch in reader {
        let batch = batch.map_err(Error::arrow(context()))?;
        let text = arrow::compute::cast(batch.column(0), &DataType::Utf8).map_err(Error::arrow(context()))?;
        let text = text.as_string::<i32>();
        values.extend((0..text.len()).filter(|i| text.is_valid(*i)).map(|i| text.value(i).to_string()));
    }
    Ok(values)
}

/// Whether `--accept-revision NAME` names the landing file `path`: its landing path, its file
/// name, or a trailing part of its path.
pub fn names_file(name: &str, path: &str) -> bool {
    let name = name.trim().trim_start_matches('/');
    !name.is_empty() && (path == name || path.ends_with(&format!("/{name}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn month(old: u64, new: u64, missing: &[&str]) -> Replaced {
        Replaced {
            period: "2023-04".into(),
            old_rows: old,
            new_rows: new,
            missing_organisations: missing.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn more_than_half_lost_or_an_organisation_gone_is_held() {
        let spec = RevisionGuardSpec { organisation_column: Some("org_code".into()), ..Default::default() };
        assert_eq!(verdict(&spec, &[month(8465, 8470, &[]), month(0, 1, &[])]), None);
        assert_eq!(verdict(&spec, &[month(100, 50, &[])]), None, "exactly half lost is allowed");
        let held = verdict(&spec, &[month(8465, 1, &[])]).unwrap();
        assert!(held.contains("2023-04 would go from 8465 rows to 1") && held.contains("max_row_loss = 0.5"), "{held}");
        let held = verdict(&spec, &[month(100, 99, &["RF4"])]).unwrap();
        assert!(held.contains("lose 1 org_code value(s) present before (RF4)"), "{held}");
        let loose = RevisionGuardSpec { max_row_loss: 1.0, ..Default::default() };
        assert_eq!(verdict(&loose, &[month(8465, 1, &[])]), None);
    }

    #[test]
    fn accept_names_a_file_by_path_or_name() {
        let path = "cwt/CWT-Provider-Final.xlsx";
        assert!(names_file(path, path) && names_file("CWT-Provider-Final.xlsx", path));
        assert!(names_file("/cwt/CWT-Provider-Final.xlsx", path));
        assert!(!names_file("Final.xlsx", path) && !names_file("", path) && !names_file("cwt", path));
    }
}
