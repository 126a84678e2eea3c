//! The statistics of `mart_referral_rates` and `mart_inequality_gaps` on tiny hand-built inputs:
//! the real mart SQL runs over in-memory tables with the columns it reads, and the results are
//! compared with values worked out by hand here (chi-square quantiles and Byar's formula on the
//! raw count, then × 12 / months; an exactly linear SII), not with our own statistics code.

mod common;

use alliance_warehouse::transform::session::empty_session;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};
use datafusion::prelude::{CsvReadOptions, SessionContext};
use statrs::distribution::{ChiSquared, ContinuousCDF};

const Z: f64 = 1.959963984540054;

fn close(got: Option<f64>, expected: f64, what: &str) {
    let got = got.unwrap_or_else(|| panic!("{what}: null"));
    assert!((got - expected).abs() < 1e-6 * expected.abs().max(1.0), "{what}: {got} vs {expected}");
}

/// Exact Poisson limits of a count `o` below 10 (chi-square quantiles), by hand.
fn exact(o: f64) -> (f64, f64) {
    let lower = ChiSquared::new(2.0 * o).unwrap().inverse_cdf(0.025) / 2.0;
    let upper = ChiSquared::new(2.0 * (o + 1.0)).unwrap().inverse_cdf(0.975) / 2.0;
    (lower, upper)
}

/// Byar's limits of a count `o` from 10, by hand.
fn byar(o: f64) -> (f64, f64) {
    let lower = o * (1.0 - 1.0 / (9.0 * o) - Z / (3.0 * o.sqrt())).powi(3);
    let p = o + 1.0;
    (lower, p * (1.0 - 1.0 / (9.0 * p) + Z / (3.0 * p.sqrt())).powi(3))
}

async fn session() -> SessionContext {
    let ctx = empty_session();
    let esp = common::shared().join("stats/esp2013_DERIVED.csv");
    ctx.register_csv("ref_esp2013", esp.to_str().unwrap(), CsvReadOptions::new()).await.unwrap();
    // Referrals in 2024 over three months (January–March): Hackney (LSOA A, quintile 1) 7, Camden
    // (LSOA B, quintile 2) 24.
    let mut rows = Vec::new();
    for (borough, quintile, band, n) in [("Hackney", 1, "60-64", 7), ("Camden", 2, "70-74", 24)] {
        for i in 0..n {
            let month = format!("2024-0{}-01", 1 + i % 3);
            rows.push(format!(
                "(DATE '{month}', '{borough}', {quintile}, '{band}', DATE '{month}', 'URGENT SUSPECTED CANCER')"
            ));
        }
    }
    let tables = [
        format!(
            "CREATE TABLE int_pathways(referral_date DATE, borough VARCHAR, imd_quintile INT, esp_band VARCHAR,
             referral_month DATE, referral_route VARCHAR) AS VALUES {}",
            rows.join(", ")
        ),
        // Hackney 3,000 residents (1,000 aged 60-64, 2,000 aged 65-69), Camden 2,000 aged 70-74.
        "CREATE TABLE ref_population(lsoa_code VARCHAR, la_name VARCHAR, age_band VARCHAR, population DOUBLE) AS VALUES
         ('A', 'Hackney', '60-64', 1000), ('A', 'Hackney', '65-69', 2000), ('B', 'Camden', '70-74', 2000)"
            .to_string(),
        "CREATE TABLE ref_lsoa_imd(lsoa_code VARCHAR, imd_quintile INT) AS VALUES ('A', 1), ('B', 2)".to_string(),
    ];
    for sql in tables {
        ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    }
    ctx
}

async fn query(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql).await.unwrap_or_else(|e| panic!("{e}\n{sql}")).collect().await.unwrap()
}

fn value(batches: &[RecordBatch], column: &str) -> Option<f64> {
    let b = &batches[0];
    assert_eq!(b.num_rows(), 1, "one row");
    let c = cast(b.column_by_name(column).unwrap(), &DataType::Float64).unwrap();
    c.is_valid(0).then(|| c.as_primitive::<Float64Type>().value(0))
}

fn mart_sql(name: &str) -> String {
    std::fs::read_to_string(common::repo().join(format!("sql/marts/{name}.sql"))).unwrap()
}

