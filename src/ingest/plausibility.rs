//! Plausibility rules: values that parse but cannot be true.
//!
//! - Declared bounds of a contract column ([`RangeRule`]): `min`/`max` on the stored value of a
//!   numeric column (a percent column stores a proportion), `min_date`/`max_date` on a date or
//!   month column, relative bounds (`today+1y`) resolved once per file. A value outside its bounds
//!   is rejected with the rule as the reason (`max = 120: above the maximum`), so its row is
//!   quarantined like any other bad value. Nulls are not checked (nullability is its own rule).
//! - NHS numbers made of one digit repeated (`0000000000`, `4444444444`) pass the modulus-11
//!   check but are placeholders, never issued: [`nhs_number_plausible`] rejects them.

use crate::config::pipeline::{ColumnSpec, DateBound};
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Date32Type, Float64Type, Int64Type};

/// Reason given for an NHS number that is one digit repeated.
pub const REPEATED_DIGIT_REASON: &str = "invalid NHS number: one digit repeated (a placeholder, never issued)";

/// Rejects a validated NHS number whose ten digits are all the same.
pub fn nhs_number_plausible(digits: &[u8; 10]) -> Result<(), String> {
    if digits.iter().all(|d| *d == digits[0]) {
        return Err(REPEATED_DIGIT_REASON.into());
    }
    Ok(())
}

/// The declared bounds of one column, resolved for one file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RangeRule {
    min: Option<f64>,
    max: Option<f64>,
    min_date: Option<(i32, DateBound)>,
    max_date: Option<(i32, DateBound)>,
}

impl RangeRule {
    /// The rule of a column, with relative date bounds taken from `today` (days since 1970).
    pub fn new(spec: &ColumnSpec, today: i32) -> Self {
        Self {
            min: spec.min,
            max: spec.max,
            min_date: spec.min_date.map(|b| (b.resolve(today), b)),
            max_date: spec.max_date.map(|b| (b.resolve(today), b)),
        }
    }

    /// True when the column declares no bound.
    pub fn is_empty(&self) -> bool {
        self.min.is_none() && self.max.is_none() && self.min_date.is_none() && self.max_date.is_none()
    }

    /// Rows of a parsed column (Int64, Float64 or Date32) outside the bounds, with the reason.
    pub fn check(&self, array: &ArrayRef) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        if self.is_empty() {
            return out;
        }
        match array.data_type() {
            DataType::Int64 => {
                let a = array.as_primitive::<Int64Type>();
                self.numbers(a.len(), |i| a.is_valid(i).then(|| a.value(i) as f64), &mut out)
            }
            DataType::Float64 => {
                let a = array.as_primitive::<Float64Type>();
                self.numbers(a.len(), |i| a.is_valid(i).then(|| a.value(i)), &mut out)
            }
            DataType::Date32 => {
                let a = array.as_primitive::<Date32Type>();
                for i in (0..a.len()).filter(|i| a.is_valid(*i)) {
                    let v = a.value(i);
                    if let Some((min, bound)) = self.min_date.filter(|(min, _)| v < *min) {
                        out.push((i, format!("min_date = {bound}: before {}", iso(min))));
                    } else if let Some((max, bound)) = self.max_date.filter(|(max, _)| v > *max) {
                        out.push((i, format!("max_date = {bound}: after {}", iso(max))));
                    }
                }
            }
            _ => {}
        }
        out
    }

    fn numbers(&self, len: usize, value: impl Fn(usize) -> Option<f64>, out: &mut Vec<(usize, String)>) {
        for i in 0..len {
            let Some(v) = value(i) else { continue };
            if let Some(min) = self.min.filter(|min| v < *min) {
                out.push((i, format!("min = {min}: below the minimum")));
            } else if let Some(max) = self.max.filter(|max| v > *max) {
                out.push((i, format!("max = {max}: above the maximum")));
            }
        }
    }
}

fn iso(days: i32) -> String {
    let (y, m, d) = super::dates::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Date32Array, Float64Array, Int64Array};
    use std::sync::Arc;

    fn spec(toml_text: &str) -> ColumnSpec {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn numeric_bounds_name_the_rule() {
        let rule = RangeRule::new(&spec("name='age'\ntype='integer'\nmin=0\nmax=120"), 0);
        let ages: ArrayRef = Arc::new(Int64Array::from(vec![Some(-5), Some(0), None, Some(120), Some(1234)]));
        let bad = rule.check(&ages);
        assert_eq!(bad, vec![(0, "min = 0: below the minimum".into()), (4, "max = 120: above the maximum".into())]);
        let rule = RangeRule::new(&spec("name='p'\ntype='percent'\nmin=0\nmax=1"), 0);
        let coverage: ArrayRef = Arc::new(Float64Array::from(vec![0.5, 1.0, 1.2, -0.1]));
        assert_eq!(rule.check(&coverage).iter().map(|b| b.0).collect::<Vec<_>>(), [2, 3]);
    }

    #[test]
    fn date_bounds_resolve_against_today() {
        let day = |y, m, d| crate::ingest::dates::days_from_civil(y, m, d).unwrap();
        let today = day(2026, 11, 30);
        let rule = RangeRule::new(&spec("name='d'\ntype='date'\nmin_date='2000-01-01'\nmax_date='today+1y'"), today);
        let dates: ArrayRef =
            Arc::new(Date32Array::from(vec![day(1850, 1, 1), day(2024, 5, 1), day(2027, 11, 30), day(2200, 1, 1)]));
        let bad = rule.check(&dates);
        assert_eq!(
            bad,
            vec![
                (0, "min_date = 2000-01-01: before 2000-01-01".into()),
                (3, "max_date = today+1y: after 2027-11-30".into())
            ]
        );
    }

    #[test]
    fn repeated_digit_nhs_numbers_are_placeholders() {
        assert!(nhs_number_plausible(b"0000000000").is_err());
        assert!(nhs_number_plausible(b"4444444444").is_err());
        assert!(nhs_number_plausible(b"9434765919").is_ok());
        // 0000000000 passes the modulus-11 check: only this rule stops it.
        assert!(crate::ingest::nhs::validate("0000000000").is_ok());
    }
}
