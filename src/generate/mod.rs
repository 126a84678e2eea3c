//! Synthetic extracts for the demo, the tests and the benchmark, and seeding landing with the
//! real published files.
//!
//! `alliance generate` writes, deterministically for a seed: one patient-level pathway extract per
//! trust per month in each trust's own shape ([`trusts`]), a monthly screening coverage export per
//! month ([`screening`]) and the synthetic GP practice list they refer to. Sizes scale from a
//! few rows to tens of millions (text and Parquet extracts stream; memory stays flat). Deliberate
//! faults are injected at `--fault-rate`, each spoiling exactly one row, and counted in the
//! summary so that tests can check every spoilt row is quarantined and nothing else is.
//!
//! `alliance seed` copies the published CWT extracts and reference files (and the bundled
//! `config/reference` tables) into landing, byte for byte.

pub mod pathways;
pub mod rng;
pub mod screening;
pub mod sink;
pub mod trusts;

use crate::error::{Error, Result};
use crate::ingest::dates::{civil_from_days, days_from_civil};
use crate::storage::Store;
use pathways::{lsoas_cached, PathwayDrawer};
use rng::Rng;
use serde::Serialize;
use std::path::Path;
use trusts::Faults;

/// Options of `alliance generate`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    /// Pathway rows in all, split evenly over trusts and months.
    #[arg(long, default_value_t = 60_000)]
    pub rows: u64,
    /// First referral month (YYYY-MM).
    #[arg(long, default_value = "2024-01")]
    pub start: String,
    /// Number of consecutive months.
    #[arg(long, default_value_t = 6)]
    pub months: u32,
    /// Trusts to generate extracts for (R1H, RAL, RQX, RRV).
    #[arg(long, value_delimiter = ',', default_value = "R1H,RAL,RQX,RRV")]
    pub trusts: Vec<String>,
    /// Seed: the same seed gives byte-identical extracts.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Share of rows to spoil deliberately (0 = none; e.g. 0.002).
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// Do not write the screening exports and the practice list.
    #[arg(long)]
    pub no_screening: bool,
}

impl Default for GenerateArgs {
    fn default() -> Self {
        Self {
            rows: 60_000,
            start: "2024-01".into(),
            months: 6,
            trusts: trusts::TRUSTS.iter().map(|t| t.to_string()).collect(),
            seed: 42,
            fault_rate: 0.0,
            no_screening: false,
        }
    }
}

/// One file written.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratedFile {
    pub path: String,
    /// Data rows (records), not counting headers, title lines, blank lines or totals rows.
    pub rows: u64,
    /// Rows deliberately spoilt.
    pub faults: u64,
    pub bytes: u64,
}

/// Everything `generate` wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GenerateSummary {
    pub files: Vec<GeneratedFile>,
}

impl GenerateSummary {
    /// Rows and faults over files whose path starts with `prefix`.
    pub fn totals(&self, prefix: &str) -> (u64, u64) {
        self.files.iter().filter(|f| f.path.starts_with(prefix)).fold((0, 0), |(r, x), f| (r + f.rows, x + f.faults))
    }
}

impl std::fmt::Display for GenerateSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for file in &self.files {
            writeln!(f, "{:<52} {:>11} rows {:>6} faults {:>13} bytes", file.path, file.rows, file.faults, file.bytes)?;
        }
        let rows: u64 = self.files.iter().map(|x| x.rows).sum();
        let faults: u64 = self.files.iter().map(|x| x.faults).sum();
        write!(f, "{} files, {rows} rows, {faults} deliberate faults", self.files.len())
    }
}

fn bad_args(reason: String) -> Error {
    Error::config("alliance generate", reason)
}

/// Parses `YYYY-MM` to the day number of the month's first day.
fn parse_month(s: &str) -> Result<i32> {
    let (y, m) = s.split_once('-').ok_or_else(|| bad_args(format!("--start '{s}' is not YYYY-MM")))?;
    let (y, m) = (y.parse().ok(), m.parse().ok());
    y.zip(m)
        .and_then(|(y, m)| days_from_civil(y, m, 1))
        .ok_or_else(|| bad_args(format!("--start '{s}' is not YYYY-MM")))
}

