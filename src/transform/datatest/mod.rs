//! Data tests declared beside a model (`[[tests]]` in its `.toml`). Each compiles to a query that
//! returns the failing rows; a test passes when that query returns none. A failure names the
//! model, the test and up to five sample rows. Of an intermediate model, the row, row-count and
//! unique tests are judged on the rows as they are written ([`streamed`]), with the same results;
//! the others, and the samples of a failure, query the staged object.
//!
//! ```toml
//! [[tests]]
//! kind = "not_null"          # every listed column is non-null
//! columns = ["org_code", "month"]
//! [[tests]]
//! kind = "unique"            # the combination of columns identifies a row
//! columns = ["org_code", "month", "standard"]
//! [[tests]]
//! kind = "accepted_values"
//! column = "level"
//! values = ["provider", "icb", "alliance", "england"]
//! [[tests]]
//! kind = "relationships"     # every non-null value exists in another model or table
//! column = "org_code"
//! to = "ref_ods_trusts"
//! field = "org_code"
//! [[tests]]
//! kind = "assert"            # a condition every row satisfies
//! name = "within_plus_breaches_is_total"
//! condition = "abs(within + breaches - total) < 1e-9"
//! [[tests]]
//! kind = "row_count"         # bounds on the number of rows
//! min = 1
//! [[tests]]
//! kind = "query"             # any query returning the failing rows
//! name = "england_equals_sum_of_providers"
//! query = "select ..."
//! ```

use crate::error::{Error, Result};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub mod streamed;

/// One declared data test.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataTest {
    NotNull { columns: Vec<String> },
    Unique { columns: Vec<String> },
    AcceptedValues { column: String, values: Vec<String> },
    Relationships { column: String, to: String, field: String },
    Assert { name: String, condition: String },
    RowCount { min: Option<u64>, max: Option<u64> },
    Query { name: String, query: String },
}

/// Outcome of one test.
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    pub model: String,
    pub test: String,
    pub passed: bool,
    pub failing_rows: u64,
    /// Up to five failing rows, as a text table.
    pub sample: String,
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

impl DataTest {
    /// A short name for reports.
    pub fn name(&self) -> String {
        match self {
            DataTest::NotNull { columns } => format!("not_null({})", columns.join(", ")),
            DataTest::Unique { columns } => format!("unique({})", columns.join(", ")),
            DataTest::AcceptedValues { column, .. } => format!("accepted_values({column})"),
            DataTest::Relationships { column, to, field } => format!("relationships({column} → {to}.{field})"),
            DataTest::Assert { name, .. } | DataTest::Query { name, .. } => name.clone(),
            DataTest::RowCount { min, max } => format!("row_count({min:?}..{max:?})"),
        }
    }

    /// Tables the test reads besides the model (for validation and ordering).
    pub fn reads(&self) -> Vec<String> {
        match self {
            DataTest::Relationships { to, .. } => vec![to.clone()],
            _ => vec![],
        }
    }

    /// For a test that judges each row on its own (not_null, accepted_values, assert): the
    /// condition a failing row meets. Such tests of one model are counted in one scan
    /// ([`run_all`]).
    fn failing_row_condition(&self) -> Option<String> {
        match self {
            DataTest::NotNull { columns } => {
                let any_null: Vec<String> = columns.iter().map(|c| format!("{} IS NULL", quote(c))).collect();
                Some(any_null.join(" OR "))
            }
            DataTest::AcceptedValues { column, values } => {
                let list: Vec<String> = values.iter().map(|v| literal(v)).collect();
                let c = quote(column);
                Some(format!("{c} IS NOT NULL AND CAST({c} AS VARCHAR) NOT IN ({})", list.join(", ")))
            }
            DataTest::Assert { condition, .. } => Some(format!("NOT coalesce(({condition}), false)")),
            _ => None,
        }
    }

    /// The query returning failing rows of `table`.
    pub fn failing_rows_sql(&self, table: &str) -> String {
        let t = quote(table);
        match self {
            DataTest::NotNull { .. } | DataTest::AcceptedValues { .. } | DataTest::Assert { .. } => {
                format!("SELECT * FROM {t} WHERE {}", self.failing_row_condition().unwrap_or_default())
            }
            DataTest::Unique { columns } => {
                let cols: Vec<String> = columns.iter().map(|c| quote(c)).collect();
                let cols = cols.join(", ");
                format!("SELECT {cols}, count(*) AS duplicates FROM {t} GROUP BY {cols} HAVING count(*) > 1")
            }
            DataTest::Relationships { column, to, field } => {
                let (c, f) = (quote(column), quote(field));
                format!(
                    "SELECT m.* FROM {t} m WHERE m.{c} IS NOT NULL AND NOT EXISTS \
                     (SELECT 1 FROM {} r WHERE r.{f} = m.{c})",
                    quote(to)
                )
            }
            DataTest::RowCount { min, max } => {
                let mut bounds = Vec::new();
                if let Some(min) = min {
                    bounds.push(format!("count(*) < {min}"));
                }
                if let Some(max) = max {
                    bounds.push(format!("count(*) > {max}"));
                }
                let having = if bounds.is_empty() { "false".to_string() } else { bounds.join(" OR ") };
                format!("SELECT count(*) AS row_count FROM {t} HAVING {having}")
            }
            DataTest::Query { query, .. } => query.replace("{{ model }}", &t),
        }
    }

