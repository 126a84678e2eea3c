//! Declared data rules of a pipeline, beyond types: the revision guard of `replace_by_period`
//! loads (`[load.revision_guard]`), plausibility bounds of contract columns (`min`, `max`,
//! `min_date`, `max_date`) and the unique key checked at ingest (`load.unique_key`,
//! `load.unique_order`).
//!
//! Semantics:
//!
//! - **Revision guard.** Before a file replaces the months (within its scope) it contains, each
//!   month's new object is compared with the object it replaces: if the revision has fewer than
//!   `(1 - max_row_loss)` of the rows it replaces, or lacks an organisation (a value of
//!   `organisation_column`) present before, the file is *held*: nothing of it is written, the
//!   reason is kept in quarantine, and `alliance ingest|run --accept-revision FILE` loads it.
//! - **Plausibility.** `min`/`max` bound a numeric column's stored value (a percent column stores
//!   a proportion, so coverage ≤ 100 % is `max = 1`); `min_date`/`max_date` bound a date or month
//!   column, as `YYYY-MM-DD` or relative to the day of the run (`today`, `today+1y`, `today-6m`,
//!   `today+30d`). A value outside quarantines its row with the rule's name as the reason.
//! - **Unique key.** Rows of one file, or of the files of one month, sharing the `unique_key`
//!   values are duplicates: all but the latest by `unique_order` (then the file loaded last, then
//!   the later source row) are quarantined.

use crate::ingest::dates::{civil_from_days, days_from_civil};
use serde::Deserialize;
use std::fmt;

/// Share of a month's rows a revision may lose before it is held (default 0.5: more than half).
pub const DEFAULT_MAX_ROW_LOSS: f64 = 0.5;

/// Guard on `replace_by_period` revisions (`[load.revision_guard]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevisionGuardSpec {
    /// Whether revisions are checked at all (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Largest share (0–1) of the rows a month held before that a revision may remove (default
    /// [`DEFAULT_MAX_ROW_LOSS`]). `1` allows any loss but an empty month.
    #[serde(default = "RevisionGuardSpec::default_max_row_loss")]
    pub max_row_loss: f64,
    /// Column naming the organisation of a row (e.g. `org_code`): a revision that drops an
    /// organisation present in the month before is held. Not checked when unset (the default).
    #[serde(default)]
    pub organisation_column: Option<String>,
}

fn yes() -> bool {
    true
}

impl RevisionGuardSpec {
    fn default_max_row_loss() -> f64 {
        DEFAULT_MAX_ROW_LOSS
    }
}

impl Default for RevisionGuardSpec {
    fn default() -> Self {
        Self { enabled: true, max_row_loss: DEFAULT_MAX_ROW_LOSS, organisation_column: None }
    }
}

/// A date bound: a fixed day, or a day relative to the day of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateBound {
    /// Days since 1970-01-01.
    Fixed(i32),
    /// Today (UTC) moved by years, months and days.
    Today { years: i32, months: i32, days: i32 },
}

impl DateBound {
    /// Parses `YYYY-MM-DD`, `today`, or `today±N` followed by `y`, `m` or `d`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let bad = || format!("'{t}' is not a date bound (YYYY-MM-DD, today, today+1y, today-6m, today+30d)");
        if let Some(rest) = t.strip_prefix("today") {
            if rest.is_empty() {
                return Ok(DateBound::Today { years: 0, months: 0, days: 0 });
            }
            let (sign, rest) = match rest.as_bytes().first() {
                Some(b'+') => (1, &rest[1..]),
                Some(b'-') => (-1, &rest[1..]),
                _ => return Err(bad()),
            };
            let unit = rest.chars().last().ok_or_else(bad)?;
            let n: i32 = rest[..rest.len() - 1].parse().map_err(|_| bad())?;
            let n = sign * n;
            return match unit {
                'y' => Ok(DateBound::Today { years: n, months: 0, days: 0 }),
                'm' => Ok(DateBound::Today { years: 0, months: n, days: 0 }),
                'd' => Ok(DateBound::Today { years: 0, months: 0, days: n }),
                _ => Err(bad()),
            };
        }
        crate::ingest::dates::parse_iso(t).map(DateBound::Fixed).ok_or_else(bad)
    }

    /// The bound as days since 1970-01-01, `today` being the given day.
    pub fn resolve(&self, today: i32) -> i32 {
        match *self {
            DateBound::Fixed(days) => days,
            DateBound::Today { years, months, days } => {
                let (y, m, d) = civil_from_days(today);
                let index = y * 12 + m as i32 - 1 + years * 12 + months;
                let (y, m) = (index.div_euclid(12), index.rem_euclid(12) as u32 + 1);
                // The same day of the target month, or its last day (31 Jan + 1m = 28/29 Feb).
                let day = (1..=d).rev().find_map(|d| days_from_civil(y, m, d)).unwrap_or(today);
                day + days
            }
        }
    }

    /// Today (UTC) as days since 1970-01-01.
    pub fn today() -> i32 {
        (chrono::Utc::now().timestamp().div_euclid(86_400)) as i32
    }
}

impl fmt::Display for DateBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DateBound::Fixed(days) => {
                let (y, m, d) = civil_from_days(days);
                write!(f, "{y:04}-{m:02}-{d:02}")
            }
            DateBound::Today { years: 0, months: 0, days: 0 } => f.write_str("today"),
            DateBound::Today { years, months: 0, days: 0 } => write!(f, "today{years:+}y"),
            DateBound::Today { months, days: 0, .. } => write!(f, "today{months:+}m"),
            DateBound::Today { days, .. } => write!(f, "today{days:+}d"),
        }
    }
}

impl<'de> Deserialize<'de> for DateBound {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        DateBound::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> i32 {
        days_from_civil(y, m, d).unwrap()
    }

    #[test]
    fn date_bounds_parse_and_resolve() {
        let today = day(2026, 1, 31);
        assert_eq!(DateBound::parse("2000-01-01").unwrap().resolve(today), day(2000, 1, 1));
        assert_eq!(DateBound::parse("today").unwrap().resolve(today), today);
        assert_eq!(DateBound::parse("today+1y").unwrap().resolve(today), day(2027, 1, 31));
        assert_eq!(DateBound::parse("today+1m").unwrap().resolve(today), day(2026, 2, 28));
        assert_eq!(DateBound::parse("today-13m").unwrap().resolve(today), day(2024, 12, 31));
        assert_eq!(DateBound::parse("today+30d").unwrap().resolve(today), day(2026, 3, 2));
        for bad in ["tomorrow", "today+", "today+1w", "today*1y", "2000-13-01", "01/01/2000"] {
            assert!(DateBound::parse(bad).is_err(), "{bad}");
        }
        for text in ["2000-01-01", "today", "today+1y", "today-6m", "today+30d"] {
            assert_eq!(DateBound::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn the_guard_defaults_hold_more_than_half_a_month_lost() {
        let spec: RevisionGuardSpec = toml::from_str("").unwrap();
        assert_eq!(spec, RevisionGuardSpec::default());
        assert!(spec.enabled && spec.max_row_loss == 0.5 && spec.organisation_column.is_none());
        assert!(toml::from_str::<RevisionGuardSpec>("max_rows_lost = 1").is_err(), "unknown keys are errors");
    }
}
