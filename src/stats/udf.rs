//! The statistical methods as SQL scalar functions, registered in every transform session.
//!
//! | function | meaning (95% unless named) |
//! |---|---|
//! | `wilson_lower(x, n)`, `wilson_upper(x, n)` | Wilson interval of the proportion `x / n` |
//! | `count_lower(o)`, `count_upper(o)` | interval of a count: exact Poisson below 10, Byar from 10 |
//! | `byar_lower(o)`, `byar_upper(o)` | Byar's interval of a count |
//! | `rate_lower(x, n, per)`, `rate_upper(x, n, per)` | interval of the crude rate `x / n × per` |
//! | `dobson_lower(dsr, variance, total)`, `dobson_upper(…)` | Dobson interval of a DSR |
//!
//! Arguments are cast to `DOUBLE`; a null argument or an undefined interval gives null.

use super::{byar, count_interval, crude_rate, dobson, wilson, Interval};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::logical_expr::{create_udf, ColumnarValue, ScalarUDF, Volatility};
use std::sync::Arc;

const CONFIDENCE: f64 = 0.95;

type Method = fn(&[f64]) -> Option<f64>;

fn lower(i: Option<Interval>) -> Option<f64> {
    i.map(|i| i.lower)
}

fn upper(i: Option<Interval>) -> Option<f64> {
    i.map(|i| i.upper)
}

/// Every statistical UDF.
pub fn all() -> Vec<ScalarUDF> {
    let methods: [(&str, usize, Method); 10] = [
        ("wilson_lower", 2, |a| lower(wilson(a[0], a[1], CONFIDENCE))),
        ("wilson_upper", 2, |a| upper(wilson(a[0], a[1], CONFIDENCE))),
        ("count_lower", 1, |a| lower(count_interval(a[0], CONFIDENCE))),
        ("count_upper", 1, |a| upper(count_interval(a[0], CONFIDENCE))),
        ("byar_lower", 1, |a| lower(byar(a[0], CONFIDENCE))),
        ("byar_upper", 1, |a| upper(byar(a[0], CONFIDENCE))),
        ("rate_lower", 3, |a| lower(crude_rate(a[0], a[1], a[2], CONFIDENCE))),
        ("rate_upper", 3, |a| upper(crude_rate(a[0], a[1], a[2], CONFIDENCE))),
        ("dobson_lower", 3, |a| dobson(a[0], a[1], a[2], CONFIDENCE).map(|d| d.0)),
        ("dobson_upper", 3, |a| dobson(a[0], a[1], a[2], CONFIDENCE).map(|d| d.1)),
    ];
    methods.into_iter().map(|(name, arity, method)| udf(name, arity, method)).collect()
}

fn udf(name: &str, arity: usize, method: Method) -> ScalarUDF {
    let fun = Arc::new(move |args: &[ColumnarValue]| {
        let arrays = ColumnarValue::values_to_arrays(args)?;
        let columns = arrays.iter().map(|a| cast(a, &DataType::Float64)).collect::<Result<Vec<ArrayRef>, _>>()?;
        let columns: Vec<&Float64Array> = columns.iter().map(|c| c.as_primitive::<Float64Type>()).collect();
        let rows = columns.first().map(|c| c.len()).unwrap_or(0);
        let mut values = [0.0f64; 3];
        let out: Float64Array = (0..rows)
            .map(|row| {
                for (slot, c) in values.iter_mut().zip(&columns) {
                    if c.is_null(row) {
                        return None;
                    }
                    *slot = c.value(row);
                }
                method(&values[..columns.len()]).filter(|v| v.is_finite())
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    });
    create_udf(name, vec![DataType::Float64; arity], DataType::Float64, Volatility::Immutable, fun)
}
