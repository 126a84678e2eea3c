//! The catalogue and the working group's report as a person sees them: generated from a built
//! warehouse, loaded in headless Chromium (Debian package `chromium`, installed by `make tools` /
//! `.ci/run`), rendered to a screenshot, and checked for their charts and for suppression.

mod common;

use common::{alliance_ok as ok, workdir};
use std::path::Path;
use std::process::Command;

/// Chromium, headless, with the flags this closed network needs.
fn chromium(profile: &Path, args: &[&str], page: &Path) -> std::process::Output {
    Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium is installed (make tools)")
}

#[test]
fn the_report_and_catalogue_render_in_a_browser_with_suppression_respected() {
    let dir = workdir();
    ok(dir.path(), &["seed", "--from", common::shared().to_str().unwrap()]);
    ok(dir.path(), &["generate", "--rows", "3000", "--months", "3"]);
    ok(dir.path(), &["run"]);
    ok(dir.path(), &["report", "--out", "site/report.html"]);
    ok(dir.path(), &["docs", "--out", "site/catalogue.html"]);
    let report = dir.path().join("site/report.html");
    let catalogue = dir.path().join("site/catalogue.html");
    let profile = dir.path().join("chromium-profile");

    // The browser loads the page and builds the DOM with every chart.
    let dom = chromium(&profile, &["--dump-dom"], &report);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("Cancer Inequalities Working Group report"), "the page loaded");
    let charts = dom.matches("<svg").count();
    assert!(charts >= 3 + 4 + 2 + 3, "performance, FDS inequality, early diagnosis and screening charts: {charts}");
    for section in
        ["28-day FDS: share within the standard", "by IMD quintile (1 = most deprived)", "Breast screening coverage"]
    {
        assert!(dom.contains(section), "{section}");
    }
    // Small numbers are withheld in the marts and the report shows them as such, never as values.
    assert!(dom.contains("suppressed"), "suppressed cells are marked");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(!html.contains("NaN") && !html.contains("inf"), "no undefined values drawn");

    // A screenshot of the rendered report.
    let png = dir.path().join("report.png");
    let shot = chromium(&profile, &["--window-size=1000,3000", &format!("--screenshot={}", png.display())], &report);
    assert!(png.exists(), "{}", String::from_utf8_lossy(&shot.stderr));
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(bytes.len() > 60_000, "a rendered page of charts, not a blank one ({} bytes)", bytes.len());
    // Keep it for people to look at.
    let _ = std::fs::copy(&png, common::repo().join("target/report-screenshot.png"));

    // The catalogue: every pipeline and model, the lineage graph, columns and tests.
    let dom = chromium(&profile, &["--dump-dom"], &catalogue);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("lineage graph"));
    for name in ["cwt_provider", "trust_pathways_rqx", "int_pathways", "mart_inequality_gaps", "mart_referral_rates"] {
        assert!(dom.contains(&format!("id=\"{name}\"")), "{name} documented");
    }
    assert!(dom.contains("within_plus_breaches_is_total") && dom.contains("Disclosure control"));
    assert!(dom.contains("Last run</b> 2"), "the last run that built each model");
}
