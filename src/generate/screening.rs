//! Synthetic GP practices and their cancer screening coverage, in the NHS Futures export shape:
//! UTF-16LE with a byte-order mark, tab-separated, one title line above the header, thousands
//! separators in counts, percentages with a `%` sign, `-` where a threshold does not apply, a
//! `Total` row at the end, and (when faults are asked for) suppressed numerators shown as `*`.
//!
//! Coverage is drawn around each programme's typical London level and falls with the
//! deprivation of the practice's LSOA, so the inequality marts have a gradient to find.

use super::pathways::Lsoa;
use super::rng::Rng;
use super::trusts::{month_label, Faults};
use crate::ingest::dates::civil_from_days;

/// A synthetic GP practice.
#[derive(Debug, Clone)]
pub struct Practice {
    pub code: String,
    pub name: String,
    pub lsoa: usize,
}

/// Programmes: (name, cohort age range, cohort description, denominator name, typical coverage,
/// acceptable, achievable).
const PROGRAMMES: [(&str, &str, &str, &str, f64, &str, &str); 3] = [
    ("Breast", "53-70", "Females, 53-70, screened within 36 months", "Eligible females 53-70", 0.62, "70.0%", "80.0%"),
    ("Cervical", "25-49", "Females, 25-49, screened within 3.5 years", "Eligible females 25-49", 0.63, "80.0%", "-"),
    ("Bowel", "60-74", "Persons, 60-74, screened within 30 months", "Eligible persons 60-74", 0.60, "55.0%", "60.0%"),
];

/// About one practice per eight LSOAs, each placed in one of them; codes are stable for a seed.
pub fn practices(lsoas: &[Lsoa], seed: u64) -> Vec<Practice> {
    let mut rng = Rng::new(seed, "practices");
    let mut out = Vec::new();
    for (i, l) in lsoas.iter().enumerate() {
        if rng.below(8) != 0 {
            continue;
        }
        let nel = super::pathways::NEL_BOROUGHS.contains(&l.borough.as_str());
        let code = format!("{}{:05}", if nel { 'F' } else { 'E' }, 80_000 + out.len());
        let name = format!("Synthetic Practice {code} ({})", l.borough);
        out.push(Practice { code, name, lsoa: i });
    }
    out
}

/// `reference/gp_practices.csv`.
pub fn practices_csv(practices: &[Practice], lsoas: &[Lsoa]) -> String {
    let mut out = String::from("practice_code,practice_name,lsoa_code,la_name\n");
    for p in practices {
        let l = &lsoas[p.lsoa];
        out.push_str(&format!("{},\"{}\",{},{}\n", p.code, p.name, l.code, l.borough));
    }
    out
}

/// Landing path of the export for a month.
pub fn landing_path(month_start: i32) -> String {
    let (y, m, _) = civil_from_days(month_start);
    format!("screening/screening_coverage_{y:04}-{m:02}.tsv")
}

/// Formats `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One month's export as UTF-16LE bytes with BOM; returns the bytes and the data rows written.
pub fn export(
    month_start: i32,
    practices: &[Practice],
    lsoas: &[Lsoa],
    rng: &mut Rng,
    faults: &mut Faults,
) -> (Vec<u8>, u64) {
    let mut text =
        String::from("Cancer screening coverage \u{2013} GP practice level (NHS Futures export, synthetic)\r\n");
    text.push_str("Organisation Code\tOrganisation Name\tProgramme\tMonth of Date\tCohort Age Range\tCohort Description\tDenominator Name\tDenominator\tNumerator\tPerformance\tAcceptable\tAchievable\r\n");
    let month = month_label(month_start);
    let mut rows = 0u64;
    let (mut total_den, mut total_num) = (0u64, 0u64);
    for p in practices {
        let deprivation = (10.0 - lsoas[p.lsoa].decile as f64) / 9.0;
        for (name, ages, cohort, den_name, typical, acceptable, achievable) in PROGRAMMES {
            let denominator = 150 + rng.below(2_400);
            let rate = (typical + 0.14 * (0.5 - deprivation) + 0.05 * rng.normal()).clamp(0.05, 0.98);
            let numerator = ((denominator as f64) * rate).round() as u64;
            total_den += denominator;
            total_num += numerator;
            let suppressed = faults.pick_any(rng);
            let shown_num = if suppressed { "*".to_string() } else { thousands(numerator) };
            let performance = format!("{:.1}%", 100.0 * numerator as f64 / denominator as f64);
            text.push_str(&format!(
                "{}\t{}\t{name}\t{month}\t{ages}\t{cohort}\t{den_name}\t{}\t{shown_num}\t{performance}\t{acceptable}\t{achievable}\r\n",
                p.code,
                p.name,
                thousands(denominator)
            ));
            rows += 1;
        }
    }
    text.push_str(&format!(
        "Total\tAll practices\tAll\t{month}\t\t\t\t{}\t{}\t{:.1}%\t\t\r\n",
        thousands(total_den),
        thousands(total_num),
        100.0 * total_num as f64 / total_den.max(1) as f64
    ));
    let mut bytes = vec![0xFF, 0xFE];
    for unit in text.encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    (bytes, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn export_is_utf16le_with_bom_and_title_line() {
        let lsoas = super::super::pathways::lsoas();
        let ps = practices(&lsoas, 1);
        assert!(ps.len() > 100);
        let mut faults = Faults::default();
        let (bytes, rows) = export(19_723, &ps[..5], &lsoas, &mut Rng::new(1, "s"), &mut faults);
        assert_eq!(&bytes[..2], &[0xFF, 0xFE]);
        assert_eq!(rows, 15);
        let units: Vec<u16> = bytes[2..].chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        let text = String::from_utf16(&units).unwrap();
        assert_eq!(text.lines().nth(1).unwrap().split('\t').next(), Some("Organisation Code"));
        assert!(text.lines().last().unwrap().starts_with("Total\t"));
    }
}
