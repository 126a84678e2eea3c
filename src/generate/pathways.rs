//! The synthetic patient-level cancer pathway: one urgent referral and what followed, drawn so
//! that the marts have something real to find.
//!
//! Residence is drawn from the real LSOAs (IMD 2019) of the trust's boroughs; the draws then
//! carry deliberate, documented inequalities: more deprived areas wait a little longer for a
//! diagnosis and are diagnosed at a later stage. Waits follow right-skewed distributions tuned so
//! that about three quarters meet the 28-day standard and most treated patients meet the 31- and
//! 62-day standards. Events after the extract's as-of date are absent (open pathways).

use super::rng::Rng;
use crate::ingest::dates::{civil_from_days, days_from_civil};

/// The bundled LSOA → borough → IMD 2019 lookup (same bytes as the published DERIVED file).
const LSOA_IMD: &str = include_str!("../../config/reference/lsoa_imd2019_nel_ncl.csv");

/// One LSOA of residence.
#[derive(Debug, Clone)]
pub struct Lsoa {
    pub code: String,
    pub borough: String,
    /// IMD 2019 decile, 1 = most deprived.
    pub decile: u8,
}

/// All bundled LSOAs, parsed once.
pub fn lsoas_cached() -> &'static [Lsoa] {
    static CACHE: std::sync::OnceLock<Vec<Lsoa>> = std::sync::OnceLock::new();
    CACHE.get_or_init(lsoas)
}

/// All bundled LSOAs.
pub fn lsoas() -> Vec<Lsoa> {
    LSOA_IMD
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            Some(Lsoa { code: f.get(1)?.to_string(), borough: f.get(5)?.to_string(), decile: f.get(8)?.parse().ok()? })
        })
        .collect()
}

/// North East London boroughs (the rest of the bundled LSOAs are North Central London).
pub const NEL_BOROUGHS: &[&str] = &[
    "Barking and Dagenham",
    "City of London",
    "Hackney",
    "Havering",
    "Newham",
    "Redbridge",
    "Tower Hamlets",
    "Waltham Forest",
];

/// The commissioner code for a borough in a month: the sub-ICB location from its creation
/// (NEL A3A8R from April 2021, NCL 93C from April 2020), the borough's CCG before.
pub fn commissioner(borough: &str, month_days: i32) -> &'static str {
    let nel_merged = days_from_civil(2021, 4, 1).unwrap_or(0);
    let ncl_merged = days_from_civil(2020, 4, 1).unwrap_or(0);
    let old = match borough {
        "Barking and Dagenham" => "07L",
        "City of London" | "Hackney" => "07T",
        "Havering" => "08F",
        "Newham" => "08M",
        "Redbridge" => "08N",
        "Tower Hamlets" => "08V",
        "Waltham Forest" => "08W",
        "Barnet" => "07M",
        "Camden" => "07R",
        "Enfield" => "07X",
        "Haringey" => "08D",
        _ => "08H",
    };
    if NEL_BOROUGHS.contains(&borough) {
        if month_days >= nel_merged {
            "A3A8R"
        } else {
            old
        }
    } else if month_days >= ncl_merged {
        "93C"
    } else {
        old
    }
}

/// Referral routes (canonical labels).
pub const ROUTES: [&str; 4] = ["URGENT SUSPECTED CANCER", "SCREENING", "BREAST SYMPTOMATIC", "CONSULTANT UPGRADE"];
/// Treatment modalities.
pub const MODALITIES: [&str; 4] = ["Surgery", "Anti-cancer drug regimen", "Radiotherapy", "Other"];
/// Independent-sector providers (ODS codes in `config/reference/independent_sector_providers.csv`).
pub const INDEPENDENT: [&str; 4] = ["NT3", "NVC", "NT2", "NT4"];
/// NHS ethnic category codes and rough London weights.
const ETHNIC: [(&str, f64); 17] = [
    ("A", 36.0),
    ("B", 2.0),
    ("C", 14.0),
    ("D", 1.5),
    ("E", 1.0),
    ("F", 1.0),
    ("G", 1.5),
    ("H", 6.0),
    ("J", 3.0),
    ("K", 7.0),
    ("L", 4.0),
    ("M", 4.5),
    ("N", 8.0),
    ("P", 2.0),
    ("R", 1.5),
    ("S", 3.0),
    ("Z", 4.0),
];

/// Suspected cancer sites: (label, weight, share female, conversion to a cancer diagnosis, mean age).
const SITES: [(&str, f64, f64, f64, f64); 10] = [
    ("Breast", 20.0, 0.99, 0.06, 58.0),
    ("Lower Gastrointestinal", 18.0, 0.52, 0.04, 64.0),
    ("Skin", 14.0, 0.55, 0.08, 62.0),
    ("Urological", 13.0, 0.12, 0.12, 68.0),
    ("Upper Gastrointestinal", 8.0, 0.5, 0.05, 65.0),
    ("Lung", 7.0, 0.48, 0.2, 70.0),
    ("Gynaecological", 7.0, 1.0, 0.05, 55.0),
    ("Head and Neck", 6.0, 0.45, 0.05, 60.0),
    ("Haematological", 4.0, 0.46, 0.1, 66.0),
    ("Other", 3.0, 0.5, 0.06, 63.0),
];

