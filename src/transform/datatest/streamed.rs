//! Data tests judged on an intermediate model's rows as they are written to its staged object,
//! so that a model of tens of millions of rows is not read back and decoded again to be tested.
//!
//! - **Row tests** (not_null, accepted_values, assert) and **row_count**: each failing-row
//!   condition is compiled once against the model's output schema and counted batch by batch,
//!   as the fused query counts it (`sum(CASE WHEN condition THEN 1 ELSE 0 END)`): a row fails
//!   when its condition is true, not when it is NULL.
//! - **unique**: a 64-bit hash of every row's key columns is kept, 8 bytes a row, reserved from
//!   the session's memory pool. If no two hashes agree, no two keys do (equal keys hash alike,
//!   NULLs included, as `GROUP BY` puts NULLs together), and the test passes without a scan. If
//!   two agree (a duplicate, or two keys that happen to hash alike), the exact SQL test runs on
//!   the staged object: it counts the duplicates and samples them.
//! - Whatever cannot be judged so runs as SQL afterwards ([`super::run_all`]), with the same
//!   result as before: relationships and query tests, a condition that does not compile to a row
//!   expression (a subquery, an aggregate), one whose evaluation fails (the SQL run then names
//!   the test in its error), hashes that would not fit in the memory pool.
//!
//! A failing count found here is still reported with sample rows from the staged object.

use super::{row_count_failing, DataTest};
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::hash_utils::{create_hashes, QualityRandomState};
use datafusion::common::DFSchema;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use std::collections::HashMap;
use std::sync::Arc;

/// The fixed hash state of the unique tests' key hashes (any fixed seed will do: the hashes
/// live for one model run).
const KEY_HASHES: QualityRandomState = QualityRandomState::with_seed(0x616c_6c69_616e_6365);

/// A row test's compiled condition and its failing rows so far.
struct RowTest {
    test: usize,
    condition: Arc<dyn PhysicalExpr>,
    failing: u64,
}

/// A unique test's key columns and the hash of every row's key so far; `None` once given up.
struct UniqueTest {
    test: usize,
    columns: Vec<usize>,
    hashes: Option<Vec<u64>>,
    reservation: MemoryReservation,
}

/// The tests of one model being judged on its rows as they stream past; see the module docs.
pub struct StreamedTests {
    row_tests: Vec<RowTest>,
    /// Row-count tests: index and bounds (min, max).
    row_counts: Vec<(usize, Option<u64>, Option<u64>)>,
    unique: Vec<UniqueTest>,
    rows: u64,
}

impl StreamedTests {
    /// Compiles what can be judged on the stream of rows of `schema` (the batches given to
    /// [`Self::observe`] have it); the rest is left to SQL.
    pub fn plan(tests: &[DataTest], ctx: &SessionContext, schema: &SchemaRef) -> Self {
        let mut streamed = Self { row_tests: Vec::new(), row_counts: Vec::new(), unique: Vec::new(), rows: 0 };
        let Ok(df_schema) = DFSchema::try_from(schema.as_ref().clone()) else { return streamed };
        for (i, test) in tests.iter().enumerate() {
            match test {
                DataTest::RowCount { min, max } => streamed.row_counts.push((i, *min, *max)),
                DataTest::Unique { columns } => {
                    let indices: Option<Vec<usize>> = columns.iter().map(|c| schema.index_of(c).ok()).collect();
                    if let Some(columns) = indices.filter(|c| !c.is_empty()) {
                        let consumer = MemoryConsumer::new(format!("unique test key hashes #{i}"));
                        let reservation = consumer.register(&ctx.runtime_env().memory_pool);
                        streamed.unique.push(UniqueTest { test: i, columns, hashes: Some(Vec::new()), reservation });
                    }
                }
                _ => {
                    let Some(condition) = test.failing_row_condition() else { continue };
                    let compiled = compile(ctx, &condition, &df_schema);
                    if let Ok(condition) = compiled {
                        streamed.row_tests.push(RowTest { test: i, condition, failing: 0 });
                    }
                }
            }
        }
        streamed
    }

