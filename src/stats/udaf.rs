//! The standardised rate and the inequality indices as SQL aggregate functions, backed by the same
//! code as [`super::dsr`] and [`super::sii()`] (tested against PHE's published values), and used
//! by the marts `mart_referral_rates` and `mart_inequality_gaps`.
//!
//! | aggregate | meaning |
//! |---|---|
//! | `dsr(count, population, standard_weight, per)` | directly standardised rate per `per`: one input row per stratum (age band) |
//! | `dsr_lower(…, per [, confidence])`, `dsr_upper(…)` | its Dobson interval (Byar on the total count), 95% unless a confidence such as 0.998 is given |
//! | `sii(rank_key, population, value [, transform])` | slope index of inequality: one input row per deprivation quantile |
//! | `rii(rank_key, population, value [, transform])` | relative index of inequality |
//!
//! **DSR.** `dsr` also takes the optional confidence (it does not change the rate). The three
//! return null below 10 events in the group (as PHE), when a stratum's population is null, zero
//! or negative, a count negative, or a standard weight or `per` null. A null count is no events
//! (PHE's `testdata_tiny`). `per` must be the same in every row of a group (an error otherwise); a
//! rate a year over `m` months of data is `per = 100000 * 12 / m`: the Dobson interval scales
//! exactly, so no count is annualised. The confidence must be a constant.
//!
//! **SII/RII.** Rows are sorted by `rank_key` ascending: **1 = most deprived** (IMD quintile or
//! decile 1 first, as PHE's quantile 1). The SII is the fitted value at the least deprived end
//! minus at the most deprived end; the RII their ratio. `transform` is a constant `'none'`
//! (default, PHE's default for every value type), `'log'` (rates) or `'logit'` (proportions in
//! 0–1). The result is null with fewer than two rows, a null key, population or value in the
//! group, or a population that is not positive; a key that appears twice in a group is an error.

use super::sii::{sii, SiiTransform};
use super::udf::{valid_confidence, CONFIDENCE};
use super::{DsrSum, Stratum};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility};
use datafusion::physical_expr::expressions::Literal;
use std::sync::Arc;

/// Every statistical aggregate UDF.
pub fn all() -> Vec<AggregateUDF> {
    vec![
        AggregateUDF::from(Dsr::new("dsr", DsrOutput::Value)),
        AggregateUDF::from(Dsr::new("dsr_lower", DsrOutput::Lower)),
        AggregateUDF::from(Dsr::new("dsr_upper", DsrOutput::Upper)),
        AggregateUDF::from(Inequality::new("sii", SiiOutput::Sii)),
        AggregateUDF::from(Inequality::new("rii", SiiOutput::Rii)),
    ]
}

/// Numeric (or NULL) arguments coerced to `DOUBLE`; anything else is a planning error.
fn coerce_numeric(name: &str, types: &[DataType]) -> Result<Vec<DataType>> {
    types
        .iter()
        .map(|t| match t {
            t if t.is_numeric() || *t == DataType::Null => Ok(DataType::Float64),
            other => plan_err!("{name}: numeric arguments expected, got {other}"),
        })
        .collect()
}

/// The constant argument `i` of an aggregate call, if given.
fn constant(args: &AccumulatorArgs, i: usize, what: &str) -> Result<Option<ScalarValue>> {
    let Some(expr) = args.exprs.get(i) else { return Ok(None) };
    match expr.downcast_ref::<Literal>() {
        Some(literal) => Ok(Some(literal.value().clone())),
        None => plan_err!("{}: the {what} must be a constant", args.name),
    }
}

fn float_column(array: &ArrayRef) -> Result<ArrayRef> {
    Ok(cast(array, &DataType::Float64)?)
}

fn list_field(name: String) -> FieldRef {
    Arc::new(Field::new_list(name, Field::new_list_field(DataType::Float64, true), true))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum DsrOutput {
    Value,
    Lower,
    Upper,
}

/// `dsr`, `dsr_lower`, `dsr_upper`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Dsr {
    name: &'static str,
    output: DsrOutput,
    signature: Signature,
}