#[tokio::test]
async fn referral_rate_intervals_are_on_the_raw_count_then_annualised() {
    let ctx = session().await;
    let mart = mart_sql("mart_referral_rates");
    ctx.sql(&format!("CREATE VIEW mart AS {mart}")).await.unwrap();
    let row =
        |area: &str| format!("SELECT * FROM mart WHERE year = 2024 AND dimension = 'borough' AND area = '{area}'");

    // Hackney: 7 referrals in 3 months, 3,000 residents: 7 / 3000 × 100,000 × 12 / 3 a year, with
    // the exact Poisson limits of 7 scaled the same way. No DSR below 10 referrals.
    let hackney = query(&ctx, &row("Hackney")).await;
    let scale = 100_000.0 / 3000.0 * 12.0 / 3.0;
    let (lower, upper) = exact(7.0);
    assert!((lower - 2.8143).abs() < 1e-4 && (upper - 14.4227).abs() < 1e-4, "chi-square limits of 7");
    assert_eq!(value(&hackney, "months_covered"), Some(3.0));
    close(value(&hackney, "crude_rate"), 7.0 * scale, "Hackney crude rate");
    close(value(&hackney, "crude_rate_lower_95"), lower * scale, "Hackney lower");
    close(value(&hackney, "crude_rate_upper_95"), upper * scale, "Hackney upper");
    assert!(value(&hackney, "dsr").is_none() && value(&hackney, "dsr_lower_95").is_none(), "no DSR below 10");

    // Camden: 24 referrals, 2,000 residents in one band: Byar's limits of 24, scaled. With one
    // stratum the Dobson limits of the DSR are the same limits (×4 a year, per 100,000).
    let camden = query(&ctx, &row("Camden")).await;
    let scale = 100_000.0 / 2000.0 * 12.0 / 3.0;
    let (lower, upper) = byar(24.0);
    close(value(&camden, "crude_rate"), 24.0 * scale, "Camden crude rate");
    close(value(&camden, "crude_rate_lower_95"), lower * scale, "Camden lower");
    close(value(&camden, "crude_rate_upper_95"), upper * scale, "Camden upper");
    close(value(&camden, "dsr"), 24.0 * scale, "Camden DSR");
    close(value(&camden, "dsr_lower_95"), lower * scale, "Camden DSR lower");
    close(value(&camden, "dsr_upper_95"), upper * scale, "Camden DSR upper");

    // The former formula, the count interval of the annualised count (7 × 4 = 28 → Byar), fails
    // this test: run on the previous mart_referral_rates.sql (commit 5ee9daf) the assertion above
    // stops at "Hackney lower: 620.06 vs 375.25". Its interval is about half as wide:
    let old = query(
        &ctx,
        "SELECT rate_lower(referrals * 12.0 / months_covered, population, 100000.0) AS lower,
                rate_upper(referrals * 12.0 / months_covered, population, 100000.0) AS upper
         FROM mart WHERE year = 2024 AND dimension = 'borough' AND area = 'Hackney'",
    )
    .await;
    let scale = 100_000.0 / 3000.0 * 12.0 / 3.0;
    let (lower, upper) = exact(7.0);
    let (old_lower, old_upper) = (value(&old, "lower").unwrap(), value(&old, "upper").unwrap());
    assert!((old_lower - lower * scale).abs() > 100.0, "old lower {old_lower} vs {}", lower * scale);
    assert!((old_upper - upper * scale).abs() > 100.0, "old upper {old_upper} vs {}", upper * scale);
    assert!(old_upper - old_lower < 0.6 * (upper - lower) * scale, "the old interval is too narrow");

    // The quintile rows carry the same figures (one borough per quintile here).
    let q2 = query(&ctx, "SELECT * FROM mart WHERE dimension = 'imd_quintile' AND area = '2'").await;
    close(value(&q2, "crude_rate_lower_95"), byar(24.0).0 * 100_000.0 / 2000.0 * 4.0, "quintile 2 lower");
}