/// One pathway, with day numbers (days since 1970-01-01) for dates.
#[derive(Debug, Clone)]
pub struct Pathway {
    pub pathway_id: String,
    pub nhs_number: [u8; 10],
    pub provider: &'static str,
    pub commissioner: &'static str,
    pub referral: i32,
    pub route: usize,
    pub site: usize,
    pub first_seen: Option<i32>,
    pub fds: Option<i32>,
    /// `Some(true)` confirmed, `Some(false)` ruled out, `None` not yet told.
    pub confirmed: Option<bool>,
    pub dtt: Option<i32>,
    pub treatment: Option<i32>,
    pub modality: Option<usize>,
    pub treating_provider: Option<&'static str>,
    /// 1–4, or 0 for not staged (X); only for confirmed cancers.
    pub stage: Option<u8>,
    pub age: u8,
    pub female: bool,
    pub ethnic: &'static str,
    pub lsoa: usize,
}

impl Pathway {
    pub fn site_label(&self) -> &'static str {
        SITES[self.site].0
    }
    pub fn route_label(&self) -> &'static str {
        ROUTES[self.route]
    }
    pub fn modality_label(&self) -> Option<&'static str> {
        self.modality.map(|m| MODALITIES[m])
    }
    /// Stage as published: `1`–`4` or `X`.
    pub fn stage_label(&self) -> Option<&'static str> {
        self.stage.map(|s| ["X", "1", "2", "3", "4"][s as usize])
    }

    /// The day the pathway left the PTL: first treatment, or cancer ruled out; `None` while open.
    pub fn closed_on(&self) -> Option<i32> {
        self.treatment.or(if self.confirmed == Some(false) { self.fds } else { None })
    }

    /// The pathway as a PTL extracted at the end of `day` reports it: later events are not yet
    /// known.
    pub fn as_at(mut self, day: i32) -> Self {
        if self.treatment.is_some_and(|d| d > day) {
            (self.treatment, self.modality, self.treating_provider) = (None, None, None);
        }
        if self.dtt.is_some_and(|d| d > day) {
            (self.dtt, self.treatment, self.modality, self.treating_provider) = (None, None, None, None);
        }
        if self.fds.is_some_and(|d| d > day) {
            (self.fds, self.confirmed, self.stage) = (None, None, None);
            (self.dtt, self.treatment, self.modality, self.treating_provider) = (None, None, None, None);
        }
        if self.first_seen.is_some_and(|d| d > day) {
            self.first_seen = None;
        }
        self
    }
}

/// Draws pathways for one trust and referral month.
pub struct PathwayDrawer<'a> {
    pub trust: &'static str,
    pub peers: &'a [&'static str],
    pub lsoas: &'a [Lsoa],
    /// Indices into `lsoas` of the trust's catchment.
    pub catchment: Vec<usize>,
    pub month_start: i32,
    pub month_days: i32,
    /// Extract date: later events are not yet known.
    pub as_of: i32,
}

