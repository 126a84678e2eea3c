//! What a reader of the catalogue knows about how the published marts add up, as constraints.
//! Written from the marts' definitions (README, SPEC, the marts' SQL), independently of the
//! `[disclosure]` declarations the suppression code reads.

use super::{Attack, Published};
use microlp::ComparisonOp::{Eq, Ge};

/// Every rule below, over every mart present.
pub fn everything(p: &Published, a: &mut Attack) {
    breakdowns_of_one_population(
        p,
        a,
        "mart_waits_by_group",
        &["alliance", "quarter", "standard"],
        "dimension",
        &["total", "within_standard", "breaches"],
    );
    row_sum(p, a, "mart_waits_by_group", "total", &["within_standard", "breaches"]);
    breakdowns_of_one_population(
        p,
        a,
        "mart_early_diagnosis",
        &["alliance", "year"],
        "dimension",
        &["staged", "early", "late"],
    );
    row_sum(p, a, "mart_early_diagnosis", "staged", &["early", "late"]);
    breakdowns_of_one_population(p, a, "mart_referral_rates", &["year"], "dimension", &["referrals"]);
    screening(p, a);
    backlog(p, a);
    activity(p, a);
    independent_sector(p, a);
    gaps(p, a);
}

/// Within a group, the rows of every dimension add up to the same total.
fn breakdowns_of_one_population(p: &Published, a: &mut Attack, table: &str, group: &[&str], by: &str, counts: &[&str]) {
    if p.rows(table) == 0 {
        return;
    }
    a.cells(p, table, counts);
    for rows in p.groups(table, group).values() {
        let mut dims: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
        for r in rows {
            dims.entry(p.text(table, *r, by)).or_default().push(*r);
        }
        let dims: Vec<&Vec<usize>> = dims.values().collect();
        for pair in dims.windows(2) {
            for c in counts {
                a.equal_sums(p, table, c, pair[0], pair[1]);
            }
        }
    }
}

/// `total = Σ parts` on every row.
fn row_sum(p: &Published, a: &mut Attack, table: &str, total: &str, parts: &[&str]) {
    for row in 0..p.rows(table) {
        let mut terms = vec![(a.cell(p, table, row, total), 1.0)];
        terms.extend(parts.iter().map(|c| (a.cell(p, table, row, c), -1.0)));
        a.constrain(terms, Eq, 0.0);
    }
}

/// Practices add up to their borough and to their IMD quintile; levels count the same people.
/// A group is one source (practice export or OHID), programme, age band and period.
fn screening(p: &Published, a: &mut Attack) {
    let t = "mart_screening_coverage";
    if p.rows(t) == 0 {
        return;
    }
    let counts = ["eligible", "screened", "not_screened"];
    let group = ["source", "programme", "age_band", "period"];
    breakdowns_of_one_population(p, a, t, &group, "level", &counts);
    row_sum(p, a, t, "eligible", &["screened", "not_screened"]);
    for rows in p.groups(t, &group).values() {
        let practices: Vec<usize> = rows.iter().copied().filter(|r| p.text(t, *r, "level") == "practice").collect();
        for &parent in rows {
            let (level, area) = (p.text(t, parent, "level"), p.text(t, parent, "area"));
            let link = match level.as_str() {
                "borough" => "parent",
                "imd_quintile" => "imd_quintile",
                _ => continue,
            };
            let children: Vec<usize> = practices.iter().copied().filter(|c| p.text(t, *c, link) == area).collect();
            for c in counts {
                a.equal_sums(p, t, c, &[parent], &children);
            }
        }
    }
}

/// 63–103 + 104+ = over 62 ≤ open.
fn backlog(p: &Published, a: &mut Attack) {
    let t = "mart_backlog";
    row_sum(p, a, t, "backlog_over_62_days", &["waiting_63_to_103_days", "waiting_104_days_or_more"]);
    for row in 0..p.rows(t) {
        let terms = vec![(a.cell(p, t, row, "open_pathways"), 1.0), (a.cell(p, t, row, "backlog_over_62_days"), -1.0)];
        a.constrain(terms, Ge, 0.0);
    }
}

/// The 2019 baseline is the 2019 row's activity; a published recovery percentage ties the two.
fn activity(p: &Published, a: &mut Attack) {
    let t = "mart_activity_recovery";
    a.cells(p, t, &["activity", "activity_2019"]);
    let rows = p.groups(t, &["measure", "provider_code", "month"]);
    for row in 0..p.rows(t) {
        let month = p.text(t, row, "month");
        let base_month = format!("2019{}", &month[4..]);
        let key = vec![p.text(t, row, "measure"), p.text(t, row, "provider_code"), base_month];
        if let Some(base) = rows.get(&key) {
            let terms = vec![(a.cell(p, t, row, "activity_2019"), 1.0), (a.cell(p, t, base[0], "activity"), -1.0)];
            a.constrain(terms, Eq, 0.0);
        }
        if let Some(percent) = p.num(t, row, "recovery_percent") {
            let terms = vec![(a.cell(p, t, row, "activity"), 100.0), (a.cell(p, t, row, "activity_2019"), -percent)];
            a.constrain(terms, Eq, 0.0);
        }
    }
}

