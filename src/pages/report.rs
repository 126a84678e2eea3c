//! `alliance report`: the working group's static HTML report, drawn from the published marts
//! only (so disclosure control is already applied): performance against the standard in force by
//! trust over time, the cancer backlog by trust over the latest year's month ends (from the
//! trusts' PTL snapshots), inequality gaps by IMD quintile and ethnicity with 95% intervals, and
//! screening coverage against the Acceptable and Achievable thresholds.

use super::svg::{bar_chart, escape, line_chart, Bar, Reference, Series};
use super::{page, rows, text_cell, value};
use crate::error::Result;
use datafusion::prelude::SessionContext;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The report as one self-contained HTML page.
pub async fn report(session: &SessionContext) -> Result<String> {
    let mut body = String::new();
    body.push_str("<h1>Cancer Inequalities Working Group report</h1>");
    body.push_str("<p class=\"lede\">North East London and North Central London Cancer Alliances. Figures come from the published marts: counts of 1–4 and anything derived from them are suppressed and shown as gaps.</p>");
    performance(session, &mut body).await?;
    backlog(session, &mut body).await?;
    inequality(session, &mut body).await?;
    screening(session, &mut body).await?;
    Ok(page("Cancer Inequalities Working Group report", &body))
}

async fn performance(session: &SessionContext, body: &mut String) -> Result<()> {
    body.push_str("<h2>Performance against the standard in force, by trust</h2>");
    let sql = "SELECT p.standard, p.org_code, p.org_name, CAST(p.month AS VARCHAR) AS month_label, p.performance, p.standard_threshold
               FROM mart_cwt_performance p JOIN ref_alliance_trusts a ON a.org_code = p.org_code
               WHERE p.level = 'provider' AND p.basis = 'provider' AND p.route = 'ALL' AND p.cancer_type = 'ALL' ORDER BY p.standard, p.org_code, month_label";
    let data = rows(session, sql).await?;
    let mut by_standard: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for r in data {
        by_standard.entry(text_cell(&r[0])).or_default().push(r);
    }
    for (standard, rows) in by_standard {
        let months: Vec<String> = {
            let mut m: Vec<String> = rows.iter().map(|r| text_cell(&r[3])).collect();
            m.sort();
            m.dedup();
            m
        };
        let mut series: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
        let mut threshold = None;
        for r in &rows {
            let name = format!("{} {}", text_cell(&r[1]), short(&text_cell(&r[2])));
            let values = series.entry(name).or_insert_with(|| vec![None; months.len()]);
            let i = months.iter().position(|m| *m == text_cell(&r[3])).unwrap_or(0);
            values[i] = value(&r[4]);
            threshold = value(&r[5]).or(threshold);
        }
        let series: Vec<Series> = series.into_iter().map(|(name, values)| Series { name, values }).collect();
        let references: Vec<Reference> = threshold
            .map(|t| Reference { label: format!("standard {:.0}%", t * 100.0), value: t })
            .into_iter()
            .collect();
        body.push_str(&line_chart(
            &format!("{standard}: share within the standard, alliance trusts"),
            &months,
            &series,
            &references,
            true,
        ));
    }
    Ok(())
}

/// Open pathways and those waiting more than 62 days at each month end of the latest year, by
/// trust (`mart_backlog`: each month end from that month's PTL snapshot); withheld counts are gaps.
async fn backlog(session: &SessionContext, body: &mut String) -> Result<()> {
    body.push_str("<h2>Cancer backlog at each month end, by trust</h2>");
    let sql = "SELECT provider_code, CAST(month_end AS VARCHAR) AS month_label, open_pathways, backlog_over_62_days
               FROM mart_backlog
               WHERE extract(year FROM month_end) = (SELECT max(extract(year FROM month_end)) FROM mart_backlog)
               ORDER BY provider_code, month_label";
    let data = rows(session, sql).await?;
    let mut months: Vec<String> = data.iter().map(|r| text_cell(&r[1])).collect();
    months.sort();
    months.dedup();
    for (column, title) in [(3, "Pathways waiting more than 62 days"), (2, "Open pathways")] {
        let mut series: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
        for r in &data {
            let values = series.entry(text_cell(&r[0])).or_insert_with(|| vec![None; months.len()]);
            let i = months.iter().position(|m| *m == text_cell(&r[1])).unwrap_or(0);
            values[i] = value(&r[column]);
        }
        let series: Vec<Series> = series.into_iter().map(|(name, values)| Series { name, values }).collect();
        body.push_str(&line_chart(title, &months, &series, &[], false));
    }
    Ok(())
}

fn short(name: &str) -> String {
    name.split_whitespace().take(3).collect::<Vec<_>>().join(" ").to_lowercase()
}