impl Dsr {
    fn new(name: &'static str, output: DsrOutput) -> Self {
        Dsr { name, output, signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl AggregateUDFImpl for Dsr {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        if !(4..=5).contains(&types.len()) {
            return plan_err!("{}(count, population, standard_weight, per [, confidence])", self.name);
        }
        coerce_numeric(self.name, types)
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let confidence = match constant(&args, 4, "confidence")? {
            None => CONFIDENCE,
            Some(ScalarValue::Float64(Some(c))) if valid_confidence(c) => c,
            Some(other) => return plan_err!("{}: confidence must be in (0, 1), got {other}", self.name),
        };
        Ok(Box::new(DsrAccumulator { output: self.output, confidence, sum: DsrSum::default(), per: None }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let f = |n: &str, t: DataType| Arc::new(Field::new(format_state_name(args.name, n), t, true));
        Ok(vec![
            f("count", DataType::Float64),
            f("weights", DataType::Float64),
            f("rate", DataType::Float64),
            f("variance", DataType::Float64),
            f("invalid", DataType::Boolean),
            f("per", DataType::Float64),
        ])
    }
}

#[derive(Debug)]
struct DsrAccumulator {
    output: DsrOutput,
    confidence: f64,
    sum: DsrSum,
    per: Option<f64>,
}

impl DsrAccumulator {
    fn set_per(&mut self, per: f64) -> Result<()> {
        match self.per {
            None => self.per = Some(per),
            Some(p) if (p - per).abs() <= 1e-12 * p.abs().max(per.abs()) => {}
            Some(p) => return exec_err!("dsr: `per` must be the same in every row of a group ({p} and {per})"),
        }
        Ok(())
    }
}

impl Accumulator for DsrAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let columns = values.iter().take(4).map(float_column).collect::<Result<Vec<_>>>()?;
        let [count, population, standard, per] = [0, 1, 2, 3].map(|i| columns[i].as_primitive::<Float64Type>());
        for row in 0..count.len() {
            if population.is_null(row) || standard.is_null(row) || per.is_null(row) {
                self.sum.invalid = true;
                continue;
            }
            self.set_per(per.value(row))?;
            let count = if count.is_null(row) { 0.0 } else { count.value(row) };
            self.sum.add(Stratum { count, population: population.value(row), standard: standard.value(row) });
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let s = &self.sum;
        Ok(vec![
            ScalarValue::Float64(Some(s.count)),
            ScalarValue::Float64(Some(s.weights)),
            ScalarValue::Float64(Some(s.rate)),
            ScalarValue::Float64(Some(s.variance)),
            ScalarValue::Boolean(Some(s.invalid)),
            ScalarValue::Float64(self.per),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let floats: Vec<_> = [0, 1, 2, 3, 5].iter().map(|&i| states[i].as_primitive::<Float64Type>()).collect();
        let invalid = states[4].as_boolean();
        for row in 0..invalid.len() {
            let part = DsrSum {
                count: floats[0].value(row),
                weights: floats[1].value(row),
                rate: floats[2].value(row),
                variance: floats[3].value(row),
                invalid: invalid.value(row),
            };
            self.sum.merge(&part);
            if floats[4].is_valid(row) {
                self.set_per(floats[4].value(row))?;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let interval = self.per.and_then(|per| self.sum.finish(per, self.confidence));
        let value = interval.map(|i| match self.output {
            DsrOutput::Value => i.value,
            DsrOutput::Lower => i.lower,
            DsrOutput::Upper => i.upper,
        });
        Ok(ScalarValue::Float64(value.filter(|v| v.is_finite())))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SiiOutput {
    Sii,
    Rii,
}

/// `sii`, `rii`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Inequality {
    name: &'static str,
    output: SiiOutput,
    signature: Signature,
}

impl Inequality {
    fn new(name: &'static str, output: SiiOutput) -> Self {
        Inequality { name, output, signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl AggregateUDFImpl for Inequality {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        if !(3..=4).contains(&types.len()) {
            return plan_err!("{}(rank_key, population, value [, transform])", self.name);
        }
        let mut coerced = coerce_numeric(self.name, &types[..3])?;
        if let Some(t) = types.get(3) {
            match t {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => coerced.push(DataType::Utf8),
                other => return plan_err!("{}: transform must be 'none', 'log' or 'logit', got {other}", self.name),
            }
        }
        Ok(coerced)
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let transform = match constant(&args, 3, "transform")? {
            None => SiiTransform::None,
            Some(ScalarValue::Utf8(Some(name))) => match SiiTransform::parse(&name) {
                Some(t) => t,
                None => return plan_err!("{}: transform must be 'none', 'log' or 'logit', got '{name}'", self.name),
            },
            Some(other) => return plan_err!("{}: transform must be 'none', 'log' or 'logit', got {other}", self.name),
        };
        Ok(Box::new(SiiAccumulator { output: self.output, transform, rows: Vec::new(), invalid: false }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            list_field(format_state_name(args.name, "keys")),
            list_field(format_state_name(args.name, "populations")),
            list_field(format_state_name(args.name, "values")),
            Arc::new(Field::new(format_state_name(args.name, "invalid"), DataType::Boolean, true)),
        ])
    }
}

#[derive(Debug)]
struct SiiAccumulator {
    output: SiiOutput,
    transform: SiiTransform,
    /// (rank key, population, value) per quantile.
    rows: Vec<(f64, f64, f64)>,
    /// A row had a null key, population or value.
    invalid: bool,
}

impl SiiAccumulator {
    fn add_rows(&mut self, keys: &dyn Array, populations: &dyn Array, values: &dyn Array) {
        let [k, p, v] = [keys, populations, values].map(|a| a.as_primitive::<Float64Type>());
        for row in 0..k.len() {
            if k.is_null(row) || p.is_null(row) || v.is_null(row) {
                self.invalid = true;
            } else {
                self.rows.push((k.value(row), p.value(row), v.value(row)));
            }
        }
    }
}

impl Accumulator for SiiAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let columns = values.iter().take(3).map(float_column).collect::<Result<Vec<_>>>()?;
        self.add_rows(&columns[0], &columns[1], &columns[2]);
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = |f: fn(&(f64, f64, f64)) -> f64| {
            let items = self.rows.iter().map(|r| Some(f(r)));
            ScalarValue::List(Arc::new(ListArray::from_iter_primitive::<Float64Type, _, _>([Some(items)])))
        };
        Ok(vec![list(|r| r.0), list(|r| r.1), list(|r| r.2), ScalarValue::Boolean(Some(self.invalid))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [keys, populations, values] = [0, 1, 2].map(|i| states[i].as_list::<i32>());
        let invalid = states[3].as_boolean();
        for row in 0..invalid.len() {
            self.invalid |= invalid.is_valid(row) && invalid.value(row);
            if keys.is_valid(row) {
                self.add_rows(&keys.value(row), &populations.value(row), &values.value(row));
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.invalid {
            return Ok(ScalarValue::Float64(None));
        }
        self.rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        if let Some(w) = self.rows.windows(2).find(|w| w[0].0 == w[1].0) {
            return exec_err!("sii/rii: the rank key {} appears more than once in one group", w[0].0);
        }
        let groups: Vec<(f64, f64)> = self.rows.iter().map(|r| (r.1, r.2)).collect();
        let value = sii(&groups, self.transform).map(|s| match self.output {
            SiiOutput::Sii => s.sii,
            SiiOutput::Rii => s.rii,
        });
        Ok(ScalarValue::Float64(value.filter(|v| v.is_finite())))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.rows.capacity() * std::mem::size_of::<(f64, f64, f64)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Float64Array;

    fn column(values: &[f64]) -> ArrayRef {
        Arc::new(Float64Array::from(values.to_vec()))
    }

    /// Splits rows over two accumulators, merges their states into a third: the same result as
    /// one accumulator over every row (the partial/final aggregation of a partitioned plan).
    fn merged(
        new: impl Fn() -> Box<dyn Accumulator>,
        columns: &[Vec<f64>],
        split: usize,
    ) -> (ScalarValue, ScalarValue) {
        let batch =
            |range: std::ops::Range<usize>| columns.iter().map(|c| column(&c[range.clone()])).collect::<Vec<_>>();
        let rows = columns[0].len();
        let mut whole = new();
        whole.update_batch(&batch(0..rows)).unwrap();
        let (mut a, mut b, mut total) = (new(), new(), new());
        a.update_batch(&batch(0..split)).unwrap();
        b.update_batch(&batch(split..rows)).unwrap();
        let states: Vec<Vec<ScalarValue>> = vec![a.state().unwrap(), b.state().unwrap()];
        let arrays: Vec<ArrayRef> = (0..states[0].len())
            .map(|i| ScalarValue::iter_to_array(states.iter().map(|s| s[i].clone())).unwrap())
            .collect();
        total.merge_batch(&arrays).unwrap();
        (whole.evaluate().unwrap(), total.evaluate().unwrap())
    }

    #[test]
    fn dsr_states_merge() {
        let dsr = || -> Box<dyn Accumulator> {
            Box::new(DsrAccumulator { output: DsrOutput::Lower, confidence: 0.95, sum: DsrSum::default(), per: None })
        };
        let columns = vec![
            vec![12.0, 4.0, 3.0, 8.0, 5.0],
            vec![636.0, 558.0, 609.0, 669.0, 522.0],
            vec![5000.0, 5500.0, 5500.0, 6500.0, 6500.0],
            vec![100_000.0; 5],
        ];
        let (whole, merged) = merged(dsr, &columns, 2);
        let (ScalarValue::Float64(Some(w)), ScalarValue::Float64(Some(m))) = (whole, merged) else { panic!() };
        assert!((w - m).abs() < 1e-9, "{w} vs {m}");
    }

    #[test]
    fn sii_states_merge_and_sort() {
        let sii = || -> Box<dyn Accumulator> {
            Box::new(SiiAccumulator {
                output: SiiOutput::Sii,
                transform: SiiTransform::None,
                rows: vec![],
                invalid: false,
            })
        };
        // Exactly linear in the mid-point rank (0.1 … 0.9): SII 5, rows given out of order.
        let columns = vec![vec![3.0, 1.0, 5.0, 2.0, 4.0], vec![100.0; 5], vec![12.5, 10.5, 14.5, 11.5, 13.5]];
        let (whole, merged) = merged(sii, &columns, 3);
        assert_eq!(whole, merged);
        let ScalarValue::Float64(Some(s)) = whole else { panic!() };
        assert!((s - 5.0).abs() < 1e-9, "{s}");
    }
}