fn add_months(month_start: i32, n: u32) -> i32 {
    let (y, m, _) = civil_from_days(month_start);
    let index = y * 12 + m as i32 - 1 + n as i32;
    days_from_civil(index.div_euclid(12), (index.rem_euclid(12) + 1) as u32, 1).unwrap_or(month_start)
}

/// Writes the synthetic extracts into `landing`.
pub async fn run(args: &GenerateArgs, landing: &Store) -> Result<GenerateSummary> {
    let first = parse_month(&args.start)?;
    if args.months == 0 {
        return Err(bad_args("--months must be at least 1".into()));
    }
    if !(0.0..0.5).contains(&args.fault_rate) {
        return Err(bad_args("--fault-rate must be in [0, 0.5)".into()));
    }
    let selected: Vec<&'static str> = args
        .trusts
        .iter()
        .map(|t| {
            trusts::TRUSTS
                .iter()
                .find(|k| k.eq_ignore_ascii_case(t.trim()))
                .copied()
                .ok_or_else(|| bad_args(format!("unknown trust '{t}' (known: {})", trusts::TRUSTS.join(", "))))
        })
        .collect::<Result<_>>()?;
    let after_last = add_months(first, args.months);
    let as_of = after_last + 10;
    let files = selected.len() as u64 * args.months as u64;
    let mut summary = GenerateSummary::default();
    let mut index = 0u64;
    for month in 0..args.months {
        let month_start = add_months(first, month);
        let month_days = add_months(month_start, 1) - month_start;
        for &trust in &selected {
            let rows = args.rows / files.max(1) + u64::from(index < args.rows % files.max(1));
            index += 1;
            let peers: Vec<&'static str> = selected.iter().copied().filter(|t| *t != trust).collect();
            let job = TrustMonth {
                trust,
                peers,
                month_start,
                month_days,
                as_of,
                rows,
                seed: args.seed,
                fault_rate: args.fault_rate,
            };
            summary.files.push(job.write(landing).await?);
        }
    }
    if !args.no_screening {
        let lsoas = lsoas_cached();
        let practices = screening::practices(lsoas, args.seed);
        let csv = screening::practices_csv(&practices, lsoas);
        let path = "reference/gp_practices.csv".to_string();
        let bytes = csv.len() as u64;
        landing.put(&path, csv.into_bytes()).await?;
        summary.files.push(GeneratedFile { path, rows: practices.len() as u64, faults: 0, bytes });
        for month in 0..args.months {
            let month_start = add_months(first, month);
            let mut rng = Rng::new(args.seed, &format!("screening/{month_start}"));
            let mut faults = Faults { rate: args.fault_rate, injected: 0 };
            let (data, rows) = screening::export(month_start, &practices, lsoas, &mut rng, &mut faults);
            let path = screening::landing_path(month_start);
            let bytes = data.len() as u64;
            landing.put(&path, data).await?;
            summary.files.push(GeneratedFile { path, rows, faults: faults.injected, bytes });
        }
    }
    Ok(summary)
}

/// One trust's extract for one month.
struct TrustMonth {
    trust: &'static str,
    peers: Vec<&'static str>,
    month_start: i32,
    month_days: i32,
    as_of: i32,
    rows: u64,
    seed: u64,
    fault_rate: f64,
}