async fn inequality(session: &SessionContext, body: &mut String) -> Result<()> {
    body.push_str("<h2>Inequality gaps</h2>");
    let sql = "SELECT alliance, dimension, group_value, performance, performance_lower_95, performance_upper_95, CAST(quarter AS VARCHAR)
               FROM mart_waits_by_group
               WHERE standard = '28-day FDS' AND group_value <> 'Unknown'
                 AND quarter = (
                     -- The latest quarter with at least half the activity of the busiest one (not a
                     -- quarter the extracts have only just reached).
                     WITH q AS (SELECT quarter, sum(total) AS told FROM mart_waits_by_group
                                WHERE standard = '28-day FDS' AND dimension = 'imd_quintile' GROUP BY quarter)
                     SELECT max(quarter) FROM q WHERE told >= 0.5 * (SELECT max(told) FROM q))
               ORDER BY alliance, dimension, group_value";
    let data = rows(session, sql).await?;
    let mut charts: BTreeMap<(String, String), Vec<Bar>> = BTreeMap::new();
    let mut quarter = String::new();
    for r in &data {
        quarter = text_cell(&r[6]);
        let bar =
            Bar { label: text_cell(&r[2]), value: value(&r[3]).and_then(|v| Some((v, value(&r[4])?, value(&r[5])?))) };
        charts.entry((text_cell(&r[0]), text_cell(&r[1]))).or_default().push(bar);
    }
    let in_force = format!(
        "SELECT threshold FROM ref_operational_standards WHERE standard = '28-day FDS' AND kind = 'operational'
         AND DATE '{quarter}' >= effective_from AND (effective_to IS NULL OR DATE '{quarter}' <= effective_to)"
    );
    let standard =
        if quarter.is_empty() { None } else { rows(session, &in_force).await?.first().and_then(|r| value(&r[0])) };
    let references: Vec<Reference> =
        standard.map(|t| Reference { label: format!("standard {:.0}%", t * 100.0), value: t }).into_iter().collect();
    for ((alliance, dimension), bars) in charts {
        let label = if dimension == "imd_quintile" { "IMD quintile (1 = most deprived)" } else { "ethnicity group" };
        let title = format!("{alliance}: 28-day FDS by {label}, quarter from {quarter}");
        body.push_str(&bar_chart(&title, &bars, &references));
    }
    let sql = "SELECT alliance, group_value, early_share, early_share_lower_95, early_share_upper_95, year FROM mart_early_diagnosis
               WHERE dimension = 'imd_quintile' AND group_value <> 'Unknown' AND year = (SELECT max(year) FROM mart_early_diagnosis)
               ORDER BY alliance, group_value";
    let mut charts: BTreeMap<String, Vec<Bar>> = BTreeMap::new();
    for r in rows(session, sql).await? {
        let bar =
            Bar { label: text_cell(&r[1]), value: value(&r[2]).and_then(|v| Some((v, value(&r[3])?, value(&r[4])?))) };
        charts.entry(format!("{}, {}", text_cell(&r[0]), text_cell(&r[5]))).or_default().push(bar);
    }
    for (title, bars) in charts {
        body.push_str(&bar_chart(
            &format!("Early diagnosis (stage 1–2 of staged) by IMD quintile: {title}"),
            &bars,
            &[],
        ));
    }
    let sql =
        "SELECT indicator, area, period, sii, rii, absolute_gap, relative_gap, suppressed FROM mart_inequality_gaps
               ORDER BY indicator, area, period";
    body.push_str("<h3>Slope index of inequality</h3><table><tr><th>indicator</th><th>area</th><th>period</th><th>SII</th><th>RII</th><th>gap (Q5 − Q1)</th><th>relative gap</th></tr>");
    for r in rows(session, sql).await? {
        let num = |i: usize| value(&r[i]).map(|v| format!("{v:.3}")).unwrap_or_else(|| "suppressed".into());
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&text_cell(&r[0])),
            escape(&text_cell(&r[1])),
            escape(&text_cell(&r[2])),
            num(3),
            num(4),
            num(5),
            num(6)
        );
    }
    body.push_str("</table>");
    Ok(())
}

async fn screening(session: &SessionContext, body: &mut String) -> Result<()> {
    body.push_str("<h2>Screening coverage against the thresholds</h2>");
    let sql = "SELECT programme, area, coverage, coverage_lower_95, coverage_upper_95, acceptable, achievable, CAST(month AS VARCHAR)
               FROM mart_screening_coverage
               WHERE level = 'imd_quintile' AND area <> 'Unknown' AND month = (SELECT max(month) FROM mart_screening_coverage)
               ORDER BY programme, area";
    let mut charts: BTreeMap<String, (Vec<Bar>, Vec<Reference>, String)> = BTreeMap::new();
    for r in rows(session, sql).await? {
        let entry = charts.entry(text_cell(&r[0])).or_insert_with(|| (vec![], vec![], text_cell(&r[7])));
        entry.0.push(Bar {
            label: text_cell(&r[1]),
            value: value(&r[2]).and_then(|v| Some((v, value(&r[3])?, value(&r[4])?))),
        });
        if entry.1.is_empty() {
            if let Some(a) = value(&r[5]) {
                entry.1.push(Reference { label: format!("acceptable {:.0}%", a * 100.0), value: a });
            }
            if let Some(a) = value(&r[6]) {
                entry.1.push(Reference { label: format!("achievable {:.0}%", a * 100.0), value: a });
            }
        }
    }
    for (programme, (bars, refs, month)) in charts {
        body.push_str(&bar_chart(
            &format!("{programme} screening coverage by IMD quintile of the practice, {month}"),
            &bars,
            &refs,
        ));
    }
    Ok(())
}