impl PathwayDrawer<'_> {
    /// Draws pathway number `seq` of the month.
    pub fn draw(&self, rng: &mut Rng, seq: u64) -> Pathway {
        let lsoa = self.catchment[rng.below(self.catchment.len() as u64) as usize];
        let deprivation = (10.0 - self.lsoas[lsoa].decile as f64) / 9.0; // 1 = most deprived
        let site = rng.weighted(&SITES.map(|s| s.1));
        let (_, _, female_share, conversion, mean_age) = SITES[site];
        let female = rng.chance(female_share);
        let age = (mean_age + 13.0 * rng.normal()).clamp(18.0, 99.0) as u8;
        let route = match SITES[site].0 {
            "Breast" => rng.weighted(&[70.0, 15.0, 15.0, 0.0]),
            "Lower Gastrointestinal" => rng.weighted(&[86.0, 12.0, 0.0, 2.0]),
            "Gynaecological" => rng.weighted(&[90.0, 7.0, 0.0, 3.0]),
            _ => rng.weighted(&[96.0, 0.0, 0.0, 4.0]),
        };
        let referral = self.month_start + rng.below(self.month_days as u64) as i32;
        let known = |day: i32| (day <= self.as_of).then_some(day);
        let first_seen = known(referral + 2 + (rng.unit() * rng.unit() * 24.0) as i32);
        // Log-normal days to diagnosis: median ~15 days, longer with deprivation.
        let fds_days = (4.0 + (2.45 + 0.18 * deprivation + 0.55 * rng.normal()).exp()).round() as i32;
        let fds = first_seen.and_then(|seen| known((referral + fds_days).max(seen)));
        let is_cancer = rng.chance(conversion * (1.0 + 0.15 * deprivation));
        let confirmed = fds.map(|_| is_cancer);
        let (mut dtt, mut treatment, mut modality, mut treating_provider, mut stage) = (None, None, None, None, None);
        if confirmed == Some(true) {
            let early = 0.62 - 0.14 * deprivation;
            stage = Some(if rng.chance(0.07) {
                0
            } else if rng.chance(early) {
                1 + rng.below(2) as u8
            } else {
                3 + rng.below(2) as u8
            });
            let fds_day = fds.unwrap_or(referral);
            dtt = known(fds_day + 2 + (rng.unit() * 20.0) as i32);
            if let Some(d) = dtt {
                let wait = if rng.chance(0.94) { rng.between(0, 31) } else { rng.between(32, 75) } as i32;
                treatment = known(d + wait);
            }
            if treatment.is_some() {
                let m = rng.weighted(&[45.0, 30.0, 20.0, 5.0]);
                modality = Some(m);
                let here = rng.unit();
                treating_provider = Some(if m == 0 && here < 0.12 {
                    INDEPENDENT[rng.below(INDEPENDENT.len() as u64) as usize]
                } else if here > 0.9 && !self.peers.is_empty() {
                    self.peers[rng.below(self.peers.len() as u64) as usize]
                } else {
                    self.trust
                });
            }
        }
        let ethnic = ETHNIC[rng.weighted(&ETHNIC.map(|e| e.1))].0;
        let (y, m, _) = civil_from_days(self.month_start);
        Pathway {
            pathway_id: format!("{}-{y:04}{m:02}-{seq:08}", self.trust),
            nhs_number: nhs_number(rng),
            provider: self.trust,
            commissioner: commissioner(&self.lsoas[lsoa].borough, self.month_start),
            referral,
            route,
            site,
            first_seen,
            fds,
            confirmed,
            dtt,
            treatment,
            modality,
            treating_provider,
            stage,
            age,
            female,
            ethnic,
            lsoa,
        }
    }
}

/// A valid (modulus-11) synthetic NHS number as ten ASCII digits. Synthetic numbers start with
/// 9, the range NHS England reserves for test data, so they can never identify anyone.
pub fn nhs_number(rng: &mut Rng) -> [u8; 10] {
    loop {
        let mut first9 = [0u8; 9];
        first9[0] = 9;
        for d in first9.iter_mut().skip(1) {
            *d = rng.below(10) as u8;
        }
        if let Some(check) = crate::ingest::nhs::check_digit(&first9) {
            let mut out = [0u8; 10];
            for (o, d) in out.iter_mut().zip(first9.iter().chain(std::iter::once(&check))) {
                *o = b'0' + d;
            }
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_lsoas_cover_both_alliances() {
        let all = lsoas();
        assert!(all.len() > 1500, "{}", all.len());
        assert!(all.iter().any(|l| l.borough == "Tower Hamlets"));
        assert!(all.iter().any(|l| l.borough == "Islington"));
        assert!(all.iter().all(|l| (1..=10).contains(&l.decile)));
    }

    #[test]
    fn synthetic_nhs_numbers_are_valid_test_range() {
        let mut rng = Rng::new(3, "nhs");
        for _ in 0..1000 {
            let n = nhs_number(&mut rng);
            assert_eq!(n[0], b'9');
            assert!(crate::ingest::nhs::validate(std::str::from_utf8(&n).unwrap()).is_ok());
        }
    }

    #[test]
    fn commissioners_follow_the_mergers() {
        let before = days_from_civil(2021, 3, 1).unwrap();
        let after = days_from_civil(2021, 4, 1).unwrap();
        assert_eq!(commissioner("Newham", before), "08M");
        assert_eq!(commissioner("Newham", after), "A3A8R");
        assert_eq!(commissioner("Camden", before), "93C");
    }

    #[test]
    fn waits_and_gradients_are_plausible() {
        let all = lsoas();
        let start = days_from_civil(2024, 1, 1).unwrap();
        let drawer = PathwayDrawer {
            trust: "RAL",
            peers: &["RRV"],
            lsoas: &all,
            catchment: (0..all.len()).collect(),
            month_start: start,
            month_days: 31,
            as_of: start + 400,
        };
        let mut rng = Rng::new(11, "test");
        let ps: Vec<Pathway> = (0..40_000).map(|i| drawer.draw(&mut rng, i)).collect();
        let told: Vec<&Pathway> = ps.iter().filter(|p| p.fds.is_some()).collect();
        let within = told.iter().filter(|p| p.fds.unwrap() - p.referral <= 28).count() as f64 / told.len() as f64;
        assert!((0.7..0.9).contains(&within), "FDS within 28 days: {within}");
        let early_share = |lo: u8, hi: u8| {
            let staged: Vec<&Pathway> = ps
                .iter()
                .filter(|p| matches!(p.stage, Some(1..=4)) && (lo..=hi).contains(&all[p.lsoa].decile))
                .collect();
            staged.iter().filter(|p| p.stage <= Some(2)).count() as f64 / staged.len() as f64
        };
        assert!(early_share(1, 2) < early_share(9, 10), "deprivation gradient in stage");
    }
}
