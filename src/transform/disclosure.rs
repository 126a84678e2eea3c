//! Statistical disclosure control applied to a mart before it is published (SPEC §6).
//!
//! - **Primary suppression**: a value in `counts` or `denominators` between 1 and
//!   `threshold - 1` is withheld (zero is published: it discloses nothing about a person).
//! - **Linked counts**: the `counts` of one row add up to its denominator (within + breaches =
//!   total), so when one of them is withheld all of them are.
//! - **Secondary suppression**: rows with equal values of `groups` are the cells of one total
//!   (the quintiles of a borough, say). Where a group has exactly one withheld cell in a column,
//!   the smallest other cell is withheld too, so that no withheld value equals a total minus the
//!   published cells. This repeats until nothing changes.
//! - **Dependent values**: on a row with anything withheld, every `dependent` column (rates,
//!   proportions, interval bounds) is withheld.
//!
//! Withheld values become null and the row's `suppressed` column is true.

use crate::error::{Error, Result};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::{cast, concat_batches, nullif};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

/// `[disclosure]` of a mart.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisclosureSpec {
    /// Smallest count published as is (default 5: counts 1–4 are withheld).
    #[serde(default = "DisclosureSpec::default_threshold")]
    pub threshold: f64,
    /// Count columns subject to primary and secondary suppression.
    pub counts: Vec<String>,
    /// Denominator columns: a row whose denominator is below the threshold has its dependent
    /// values withheld.
    #[serde(default)]
    pub denominators: Vec<String>,
    /// Values computed from the counts (rates, proportions, interval bounds).
    #[serde(default)]
    pub dependent: Vec<String>,
    /// Columns whose values identify the cells of one total (for secondary suppression).
    #[serde(default)]
    pub groups: Vec<String>,
}

impl DisclosureSpec {
    fn default_threshold() -> f64 {
        5.0
    }

    /// Checks that every named column exists in `schema`.
    pub fn check(&self, schema: &Schema) -> std::result::Result<(), String> {
        for c in self.counts.iter().chain(&self.denominators).chain(&self.dependent).chain(&self.groups) {
            if schema.index_of(c).is_err() {
                return Err(format!("disclosure names column '{c}', which the mart does not have"));
            }
        }
        if schema.index_of("suppressed").is_ok() {
            return Err("the mart must not have its own 'suppressed' column".into());
        }
        Ok(())
    }

    /// Applies suppression to the whole mart; returns it with a `suppressed` column.
    pub fn apply(&self, schema: Arc<Schema>, batches: &[RecordBatch]) -> Result<RecordBatch> {
        self.check(&schema).map_err(|e| Error::config("disclosure", e))?;
        let err = |what: &str| Error::arrow(format!("disclosure control: {what}"));
        let batch = concat_batches(&schema, batches).map_err(err("combining"))?;
        let rows = batch.num_rows();
        let mut values: HashMap<&str, Vec<Option<f64>>> = HashMap::new();
        for name in self.counts.iter().chain(&self.denominators) {
            let column = cast(batch.column_by_name(name).expect("checked"), &DataType::Float64).map_err(err(name))?;
            values.insert(name.as_str(), column.as_primitive::<Float64Type>().iter().collect());
        }
        let small = |v: Option<f64>| v.is_some_and(|x| x > 0.0 && x < self.threshold);
        // withheld[column][row]
        let mut withheld: HashMap<&str, Vec<bool>> =
            values.iter().map(|(name, v)| (*name, v.iter().map(|x| small(*x)).collect())).collect();
        let keys = group_keys(&batch, &self.groups)?;
        let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
        for (row, key) in keys.iter().enumerate() {
            groups.entry(key.as_str()).or_default().push(row);
        }
        let mut changed = true;
        while changed {
            changed = false;
            // Linked counts: one withheld count on a row withholds the row's other counts.
            for row in 0..rows {
                if self.counts.iter().any(|c| withheld[c.as_str()][row]) {
                    for c in &self.counts {
                        let mask = withheld.get_mut(c.as_str()).expect("present");
                        changed |= !mask[row];
                        mask[row] = true;
                    }
                }
            }
            // Secondary suppression, column by column, within each group.
            for name in self.counts.iter().chain(&self.denominators) {
                let v = &values[name.as_str()];
                let mask = withheld.get_mut(name.as_str()).expect("present");
                for members in groups.values().filter(|m| m.len() > 1) {
                    if members.iter().filter(|r| mask[**r]).count() != 1 {
                        continue;
                    }
                    let partner = members
                        .iter()
                        .filter(|r| !mask[**r] && v[**r].is_some())
                        .min_by(|a, b| v[**a].partial_cmp(&v[**b]).unwrap_or(std::cmp::Ordering::Equal));
                    if let Some(p) = partner {
                        mask[*p] = true;
                        changed = true;
                    }
                }
            }
        }
        let row_suppressed: Vec<bool> = (0..rows).map(|r| withheld.values().any(|m| m[r])).collect();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns() + 1);
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            let name = field.name().as_str();
            let mask = match withheld.get(name) {
                Some(mask) => Some(mask.clone()),
                None if self.dependent.iter().any(|d| d == name) => Some(row_suppressed.clone()),
                None => None,
            };
            columns.push(match mask {
                Some(mask) => nullif(column, &BooleanArray::from(mask)).map_err(err(name))?,
                None => column.clone(),
            });
        }
        columns.push(Arc::new(BooleanArray::from(row_suppressed)));
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
        fields.push(Field::new("suppressed", DataType::Boolean, false));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(err("assembling"))
    }
}