#[tokio::test]
async fn inequality_gap_sii_on_an_exactly_linear_gradient() {
    let ctx = session().await;
    // Screening coverage by practice, one practice per IMD quintile. Denominators 200, 400, 200,
    // 400, 200 (1,400 in all) put the quintiles' mid-point ranks at 50, 200, 350, 500, 650 / 700;
    // coverage 0.2 + 0.35 × rank exactly (0.225, 0.3, 0.375, 0.45, 0.525), so the weighted
    // regression recovers SII = 0.35 (least − most deprived) and RII = 0.55 / 0.2 = 2.75.
    // The gaps are read from the published quintile rows of the three breakdown marts.
    let setup = [
        "CREATE TABLE mart_screening_coverage(source VARCHAR, programme VARCHAR, month DATE, level VARCHAR, area VARCHAR,
         eligible DOUBLE, screened DOUBLE) AS VALUES
         ('practice_export', 'Cervical', DATE '2024-03-01', 'imd_quintile', '5', 200, 105),
         ('practice_export', 'Cervical', DATE '2024-03-01', 'imd_quintile', '1', 200, 45),
         ('practice_export', 'Cervical', DATE '2024-03-01', 'imd_quintile', '3', 200, 75),
         ('practice_export', 'Cervical', DATE '2024-03-01', 'imd_quintile', '2', 400, 120),
         ('practice_export', 'Cervical', DATE '2024-03-01', 'imd_quintile', '4', 400, 180),
         ('practice_export', 'Cervical', DATE '2024-03-01', 'imd_quintile', 'Unknown', 400, 180),
         ('practice_export', 'Cervical', DATE '2024-03-01', 'borough', 'Camden', 1800, 705),
         ('practice_export', 'Breast', DATE '2024-03-01', 'imd_quintile', '1', 200, 45),
         ('practice_export', 'Breast', DATE '2024-03-01', 'imd_quintile', '2', 400, 120),
         ('practice_export', 'Breast', DATE '2024-03-01', 'imd_quintile', '3', NULL, NULL),
         ('practice_export', 'Breast', DATE '2024-03-01', 'imd_quintile', '4', 400, 180),
         ('practice_export', 'Breast', DATE '2024-03-01', 'imd_quintile', '5', 200, 105),
         ('ohid_fingertips', 'Cervical', NULL, 'borough', 'Camden', 30000, 21000)",
        "CREATE TABLE mart_early_diagnosis(alliance VARCHAR, year BIGINT, dimension VARCHAR, group_value VARCHAR,
         staged DOUBLE, early DOUBLE) AS SELECT * FROM (VALUES ('NEL', 2024, 'sex', 'F', 10.0, 5.0)) WHERE false",
        "CREATE TABLE mart_waits_by_group(alliance VARCHAR, quarter DATE, standard VARCHAR, dimension VARCHAR,
         group_value VARCHAR, total DOUBLE, within_standard DOUBLE) AS
         SELECT * FROM (VALUES ('NEL', DATE '2024-01-01', '28-day FDS', 'sex', 'F', 10.0, 5.0)) WHERE false",
    ];
    for sql in setup {
        ctx.sql(sql).await.unwrap().collect().await.unwrap();
    }
    let mart = mart_sql("mart_inequality_gaps");
    let batches = query(&ctx, &format!("SELECT * FROM ({mart}) WHERE indicator = 'screening_coverage_cervical'")).await;
    assert_eq!(value(&batches, "quintiles"), Some(5.0));
    close(value(&batches, "sii"), 0.35, "sii");
    close(value(&batches, "rii"), 2.75, "rii");
    close(value(&batches, "value_most_deprived"), 0.225, "most deprived");
    close(value(&batches, "absolute_gap"), 0.3, "gap");
    let suppressed = batches[0].column_by_name("suppressed").unwrap().as_boolean().value(0);
    assert!(!suppressed);
    // A quintile withheld by the breakdown mart withholds the gap and its population: nothing
    // here may be a sum or ratio of a withheld cell.
    let breast = query(&ctx, &format!("SELECT * FROM ({mart}) WHERE indicator = 'screening_coverage_breast'")).await;
    assert!(breast[0].column_by_name("suppressed").unwrap().as_boolean().value(0));
    for column in ["denominator", "sii", "rii", "value_most_deprived", "absolute_gap"] {
        assert_eq!(value(&breast, column), None, "{column}");
    }
}
