//! Cron expressions of `[schedule] cron`: five fields (minute to weekday) or six (with seconds
//! first), UTC. Parsed here, where pipeline files are validated; the scheduler uses the result.

use croner::parser::{CronParser, Seconds};
use croner::Cron;

/// Parses a cron expression (5 or 6 fields).
pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    CronParser::builder().seconds(Seconds::Optional).build().parse(expr).map_err(|e| format!("'{expr}': {e}"))
}
