//! Statistical disclosure control applied to a mart before it is published (SPEC §6, §9).
//!
//! Each protected mart declares its additive structure ([`model`]): row identities, dimensions
//! that partition one population, hierarchies, repeated values. That structure becomes a linear
//! system over the mart's count cells ([`structure`]); suppression withholds the small counts and
//! then whatever else an attacker would need ([`suppress`]), and is accepted only when an audit
//! by linear programming ([`audit`]) finds that no withheld cell can be narrowed, from the
//! published cells and the declared structure, to an interval narrower than the protection width.
//!
//! Withheld counts become null, so do the row's dependent values (rates, proportions, interval
//! bounds), and the row's `suppressed` column is true. The [`Audit`] summary goes into the run
//! record and the catalogue.

pub mod audit;
pub mod model;
pub mod structure;
pub mod suppress;

pub use model::DisclosureSpec;

use crate::error::{Error, Result};
use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use datafusion::arrow::compute::{concat_batches, nullif};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use structure::System;

/// What disclosure control did to one mart, for the run record and the catalogue.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Audit {
    pub threshold: f64,
    pub protection: f64,
    /// Count cells with a value.
    pub cells: usize,
    /// Cells withheld: `primary` small counts and `secondary` ones withheld to protect them.
    pub withheld: usize,
    pub primary: usize,
    pub secondary: usize,
    /// Rows with anything withheld.
    pub rows_suppressed: usize,
    /// The narrowest interval an attacker can place a withheld cell in (none when nothing is
    /// withheld or every withheld cell is unbounded).
    pub min_protection_range: Option<f64>,
    /// Linear programmes solved by the audit.
    pub linear_programmes: usize,
}

impl DisclosureSpec {
    /// Protects the whole mart; returns it with a `suppressed` column, and the audit.
    pub fn apply(&self, model: &str, schema: Arc<Schema>, batches: &[RecordBatch]) -> Result<(RecordBatch, Audit)> {
        let fail = |reason: String| Error::Disclosure { model: model.to_string(), reason };
        self.check(&schema).map_err(fail)?;
        let batch = concat_batches(&schema, batches).map_err(Error::arrow("disclosure control: combining"))?;
        let system = System::build(self, &batch)?;
        let decision = suppress::protect(&system, self.threshold, self.protection).map_err(|e| fail(e.0))?;
        let counts = system.columns.len();
        let rows = batch.num_rows();
        let mut row_suppressed: Vec<bool> =
            (0..rows).map(|r| (0..counts).any(|j| decision.withheld[r * counts + j])).collect();
        for name in &self.public_denominators {
            for (row, v) in structure::numbers(&batch, name)?.into_iter().enumerate() {
                if v.is_some_and(|x| x < self.threshold) {
                    row_suppressed[row] = true;
                }
            }
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns() + 1);
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            let name = field.name().as_str();
            let mask: Option<Vec<bool>> = match system.columns.iter().position(|c| c == name) {
                Some(j) => Some((0..rows).map(|r| decision.withheld[r * counts + j]).collect()),
                None if self.dependent.iter().any(|d| d == name) => Some(row_suppressed.clone()),
                None => None,
            };
            columns.push(match mask {
                Some(mask) => {
                    nullif(column, &BooleanArray::from(mask)).map_err(Error::arrow(format!("withholding {name}")))?
                }
                None => column.clone(),
            });
        }
        let rows_suppressed = row_suppressed.iter().filter(|s| **s).count();
        columns.push(Arc::new(BooleanArray::from(row_suppressed)));
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
        fields.push(Field::new("suppressed", DataType::Boolean, false));
        let out = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(Error::arrow("disclosure control: assembling"))?;
        let withheld = decision.withheld.iter().filter(|w| **w).count();
        let min_protection_range =
            decision.ranges.iter().map(|(_, r)| r.width()).filter(|w| w.is_finite()).reduce(f64::min);
        let audit = Audit {
            threshold: self.threshold,
            protection: self.protection,
            cells: system.values.iter().filter(|v| v.is_some()).count(),
            withheld,
            primary: decision.primary,
            secondary: withheld - decision.primary,
            rows_suppressed,
            min_protection_range,
            linear_programmes: decision.programmes,
        };
        Ok((out, audit))
    }
}

#[cfg(test)]
mod tests;