fn group_keys(batch: &RecordBatch, groups: &[String]) -> Result<Vec<String>> {
    let mut keys = vec![String::new(); batch.num_rows()];
    for name in groups {
        let column = batch.column_by_name(name).expect("checked");
        let text = cast(column, &DataType::Utf8).map_err(Error::arrow(format!("grouping by {name}")))?;
        let text = text.as_string::<i32>();
        for (row, key) in keys.iter_mut().enumerate() {
            key.push_str(if text.is_null(row) { "\u{0}" } else { text.value(row) });
            key.push('\u{1}');
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, StringArray};

    fn mart() -> (Arc<Schema>, RecordBatch) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("borough", DataType::Utf8, false),
            Field::new("quintile", DataType::Utf8, false),
            Field::new("events", DataType::Float64, true),
            Field::new("population", DataType::Float64, true),
            Field::new("rate", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["A", "A", "A", "B", "B", "C"])),
                Arc::new(StringArray::from(vec!["1", "2", "3", "1", "2", "1"])),
                Arc::new(Float64Array::from(vec![3.0, 20.0, 40.0, 0.0, 50.0, 9.0])),
                Arc::new(Float64Array::from(vec![100.0, 200.0, 300.0, 100.0, 3.0, 90.0])),
                Arc::new(Float64Array::from(vec![0.03, 0.1, 0.13, 0.0, 16.7, 0.1])),
            ],
        )
        .unwrap();
        (schema, batch)
    }

    #[test]
    fn primary_secondary_and_dependent_suppression() {
        let (schema, batch) = mart();
        let spec = DisclosureSpec {
            threshold: 5.0,
            counts: vec!["events".into()],
            denominators: vec!["population".into()],
            dependent: vec!["rate".into()],
            groups: vec!["borough".into()],
        };
        let out = spec.apply(schema, &[batch]).unwrap();
        let events = out.column_by_name("events").unwrap().as_primitive::<Float64Type>();
        let rate = out.column_by_name("rate").unwrap().as_primitive::<Float64Type>();
        let flag = out.column_by_name("suppressed").unwrap().as_boolean();
        // Borough A: 3 is withheld, and so is 20 (the smallest other cell) — 63 − 40 no longer
        // reveals either.
        assert!(events.is_null(0) && events.is_null(1) && !events.is_null(2));
        assert!(rate.is_null(0) && rate.is_null(1) && !rate.is_null(2));
        // Borough B: zero is published; the population of 3 is withheld with the rate on it,
        // and so is the other population of the borough (100), or 103 − 100 would reveal it.
        let population = out.column_by_name("population").unwrap().as_primitive::<Float64Type>();
        assert_eq!(events.value(3), 0.0);
        assert!(population.is_null(4) && population.is_null(3) && rate.is_null(4) && flag.value(4));
        // Borough C: nothing small.
        assert!(!flag.value(5));
        assert_eq!(flag.iter().filter(|f| *f == Some(true)).count(), 4);
    }

    #[test]
    fn unknown_columns_are_reported() {
        let (schema, batch) = mart();
        let spec = DisclosureSpec {
            threshold: 5.0,
            counts: vec!["nope".into()],
            denominators: vec![],
            dependent: vec![],
            groups: vec![],
        };
        assert!(spec.apply(schema, &[batch]).unwrap_err().to_string().contains("'nope'"));
    }
}
