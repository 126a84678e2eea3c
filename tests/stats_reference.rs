//! The statistical methods against OHID/PHE's published test values (`../shared/data/stats`),
//! to 1e-6, both as library functions and as the SQL functions the marts use.

mod common;

use alliance_warehouse::stats::{self, SiiTransform, Stratum};
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

/// ESP2013 from the published table (the file seeded into landing for `ref_esp2013`), in order.
fn esp2013() -> Vec<(String, f64)> {
    let text = std::fs::read_to_string(shared().join("stats/esp2013_DERIVED.csv")).unwrap();
    text.lines().skip(1).filter_map(|l| l.split_once(',')).map(|(b, w)| (b.to_string(), w.parse().unwrap())).collect()
}

#[test]
fn dsr_with_esp2013_and_dobson_matches_phe_results() {
    let esp = esp2013();
    assert_eq!(esp.len(), 19);
    assert_eq!(esp.iter().map(|(_, w)| w).sum::<f64>(), 100_000.0, "ESP2013 sums to 100,000");
    // Bands are matched by position, as PHEindicatormethods does (the test sheet labels one band
    // '55-69' for 55-59).
    let mut areas: HashMap<String, Vec<Stratum>> = HashMap::new();
    for row in sheet("testdata_DSR_ISR.xlsx", "testdata_multiarea").iter().skip(1) {
        let strata = areas.entry(row[0].to_string()).or_default();
        let standard = esp[strata.len()].1;
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
    // One block per test and area; results are on its first row.
    type Block<'a> = ((String, String), Vec<&'a Vec<Data>>);
    let mut blocks: Vec<Block> = Vec::new();
    for r in rows.iter().skip(1).filter(|r| num(&r[col("RecordNo")]).is_some()) {
        let key = (r[col("TestDescription")].to_string(), r[col("Area")].to_string());
        match blocks.last_mut() {
            Some((k, rs)) if *k == key => rs.push(r),
            _ => blocks.push((key, vec![r])),
        }
    }
    let mut checked = 0;
    for ((description, area), rs) in &blocks {
        let Some(expected_sii) = num(&rs[0][col("sii")]) else { continue };
        let value_type = num(&rs[0][col("ValueType")]).unwrap();
        let transform = match (description.contains("transform"), value_type) {
            (false, _) => SiiTransform::None,
            (true, 1.0) => SiiTransform::Log,
            (true, _) => SiiTransform::Logit,
        };
        // PHE's multiplier: scales the SII; a negative one turns the RII into its reciprocal.
        let m = [("(x 100)", 100.0), ("(x -100)", -100.0), ("negative multiplier", -1.0)]
            .iter()
            .find(|(k, _)| description.contains(k))
            .map_or(1.0, |(_, m)| *m);
        let mut sorted = rs.clone();
        sorted.sort_by(|a, b| num(&a[col("Quantile")]).unwrap().total_cmp(&num(&b[col("Quantile")]).unwrap()));
        let groups: Vec<(f64, f64)> =
            sorted.iter().map(|r| (num(&r[col("Population")]).unwrap(), num(&r[col("Value")]).unwrap())).collect();
        let got = stats::sii(&groups, transform).unwrap();
        let what = format!("{description} {area}");
        close(m * got.sii, expected_sii, &what);
        if let Some(rii) = num(&rs[0][col("rii")]) {
            close(if m > 0.0 { got.rii } else { 1.0 / got.rii }, rii, &what);
        }
        if let Some(intercept) = num(&rs[0][col("Intercept")]) {
            close(got.intercept, intercept, &what);
        }
        checked += 1;
    }
    assert_eq!(checked, 44, "22 tests with results, two areas each");
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