/// Independent-sector treatments are part of the first treatments of the trust, month and
/// modality (repeated on each row); those, over modalities, are part of the trust's first
/// treatments in `mart_activity_recovery`, which the mart repeats as its all-modality count; a
/// published share ties treatments to the modality's or the all-modality total.
fn independent_sector(p: &Published, a: &mut Attack) {
    let t = "mart_independent_sector";
    if p.rows(t) == 0 {
        return;
    }
    a.cells(p, t, &["treatments", "modality_first_treatments"]);
    let groups = p.groups(t, &["month", "referring_trust", "modality"]);
    let mut by_trust_month: std::collections::BTreeMap<(String, String), Vec<usize>> = Default::default();
    for (key, rows) in &groups {
        for pair in rows.windows(2) {
            a.equal_sums(p, t, "modality_first_treatments", &[pair[0]], &[pair[1]]);
        }
        let mut terms = vec![(a.cell(p, t, rows[0], "modality_first_treatments"), 1.0)];
        terms.extend(rows.iter().map(|r| (a.cell(p, t, *r, "treatments"), -1.0)));
        a.constrain(terms, Ge, 0.0);
        for r in rows {
            if let Some(share) = p.num(t, *r, "share_of_modality_first_treatments") {
                let terms = vec![
                    (a.cell(p, t, *r, "treatments"), 1.0),
                    (a.cell(p, t, *r, "modality_first_treatments"), -share),
                ];
                a.constrain(terms, Eq, 0.0);
            }
        }
        by_trust_month.entry((key[0].clone(), key[1].clone())).or_default().push(rows[0]);
    }
    let activity = p.groups("mart_activity_recovery", &["measure", "provider_code", "month"]);
    for ((month, trust), firsts) in by_trust_month {
        if let Some(all) = activity.get(&vec!["first_treatments".to_string(), trust.clone(), month.clone()]) {
            let all = a.cell(p, "mart_activity_recovery", all[0], "activity");
            let mut terms = vec![(all, 1.0)];
            terms.extend(firsts.iter().map(|r| (a.cell(p, t, *r, "modality_first_treatments"), -1.0)));
            a.constrain(terms, Ge, 0.0);
            // The all-modality count and its share on every row of the trust and month.
            for (_, rows) in groups.iter().filter(|(k, _)| k[0] == month && k[1] == trust) {
                for r in rows {
                    if let Some(share) = p.num(t, *r, "share_of_all_first_treatments") {
                        let treatments = a.cell(p, t, *r, "treatments");
                        a.constrain(vec![(treatments, 1.0), (all, -share)], Eq, 0.0);
                    }
                }
            }
        }
    }
}

/// Where a gap's quintile cells are: table, filter (column, value), quintile column,
/// denominator, numerator.
type Source<'a> = (&'a str, Vec<(&'a str, String)>, &'a str, &'a str, &'a str);

/// The inequality gaps publish, per indicator, area and period, the population over the five
/// quintiles and the value of the most and least deprived one: sums and ratios of counts
/// published (or withheld) in the breakdown marts.
fn gaps(p: &Published, a: &mut Attack) {
    let g = "mart_inequality_gaps";
    for row in 0..p.rows(g) {
        let (indicator, area, period) = (p.text(g, row, "indicator"), p.text(g, row, "area"), p.text(g, row, "period"));
        // (table, filter columns and values, denominator, numerator) of each quintile's cell.
        let source: Option<Source> = match indicator.as_str() {
            "early_diagnosis_share" => Some((
                "mart_early_diagnosis",
                vec![("alliance", area.clone()), ("year", period.clone()), ("dimension", "imd_quintile".into())],
                "group_value",
                "staged",
                "early",
            )),
            "fds_performance" => Some((
                "mart_waits_by_group",
                vec![
                    ("alliance", area.clone()),
                    ("quarter", period.clone()),
                    ("standard", "28-day FDS".into()),
                    ("dimension", "imd_quintile".into()),
                ],
                "group_value",
                "total",
                "within_standard",
            )),
            i if i.starts_with("screening_coverage_") => Some((
                "mart_screening_coverage",
                vec![("source", "practice_export".into()), ("month", period.clone()), ("level", "imd_quintile".into())],
                "area",
                "eligible",
                "screened",
            )),
            _ => None,
        };
        let Some((table, filter, quintile_column, denominator, numerator)) = source else { continue };
        let programme = indicator.strip_prefix("screening_coverage_").map(str::to_string);
        let cells: Vec<(String, usize)> = (0..p.rows(table))
            .filter(|r| filter.iter().all(|(c, v)| p.text(table, *r, c) == *v))
            .filter(|r| programme.as_ref().is_none_or(|pr| p.text(table, *r, "programme").to_lowercase() == *pr))
            .map(|r| (p.text(table, r, quintile_column), r))
            .filter(|(q, _)| ["1", "2", "3", "4", "5"].contains(&q.as_str()))
            .collect();
        if let Some(total) = p.num(g, row, "denominator") {
            let terms: Vec<(usize, f64)> =
                cells.iter().map(|(_, r)| (a.cell(p, table, *r, denominator), 1.0)).collect();
            if !terms.is_empty() {
                a.constrain(terms, Eq, total);
            }
        }
        for (column, quintile) in [("value_most_deprived", "1"), ("value_least_deprived", "5")] {
            let (Some(value), Some((_, r))) = (p.num(g, row, column), cells.iter().find(|(q, _)| q == quintile)) else {
                continue;
            };
            let terms = vec![(a.cell(p, table, *r, numerator), 1.0), (a.cell(p, table, *r, denominator), -value)];
            a.constrain(terms, Eq, 0.0);
        }
    }
}
