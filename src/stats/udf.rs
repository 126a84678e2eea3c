//! The statistical methods as SQL functions, registered in every transform and query session by
//! [`register`]: the scalar functions below and the aggregates of [`super::udaf`].
//!
//! | function | meaning |
//! |---|---|
//! | `wilson_lower(x, n)`, `wilson_upper(x, n)` | Wilson interval of the proportion `x / n` |
//! | `count_lower(o)`, `count_upper(o)` | interval of a count: exact Poisson below 10, Byar from 10 |
//! | `byar_lower(o)`, `byar_upper(o)` | Byar's interval of a count |
//! | `rate_lower(x, n, per)`, `rate_upper(x, n, per)` | interval of the crude rate `x / n × per`, from the count interval of `x` |
//! | `dobson_lower(dsr, variance, total)`, `dobson_upper(…)` | Dobson interval of a DSR |
//!
//! Every scalar function takes an optional last argument, the confidence level (0.95 when
//! omitted; 0.998 for PHE's 99.8% limits). Arguments are cast to `DOUBLE`; a null argument or an
//! undefined interval gives null.
//!
//! `rate_lower/upper` expect the raw event count: an annualised count such as
//! `x * 12 / months` is not a Poisson count and gives too narrow an interval. Compute the
//! interval on `x` and scale the result (`rate_lower(x, n, 100000) * 12 / months`).

use super::{byar, count_interval, crude_rate, dobson, wilson, Interval};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::logical_expr::expr_fn::SimpleScalarUDF;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Signature, TypeSignature, Volatility};
use datafusion::prelude::SessionContext;
use std::sync::Arc;

/// The confidence level when a function is called without one.
pub const CONFIDENCE: f64 = 0.95;

type Method = fn(&[f64], f64) -> Option<f64>;

fn lower(i: Option<Interval>) -> Option<f64> {
    i.map(|i| i.lower)
}

fn upper(i: Option<Interval>) -> Option<f64> {
    i.map(|i| i.upper)
}

/// Registers every statistical function, scalar and aggregate, in `ctx`.
pub fn register(ctx: &SessionContext) {
    for udf in all() {
        ctx.register_udf(udf);
    }
    for udaf in super::udaf::all() {
        ctx.register_udaf(udaf);
    }
}

/// Every statistical scalar UDF.
pub fn all() -> Vec<ScalarUDF> {
    let methods: [(&str, usize, Method); 10] = [
        ("wilson_lower", 2, |a, c| lower(wilson(a[0], a[1], c))),
        ("wilson_upper", 2, |a, c| upper(wilson(a[0], a[1], c))),
        ("count_lower", 1, |a, c| lower(count_interval(a[0], c))),
        ("count_upper", 1, |a, c| upper(count_interval(a[0], c))),
        ("byar_lower", 1, |a, c| lower(byar(a[0], c))),
        ("byar_upper", 1, |a, c| upper(byar(a[0], c))),
        ("rate_lower", 3, |a, c| lower(crude_rate(a[0], a[1], a[2], c))),
        ("rate_upper", 3, |a, c| upper(crude_rate(a[0], a[1], a[2], c))),
        ("dobson_lower", 3, |a, c| dobson(a[0], a[1], a[2], c).map(|d| d.0)),
        ("dobson_upper", 3, |a, c| dobson(a[0], a[1], a[2], c).map(|d| d.1)),
    ];
    methods.into_iter().map(|(name, arity, method)| udf(name, arity, method)).collect()
}

/// A valid confidence level: strictly between 0 and 1.
pub(crate) fn valid_confidence(c: f64) -> bool {
    c > 0.0 && c < 1.0
}

fn udf(name: &str, arity: usize, method: Method) -> ScalarUDF {
    let fun = Arc::new(move |args: &[ColumnarValue]| {
        let arrays = ColumnarValue::values_to_arrays(args)?;
        let columns = arrays.iter().map(|a| cast(a, &DataType::Float64)).collect::<Result<Vec<ArrayRef>, _>>()?;
        let columns: Vec<&Float64Array> = columns.iter().map(|c| c.as_primitive::<Float64Type>()).collect();
        let rows = columns.first().map(|c| c.len()).unwrap_or(0);
        let mut values = [0.0f64; 4];
        let out: Float64Array = (0..rows)
            .map(|row| {
                for (slot, c) in values.iter_mut().zip(&columns) {
                    if c.is_null(row) {
                        return None;
                    }
                    *slot = c.value(row);
                }
                let confidence = if columns.len() > arity { values[arity] } else { CONFIDENCE };
                if !valid_confidence(confidence) {
                    return None;
                }
                method(&values[..arity], confidence).filter(|v| v.is_finite())
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    });
    let signature = Signature::one_of(
        vec![
            TypeSignature::Exact(vec![DataType::Float64; arity]),
            TypeSignature::Exact(vec![DataType::Float64; arity + 1]),
        ],
        Volatility::Immutable,
    );
    ScalarUDF::from(SimpleScalarUDF::new_with_signature(name, signature, DataType::Float64, fun))
}