    /// Judges one batch of the model's rows.
    pub fn observe(&mut self, batch: &RecordBatch) {
        self.rows += batch.num_rows() as u64;
        self.row_tests.retain_mut(|t| match failing_rows(t.condition.as_ref(), batch) {
            Some(failing) => {
                t.failing += failing;
                true
            }
            None => false,
        });
        for u in &mut self.unique {
            let Some(hashes) = u.hashes.as_mut() else { continue };
            if !append_key_hashes(hashes, &mut u.reservation, &u.columns, batch) {
                u.hashes = None;
                u.reservation.free();
            }
        }
    }

    /// The failing-row counts known without a scan, by test index into the model's tests.
    pub fn finish(self) -> HashMap<usize, u64> {
        let mut known: HashMap<usize, u64> = self.row_tests.iter().map(|t| (t.test, t.failing)).collect();
        for &(i, min, max) in &self.row_counts {
            known.insert(i, row_count_failing(min, max, self.rows));
        }
        for mut u in self.unique {
            if let Some(hashes) = u.hashes.as_mut() {
                hashes.sort_unstable();
                if !hashes.windows(2).any(|w| w[0] == w[1]) {
                    known.insert(u.test, 0);
                }
            }
            u.reservation.free();
        }
        known
    }
}

/// A failing-row condition as an expression over one batch: parsed, its types coerced and
/// simplified as the planner would (`coalesce` becomes a `CASE`, which is all the physical layer
/// knows of it), then planned.
fn compile(
    ctx: &SessionContext,
    condition: &str,
    schema: &DFSchema,
) -> datafusion::error::Result<Arc<dyn PhysicalExpr>> {
    let expr = ctx.parse_sql_expr(condition, schema)?;
    let state = ctx.state();
    let simplify = SimplifyContext::builder()
        .with_schema(Arc::new(schema.clone()))
        .with_config_options(Arc::clone(state.config_options()))
        .build();
    let simplifier = ExprSimplifier::new(simplify);
    let expr = simplifier.simplify(simplifier.coerce(expr, schema)?)?;
    ctx.create_physical_expr(expr, schema)
}

/// Rows of `batch` meeting a failing-row condition; `None` if it cannot be evaluated.
fn failing_rows(condition: &dyn PhysicalExpr, batch: &RecordBatch) -> Option<u64> {
    let value = condition.evaluate(batch).ok()?.into_array(batch.num_rows()).ok()?;
    let failing = value.as_any().downcast_ref::<BooleanArray>()?;
    Some(failing.true_count() as u64)
}

