//! Synthetic extracts for the demo, the tests and the benchmark, and seeding landing with the
//! real published files.
//!
//! `alliance generate` writes, deterministically for a seed: one patient-level pathway extract per
//! trust per month in each trust's own shape ([`trusts`]) — a snapshot of the trust's PTL as at
//! the month's last day (see [`TrustMonth`]) — a monthly screening coverage export per
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
    /// Pathways (referrals) in all, split evenly over trusts and referral months. Each monthly
    /// extract is a PTL snapshot reporting every pathway open during its month, so a pathway
    /// still open at a month end is reported again the next month and the files hold more rows.
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
    /// Of those, the rows spoilt only in an optional attribute (an invalid stage): the pipelines
    /// quarantine that value and keep the row with a null (`on_invalid = "null_value"`); the
    /// other faults reject their row.
    pub value_faults: u64,
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

    /// Faults in optional attributes only ([`GeneratedFile::value_faults`]) over files whose path
    /// starts with `prefix`.
    pub fn value_faults(&self, prefix: &str) -> u64 {
        self.files.iter().filter(|f| f.path.starts_with(prefix)).map(|f| f.value_faults).sum()
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
    let files = selected.len() as u64 * args.months as u64;
    // Referrals of each trust and month: `--rows` split evenly, the remainder to the first.
    let mut cohorts: Vec<Vec<Cohort>> = vec![Vec::new(); selected.len()];
    let mut index = 0u64;
    for month in 0..args.months {
        let start = add_months(first, month);
        for trust_cohorts in cohorts.iter_mut() {
            let rows = args.rows / files.max(1) + u64::from(index < args.rows % files.max(1));
            index += 1;
            trust_cohorts.push(Cohort { start, days: add_months(start, 1) - start, rows });
        }
    }
    let mut summary = GenerateSummary::default();
    for month in 0..args.months {
        let month_start = add_months(first, month);
        for (t, &trust) in selected.iter().enumerate() {
            let peers: Vec<&'static str> = selected.iter().copied().filter(|x| *x != trust).collect();
            let job = TrustMonth {
                trust,
                peers,
                month_start,
                as_of: add_months(month_start, 1) - 1,
                cohorts: cohorts[t][..=month as usize].to_vec(),
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
        summary.files.push(GeneratedFile { path, rows: practices.len() as u64, faults: 0, value_faults: 0, bytes });
        for month in 0..args.months {
            let month_start = add_months(first, month);
            let mut rng = Rng::new(args.seed, &format!("screening/{month_start}"));
            let mut faults = Faults { rate: args.fault_rate, ..Faults::default() };
            let (data, rows) = screening::export(month_start, &practices, lsoas, &mut rng, &mut faults);
            let path = screening::landing_path(month_start);
            let bytes = data.len() as u64;
            landing.put(&path, data).await?;
            summary.files.push(GeneratedFile {
                path,
                rows,
                faults: faults.injected,
                value_faults: faults.values,
                bytes,
            });
        }
    }
    Ok(summary)
}

/// The pathways a trust received in one referral month.
#[derive(Debug, Clone, Copy)]
struct Cohort {
    start: i32,
    days: i32,
    rows: u64,
}

/// One trust's extract for one month: a PTL snapshot as at the month's last day. It reports every
/// pathway of the trust referred by then that was still open on the month's first day or
/// afterwards (so pathways closed during the month are reported once more, with their closure),
/// with what was known at the month end. A pathway is drawn once, from its referral month's own
/// random stream, so every snapshot that reports it reports the same pathway.
struct TrustMonth {
    trust: &'static str,
    peers: Vec<&'static str>,
    month_start: i32,
    /// The as-at date: the month's last day.
    as_of: i32,
    /// Referral months up to and including this one.
    cohorts: Vec<Cohort>,
    seed: u64,
    fault_rate: f64,
}

impl TrustMonth {
    async fn write(self, landing: &Store) -> Result<GeneratedFile> {
        let path = trusts::landing_path(self.trust, self.month_start);
        let landing_path = path.clone();
        let trust = self.trust;
        // (rows, faults, bytes written, the whole file when it is built in memory)
        let generate = move |out: Option<sink::ChunkWriter>| -> Result<(u64, Faults, u64, Option<Vec<u8>>)> {
            let lsoas = lsoas_cached();
            let boroughs = trusts::catchment(self.trust);
            let catchment: Vec<usize> =
                (0..lsoas.len()).filter(|i| boroughs.contains(&lsoas[*i].borough.as_str())).collect();
            let (trust, peers, seed) = (self.trust, &self.peers, self.seed);
            let (month_start, as_of) = (self.month_start, self.as_of);
            let pathways = self
                .cohorts
                .iter()
                .flat_map(move |c| {
                    let drawer = PathwayDrawer {
                        trust,
                        peers,
                        lsoas,
                        catchment: catchment.clone(),
                        month_start: c.start,
                        month_days: c.days,
                        as_of: i32::MAX,
                    };
                    let mut rng = Rng::new(seed, &format!("pathways/{trust}/{}", c.start));
                    (0..c.rows).map(move |seq| drawer.draw(&mut rng, seq))
                })
                .filter(move |p| p.closed_on().is_none_or(|d| d >= month_start))
                .map(move |p| p.as_at(as_of));
            // Faults draw from their own stream, so asking for faults leaves the data unchanged.
            let mut fault_rng = Rng::new(self.seed ^ 0xFA17, &landing_path);
            let mut faults = Faults { rate: self.fault_rate, ..Faults::default() };
            match (self.trust, out) {
                ("R1H", _) => {
                    let pathways: Vec<_> = pathways.collect();
                    let rows = pathways.len() as u64;
                    let bytes = trusts::write_barts_xlsx(self.month_start, pathways, &mut fault_rng, &mut faults)?;
                    Ok((rows, faults, bytes.len() as u64, Some(bytes)))
                }
                ("RRV", Some(out)) => {
                    let (rows, bytes) = trusts::write_uclh_parquet(pathways, &mut fault_rng, &mut faults, out)?;
                    Ok((rows, faults, bytes, None))
                }
                (_, Some(mut out)) => {
                    let rows = trusts::write_text(self.trust, pathways, &mut fault_rng, &mut faults, &mut out)?;
                    let bytes = out.finish().map_err(|e| Error::source_file("generator output", e.to_string()))?;
                    Ok((rows, faults, bytes, None))
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
        tracing::info!(file = %path, rows, faults = faults.injected, bytes, "generated");
        Ok(GeneratedFile { path, rows, faults: faults.injected, value_faults: faults.values, bytes })
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
        (from.join("screening"), "screening/ohid", "csv", ""),
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
