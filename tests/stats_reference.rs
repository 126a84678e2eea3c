//! The statistical methods against OHID/PHE's published test values (`../shared/data/stats`),
//! to 1e-6, both as library functions and as the SQL functions the marts use.

mod common;

use alliance_warehouse::stats::{self, Stratum};
use calamine::{Data, Reader, Xlsx};
use common::shared;
use std::collections::HashMap;

fn close(got: f64, expected: f64, what: &str) {
    assert!((got - expected).abs() < 1e-6, "{what}: {got} vs {expected}");
}

fn inputs(s: &str) -> HashMap<String, f64> {
    s.split(';')
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.trim().to_string(), v.trim().split(' ').next()?.parse().ok()?)))
        .collect()
}

#[test]
fn wilson_byar_and_exact_poisson_match_the_verified_values() {
    let text = std::fs::read_to_string(shared().join("stats/reference_test_values_VERIFIED.csv")).unwrap();
    let mut checked = 0;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (method, args, confidence) = (f[0], inputs(f[1]), f[2].parse::<f64>().unwrap_or(0.95));
        let (lower, upper) = (f[4].parse::<f64>(), f[5].parse::<f64>());
        let (Ok(lower), Ok(upper)) = (lower, upper) else { continue };
        let interval = match method {
            "wilson_proportion" => stats::wilson(args["x"], args["n"], confidence),
            "byars_count" => stats::byar(args["o"], confidence),
            m if m.starts_with("crude_rate") => stats::crude_rate(args["x"], args["n"], 100.0, confidence),
            _ => continue,
        }
        .unwrap_or_else(|| panic!("{line}"));
        close(interval.lower, lower, line);
        close(interval.upper, upper, line);
        checked += 1;
    }
    assert_eq!(checked, 10, "5 Wilson, 3 Byar, 2 crude-rate rows");
}

fn sheet(book: &str, name: &str) -> Vec<Vec<Data>> {
    let mut wb: Xlsx<_> = calamine::open_workbook(shared().join("stats/tests").join(book)).unwrap();
    wb.worksheet_range(name).unwrap().rows().map(|r| r.to_vec()).collect()
}

fn num(d: &Data) -> Option<f64> {
    match d {
        Data::Float(f) => Some(*f),
        Data::Int(i) => Some(*i as f64),
        _ => None,
    }
}

fn esp2013() -> HashMap<String, f64> {
    let text = std::fs::read_to_string(shared().join("stats/esp2013_DERIVED.csv")).unwrap();
    text.lines().skip(1).filter_map(|l| l.split_once(',')).map(|(b, w)| (b.to_string(), w.parse().unwrap())).collect()
}

#[test]
fn dsr_with_esp2013_and_dobson_matches_phe_results() {
    let esp = esp2013();
    assert_eq!(esp.len(), 19);
    for (band, weight) in stats::ESP2013 {
        assert_eq!(esp[band], weight, "the built-in ESP2013 agrees with the published table");
    }
    // Bands are matched by position, as PHEindicatormethods does (the test sheet labels one band
    // '55-69' for 55-59).
    let mut areas: HashMap<String, Vec<Stratum>> = HashMap::new();
    for row in sheet("testdata_DSR_ISR.xlsx", "testdata_multiarea").iter().skip(1) {
        let strata = areas.entry(row[0].to_string()).or_default();
        let standard = stats::ESP2013[strata.len()].1;
        // testdata_tiny has one empty count: no events.
        strata.push(Stratum { count: num(&row[2]).unwrap_or(0.0), population: num(&row[3]).unwrap(), standard });
    }
    assert!(areas.values().all(|s| s.len() == 19));
    let mut checked = 0;
    for row in sheet("testdata_DSR_ISR.xlsx", "testresults_DSR").iter().skip(1) {
        // The ESP2013 areas with the plain Dobson method (not ESP1976, not non-independent events).
        let Some(strata) = areas.get(&row[0].to_string()) else { continue };
        if row[9] != "Dobson" {
            continue;
        }
        let statistic = row[8].to_string();
        let per = if statistic.contains("per 100000") { 100_000.0 } else { 10_000.0 };
        let expected: Vec<Option<f64>> = row[3..8].iter().map(num).collect();
        let at_95 = stats::dsr(strata, per, 0.95);
        let at_998 = stats::dsr(strata, per, 0.998);
        match expected[0] {
            None => assert!(at_95.is_none(), "{}: fewer than 10 events gives no DSR", row[0]),
            Some(value) => {
                let (a, b) = (at_95.unwrap(), at_998.unwrap());
                close(a.value, value, "dsr");
                close(a.lower, expected[1].unwrap(), "lower 95");
                close(a.upper, expected[2].unwrap(), "upper 95");
                close(b.lower, expected[3].unwrap(), "lower 99.8");
                close(b.upper, expected[4].unwrap(), "upper 99.8");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 4, "testdata_big and testdata_small, per 10,000 and per 100,000");
}

#[test]
fn slope_index_of_inequality_matches_phe_results() {
    let rows = sheet("testdata_SII.xlsx", "testdata_SII");
    let header: Vec<String> = rows[0].iter().map(|c| c.to_string()).collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let area1: Vec<&Vec<Data>> =
        rows.iter().skip(1).filter(|r| num(&r[col("RecordNo")]).is_some_and(|n| n <= 10.0)).collect();
    assert_eq!(area1.len(), 10);
    let groups: Vec<(f64, f64)> =
        area1.iter().map(|r| (num(&r[col("Population")]).unwrap(), num(&r[col("Value")]).unwrap())).collect();
    let (sii, rii) = stats::sii(&groups).unwrap();
    close(sii, num(&area1[0][col("sii")]).unwrap(), "sii");
    close(rii, num(&area1[0][col("rii")]).unwrap(), "rii");
}

#[tokio::test]
async fn the_sql_functions_give_the_same_values() {
    let ctx = datafusion::prelude::SessionContext::new();
    for udf in stats::udf::all() {
        ctx.register_udf(udf);
    }
    let sql = "SELECT wilson_lower(65, 100), wilson_upper(65, 100), count_lower(65), count_upper(65),
                      rate_lower(1, 100, 100), rate_upper(1, 100, 100), rate_lower(20, 100, 100),
                      wilson_lower(1, 0), count_lower(NULL)";
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let b = &batches[0];
    let v = |i: usize| b.column(i).as_any().downcast_ref::<arrow::array::Float64Array>().unwrap().value(0);
    close(v(0), 0.5525444329688797, "wilson_lower");
    close(v(1), 0.7363575175690247, "wilson_upper");
    close(v(2), 50.163187710459454, "count_lower (Byar at 65)");
    close(v(3), 82.84913854593984, "count_upper (Byar at 65)");
    close(v(4), 0.025317807984289897, "rate_lower (exact below 10)");
    close(v(5), 5.571643390938898, "rate_upper (exact below 10)");
    close(v(6), 12.211428834875937, "rate_lower (Byar from 10)");
    use arrow::array::Array;
    assert!(b.column(7).is_null(0) && b.column(8).is_null(0), "undefined intervals are null");
}