/// Appends the hashes of `batch`'s keys, growing the memory reservation first; false if the
/// pool has no room for them (or the key cannot be hashed).
fn append_key_hashes(
    hashes: &mut Vec<u64>,
    reservation: &mut MemoryReservation,
    columns: &[usize],
    batch: &RecordBatch,
) -> bool {
    let n = batch.num_rows();
    if hashes.len() + n > hashes.capacity() {
        let wanted = (hashes.capacity() * 2).max(hashes.len() + n).max(1 << 16);
        let more = (wanted - hashes.capacity()) * std::mem::size_of::<u64>();
        if reservation.try_grow(more).is_err() {
            return false;
        }
        hashes.reserve_exact(wanted - hashes.len());
    }
    let keys: Vec<ArrayRef> = columns.iter().map(|&c| batch.column(c).clone()).collect();
    let start = hashes.len();
    hashes.resize(start + n, 0);
    create_hashes(keys.iter(), &KEY_HASHES, &mut hashes[start..]).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::datatest::run_all;
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::execution::memory_pool::GreedyMemoryPool;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::prelude::SessionConfig;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("org", DataType::Utf8, true),
            Field::new("month", DataType::Int64, true),
            Field::new("total", DataType::Float64, true),
        ]))
    }

    type Row = (Option<&'static str>, Option<i64>, Option<f64>);

    fn batch(rows: &[Row]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
                Arc::new(Int64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
                Arc::new(Float64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
            ],
        )
        .unwrap()
    }

    fn tests() -> Vec<DataTest> {
        vec![
            DataTest::Unique { columns: vec!["org".into(), "month".into()] },
            DataTest::Unique { columns: vec!["month".into()] },
            DataTest::NotNull { columns: vec!["org".into(), "total".into()] },
            DataTest::AcceptedValues { column: "month".into(), values: vec!["1".into(), "2".into()] },
            DataTest::Assert { name: "positive".into(), condition: "total > 0".into() },
            DataTest::Assert { name: "in_ref".into(), condition: "org IN (SELECT org FROM m)".into() },
            DataTest::RowCount { min: Some(3), max: Some(5) },
            DataTest::Relationships { column: "org".into(), to: "m".into(), field: "org".into() },
        ]
    }

    /// The results of `tests` on `batches`: judged on the stream (then SQL for the rest), and by
    /// SQL alone, test by test — the oracle the stream must agree with.
    async fn both_ways(ctx: &SessionContext, batches: &[RecordBatch]) -> (Vec<(bool, u64)>, Vec<(bool, u64)>, usize) {
        let tests = tests();
        let table = MemTable::try_new(schema(), vec![batches.to_vec()]).unwrap();
        ctx.deregister_table("m").unwrap();
        ctx.register_table("m", Arc::new(table)).unwrap();
        let mut streamed = StreamedTests::plan(&tests, ctx, &schema());
        for b in batches {
            streamed.observe(b);
        }
        let known = streamed.finish();
        let judged = run_all(&tests, &known, ctx, "m", "m").await.unwrap();
        let mut alone = Vec::new();
        for t in &tests {
            let r = t.run(ctx, "m", "m").await.unwrap();
            alone.push((r.passed, r.failing_rows));
        }
        (judged.iter().map(|r| (r.passed, r.failing_rows)).collect(), alone, known.len())
    }

    #[tokio::test]
    async fn judged_on_the_stream_as_sql_judges_the_table() {
        let ctx = SessionContext::new();
        // Duplicates across batches, NULL keys twice (GROUP BY puts them together), NULL conditions.
        let batches = [
            batch(&[(Some("A"), Some(1), Some(1.0)), (Some("B"), Some(1), None), (None, None, Some(-1.0))]),
            batch(&[]),
            batch(&[(Some("A"), Some(1), Some(2.0)), (None, None, Some(0.0)), (Some("C"), Some(7), Some(3.0))]),
        ];
        let (judged, alone, known) = both_ways(&ctx, &batches).await;
        assert_eq!(judged, alone);
        assert_eq!(
            alone,
            vec![(false, 2), (false, 2), (false, 3), (false, 1), (false, 3), (false, 2), (false, 1), (true, 0)]
        );
        // Judged on the stream: not_null, accepted_values, the row assert, row_count; the unique
        // tests found agreeing hashes, so SQL counted them; the subquery and relationships ran as SQL.
        assert_eq!(known, 4);

        let distinct =
            [batch(&[(Some("A"), Some(1), Some(1.0)), (Some("B"), Some(2), Some(2.0)), (Some("C"), None, Some(3.0))])];
        let (judged, alone, known) = both_ways(&ctx, &distinct).await;
        assert_eq!(judged, alone);
        assert!(alone[..2].iter().all(|&(passed, _)| passed));
        assert_eq!(known, 6, "both unique tests passed without a scan");
    }

    #[tokio::test]
    async fn without_room_in_the_memory_pool_unique_runs_as_sql() {
        let runtime =
            RuntimeEnvBuilder::new().with_memory_pool(Arc::new(GreedyMemoryPool::new(256 * 1024))).build_arc().unwrap();
        let ctx = SessionContext::new_with_config_rt(SessionConfig::new(), runtime);
        let batches = [batch(&[
            (Some("A"), Some(1), Some(1.0)),
            (Some("B"), Some(2), Some(2.0)),
            (Some("C"), Some(3), Some(3.0)),
        ])];
        let (judged, alone, known) = both_ways(&ctx, &batches).await;
        assert_eq!(judged, alone);
        assert_eq!(known, 4, "the row tests still judged on the stream, the unique tests by SQL");
        assert_eq!(ctx.runtime_env().memory_pool.reserved(), 0);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn any_rows_any_batching_agree_with_sql(
            rows in proptest::collection::vec((0usize..4, proptest::option::of(0i64..4), proptest::option::of(-2i64..3)), 0..12),
            cut in 0usize..12,
        ) {
            let orgs = [Some("A"), Some("B"), Some("AB"), None];
            let rows: Vec<Row> = rows.iter().map(|&(o, m, t)| (orgs[o], m, t.map(|t| t as f64))).collect();
            let cut = cut.min(rows.len());
            let batches = [batch(&rows[..cut]), batch(&rows[cut..])];
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let (judged, alone, _) = runtime.block_on(both_ways(&SessionContext::new(), &batches));
            proptest::prop_assert_eq!(judged, alone);
        }
    }
}