impl TrustMonth {
    async fn write(self, landing: &Store) -> Result<GeneratedFile> {
        let path = trusts::landing_path(self.trust, self.month_start);
        let landing_path = path.clone();
        let trust = self.trust;
        // (rows, faults, bytes written, the whole file when it is built in memory)
        let generate = move |out: Option<sink::ChunkWriter>| -> Result<(u64, u64, u64, Option<Vec<u8>>)> {
            let lsoas = lsoas_cached();
            let boroughs = trusts::catchment(self.trust);
            let drawer = PathwayDrawer {
                trust: self.trust,
                peers: &self.peers,
                lsoas,
                catchment: (0..lsoas.len()).filter(|i| boroughs.contains(&lsoas[*i].borough.as_str())).collect(),
                month_start: self.month_start,
                month_days: self.month_days,
                as_of: self.as_of,
            };
            // Faults draw from their own stream, so asking for faults leaves the data unchanged.
            let mut rng = Rng::new(self.seed, &landing_path);
            let mut fault_rng = Rng::new(self.seed ^ 0xFA17, &landing_path);
            let mut faults = Faults { rate: self.fault_rate, injected: 0 };
            let pathways = (0..self.rows).map(move |seq| drawer.draw(&mut rng, seq));
            match (self.trust, out) {
                ("R1H", _) => {
                    let bytes =
                        trusts::write_barts_xlsx(self.month_start, pathways.collect(), &mut fault_rng, &mut faults)?;
                    Ok((self.rows, faults.injected, bytes.len() as u64, Some(bytes)))
                }
                ("RRV", Some(out)) => {
                    let (rows, bytes) = trusts::write_uclh_parquet(pathways, &mut fault_rng, &mut faults, out)?;
                    Ok((rows, faults.injected, bytes, None))
                }
                (_, Some(mut out)) => {
                    let rows = trusts::write_text(self.trust, pathways, &mut fault_rng, &mut faults, &mut out)?;
                    let bytes = out.finish().map_err(|e| Error::source_file("generator output", e.to_string()))?;
                    Ok((rows, faults.injected, bytes, None))
                }
                (_, None) => unreachable!("streamed formats get a writer"),
            }
        };
        let join = |e: tokio::task::JoinError| Error::Interrupted(format!("generator thread: {e}"));
        let (rows, faults, bytes) = if trust == "R1H" {
            let (rows, faults, bytes, data) =
                tokio::task::spawn_blocking(move || generate(None)).await.map_err(join)??;
            landing.put(&path, data.unwrap_or_default()).await?;
            (rows, faults, bytes)
        } else {
            let (writer, upload) = sink::upload(landing, &path);
            let generated = tokio::task::spawn_blocking(move || generate(Some(writer))).await.map_err(join)?;
            let uploaded = upload.await.map_err(join)?;
            let (rows, faults, bytes, _) = generated?;
            uploaded?;
            (rows, faults, bytes)
        };
        tracing::info!(file = %path, rows, faults, bytes, "generated");
        Ok(GeneratedFile { path, rows, faults, bytes })
    }
}

/// Copies the published extracts and workbooks (`<from>/cwt/*.xlsx`, `<from>/cwt-extracts/*.xlsx`,
/// `<from>/cwt-workbooks/*.xlsx`, `<from>/reference/*.csv`), the European
/// Standard Population 2013 (`<from>/stats/esp2013*.csv`, for the pipeline `ref_esp2013`) and the
/// bundled reference tables (`<bundled>/*.csv`) into landing. Returns the number of files copied.
pub async fn seed(from: &Path, bundled: &Path, landing: &Store) -> Result<usize> {
    let mut copied = 0;
    // (folder, landing folder, extension, file-name prefix)
    let sources = [
        (from.join("cwt"), "cwt", "xlsx", ""),
        (from.join("cwt-extracts"), "cwt-extracts", "xlsx", ""),
        (from.join("cwt-workbooks"), "cwt-workbooks", "xlsx", ""),
        (from.join("reference"), "reference", "csv", ""),
        (from.join("stats"), "reference", "csv", "esp2013"),
        (bundled.to_path_buf(), "reference", "csv", ""),
    ];
    for (dir, target, ext, prefix) in sources {
        if !dir.is_dir() {
            tracing::warn!(folder = %dir.display(), "not found; skipped");
            continue;
        }
        let mut entries: Vec<_> =
            std::fs::read_dir(&dir).map_err(Error::io(&dir))?.flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries.into_iter().filter(|p| p.extension().is_some_and(|e| e == ext)) {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            if !name.starts_with(prefix) {
                continue;
            }
            let data = std::fs::read(&path).map_err(Error::io(&path))?;
            let location = format!("{target}/{name}");
            // Leave identical files alone so that re-seeding changes nothing.
            if landing.get_opt(&location).await?.is_some_and(|old| old == data) {
                continue;
            }
            landing.put(&location, data).await?;
            copied += 1;
        }
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months() {
        let jan = parse_month("2024-01").unwrap();
        assert_eq!(add_months(jan, 1) - jan, 31);
        assert_eq!(add_months(jan, 12), parse_month("2025-01").unwrap());
        assert!(parse_month("2024-13").is_err() && parse_month("Jan").is_err());
    }
}
