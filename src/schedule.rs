//! Scheduling primitives: cron parsing and due times. Cron expressions are UTC, with 5 fields
//! (`min hour day month weekday`) or 6 with leading seconds.

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds};
use croner::Cron;

/// Parses a cron expression (5 or 6 fields).
pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    CronParser::builder().seconds(Seconds::Optional).build().parse(expr).map_err(|e| format!("'{expr}': {e}"))
}

/// The next time `expr` fires strictly after `after`.
pub fn next_due(cron: &Cron, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after, false).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn five_and_six_fields() {
        let c = parse_cron("30 6 * * *").unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 7, 0, 0).unwrap();
        assert_eq!(next_due(&c, t).unwrap(), Utc.with_ymd_and_hms(2026, 1, 2, 6, 30, 0).unwrap());
        assert!(parse_cron("0 30 6 * * *").is_ok());
        assert!(parse_cron("61 * * * *").is_err());
    }
}