    /// Runs the test against `table` registered in `ctx`.
    pub async fn run(&self, ctx: &SessionContext, model: &str, table: &str) -> Result<TestResult> {
        let context = format!("data test {} of {model}", self.name());
        let df = ctx.sql(&self.failing_rows_sql(table)).await.map_err(Error::datafusion(context.clone()))?;
        let failing = df.clone().count().await.map_err(Error::datafusion(context.clone()))? as u64;
        self.result(ctx, model, table, failing).await
    }

    /// The result of the test given its count of failing rows: a failing test's sample rows
    /// come from its own query.
    async fn result(&self, ctx: &SessionContext, model: &str, table: &str, failing: u64) -> Result<TestResult> {
        let context = format!("data test {} of {model}", self.name());
        let sample = if failing > 0 {
            let df = ctx.sql(&self.failing_rows_sql(table)).await.map_err(Error::datafusion(context.clone()))?;
            let batches = df.limit(0, Some(5)).map_err(Error::datafusion(context.clone()))?;
            let batches = batches.collect().await.map_err(Error::datafusion(context))?;
            pretty_format_batches(&batches).map(|t| t.to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(TestResult {
            model: model.to_string(),
            test: self.name(),
            passed: failing == 0,
            failing_rows: failing,
            sample,
        })
    }
}

/// Runs every test of a model against `table`, in declaration order, with the same results as
/// running each on its own ([`DataTest::run`]), but without scanning the table once per test:
/// - `known` holds failing-row counts already found (by test index), on the rows as they were
///   written ([`streamed::StreamedTests`]); those tests only read the table to sample a failure;
/// - of the others, the tests that judge each row on its own (not_null, accepted_values, assert)
///   and `row_count` are counted together in one scan. Should that combined query fail (a bad
///   condition, say), each test runs on its own so that the error names its test.
pub async fn run_all(
    tests: &[DataTest],
    known: &HashMap<usize, u64>,
    ctx: &SessionContext,
    model: &str,
    table: &str,
) -> Result<Vec<TestResult>> {
    let counted: Vec<usize> = (0..tests.len())
        .filter(|i| !known.contains_key(i))
        .filter(|&i| tests[i].failing_row_condition().is_some() || matches!(tests[i], DataTest::RowCount { .. }))
        .collect();
    let mut fused: Option<Vec<u64>> = None;
    if counted.len() > 1 {
        fused = fused_counts(tests, &counted, ctx, table).await.ok();
    }
    let mut results = Vec::with_capacity(tests.len());
    for (i, test) in tests.iter().enumerate() {
        let failing = known
            .get(&i)
            .copied()
            .or_else(|| fused.as_ref().and_then(|counts| counted.iter().position(|&c| c == i).map(|k| counts[k])));
        results.push(match failing {
            Some(failing) => test.result(ctx, model, table, failing).await?,
            None => test.run(ctx, model, table).await?,
        });
    }
    Ok(results)
}

/// The failing-row count of a `row_count` test with bounds `min`, `max` over `rows` rows: 1 when
/// outside them, else 0.
fn row_count_failing(min: Option<u64>, max: Option<u64>, rows: u64) -> u64 {
    u64::from(min.is_some_and(|m| rows < m) || max.is_some_and(|m| rows > m))
}

/// Failing-row counts of the tests `counted` (row tests and row counts) in one query.
async fn fused_counts(
    tests: &[DataTest],
    counted: &[usize],
    ctx: &SessionContext,
    table: &str,
) -> datafusion::error::Result<Vec<u64>> {
    let columns: Vec<String> = counted
        .iter()
        .enumerate()
        .map(|(k, &i)| match tests[i].failing_row_condition() {
            Some(condition) => format!("sum(CASE WHEN {condition} THEN 1 ELSE 0 END) AS t{k}"),
            None => format!("count(*) AS t{k}"),
        })
        .collect();
    let sql = format!("SELECT {} FROM {}", columns.join(", "), quote(table));
    let batches = ctx.sql(&sql).await?.collect().await?;
    let batch = batches.first().ok_or_else(|| datafusion::error::DataFusionError::Internal("no row".into()))?;
    let mut counts = Vec::with_capacity(counted.len());
    for (k, &i) in counted.iter().enumerate() {
        let value = datafusion::arrow::compute::cast(batch.column(k), &datafusion::arrow::datatypes::DataType::Int64)?;
        // A sum over no rows is NULL: nothing failed.
        let value = value
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .filter(|a| datafusion::arrow::array::Array::is_valid(*a, 0))
            .map_or(0, |a| a.value(0));
        let value = u64::try_from(value).unwrap_or(0);
        counts.push(match &tests[i] {
            DataTest::RowCount { min, max } => row_count_failing(*min, *max, value),
            _ => value,
        });
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    async fn ctx() -> SessionContext {
        let ctx = SessionContext::new();
        let schema = Arc::new(Schema::new(vec![
            Field::new("org", DataType::Utf8, true),
            Field::new("month", DataType::Int64, true),
            Field::new("total", DataType::Float64, true),
            Field::new("within", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("A"), Some("B"), Some("B"), None])),
                Arc::new(Int64Array::from(vec![1, 1, 1, 2])),
                Arc::new(Float64Array::from(vec![10.0, 5.0, 5.0, 1.0])),
                Arc::new(Float64Array::from(vec![9.0, 6.0, 4.0, 1.0])),
            ],
        )
        .unwrap();
        ctx.register_batch("m", batch).unwrap();
        ctx.sql("create table orgs as values ('A'), ('B')").await.unwrap();
        ctx.sql("create view ref_orgs as select column1 as org from orgs").await.unwrap();
        ctx
    }

    async fn failing(test: DataTest) -> u64 {
        test.run(&ctx().await, "m", "m").await.unwrap().failing_rows
    }

    #[tokio::test]
    async fn each_kind_finds_its_failures() {
        assert_eq!(failing(DataTest::NotNull { columns: vec!["org".into()] }).await, 1);
        assert_eq!(failing(DataTest::Unique { columns: vec!["org".into(), "month".into()] }).await, 1);
        assert_eq!(failing(DataTest::Unique { columns: vec!["org".into(), "within".into()] }).await, 0);
        let accepted = DataTest::AcceptedValues { column: "org".into(), values: vec!["A".into()] };
        assert_eq!(failing(accepted).await, 2);
        let rel = DataTest::Relationships { column: "org".into(), to: "ref_orgs".into(), field: "org".into() };
        assert_eq!(failing(rel).await, 0);
        let cond = DataTest::Assert { name: "within_le_total".into(), condition: "within <= total".into() };
        assert_eq!(failing(cond).await, 1);
        assert_eq!(failing(DataTest::RowCount { min: Some(5), max: None }).await, 1);
        assert_eq!(failing(DataTest::RowCount { min: Some(1), max: Some(4) }).await, 0);
        let q = DataTest::Query { name: "b_rows".into(), query: "select * from {{ model }} where org = 'B'".into() };
        assert_eq!(failing(q).await, 2);
    }

    #[tokio::test]
    async fn a_failure_carries_sample_rows() {
        let test = DataTest::Assert { name: "within_le_total".into(), condition: "within <= total".into() };
        let r = test.run(&ctx().await, "m", "m").await.unwrap();
        assert!(!r.passed);
        assert!(r.sample.contains("| B "), "{}", r.sample);
    }

    #[tokio::test]
    async fn tests_counted_together_give_what_each_gives_alone() {
        let ctx = ctx().await;
        let tests = vec![
            DataTest::NotNull { columns: vec!["org".into()] },
            DataTest::Unique { columns: vec!["org".into(), "month".into()] },
            DataTest::AcceptedValues { column: "org".into(), values: vec!["A".into()] },
            DataTest::Assert { name: "within_le_total".into(), condition: "within <= total".into() },
            DataTest::Assert { name: "always".into(), condition: "total > 0".into() },
            DataTest::RowCount { min: Some(5), max: None },
            DataTest::RowCount { min: Some(1), max: Some(4) },
        ];
        let together = run_all(&tests, &HashMap::new(), &ctx, "m", "m").await.unwrap();
        assert_eq!(together.len(), tests.len());
        for (test, fused) in tests.iter().zip(&together) {
            let alone = test.run(&ctx, "m", "m").await.unwrap();
            assert_eq!(
                (&fused.test, fused.passed, fused.failing_rows, &fused.sample),
                (&alone.test, alone.passed, alone.failing_rows, &alone.sample)
            );
        }
        assert_eq!(together.iter().map(|r| r.failing_rows).collect::<Vec<_>>(), vec![1, 1, 2, 1, 0, 1, 0]);
        assert!(together[3].sample.contains("| B "), "{}", together[3].sample);

        // Over no rows nothing fails but a minimum row count.
        ctx.sql("create table empty as select * from m where false").await.unwrap();
        let empty = run_all(&tests, &HashMap::new(), &ctx, "empty", "empty").await.unwrap();
        assert_eq!(empty.iter().map(|r| r.failing_rows).collect::<Vec<_>>(), vec![0, 0, 0, 0, 0, 1, 1]);
    }

    #[tokio::test]
    async fn a_bad_condition_is_an_error_naming_its_test() {
        let tests = vec![
            DataTest::NotNull { columns: vec!["org".into()] },
            DataTest::Assert { name: "no_such_column".into(), condition: "nonexistent > 0".into() },
        ];
        let err = run_all(&tests, &HashMap::new(), &ctx().await, "m", "m").await.unwrap_err().to_string();
        assert!(err.contains("no_such_column"), "{err}");
    }
}
