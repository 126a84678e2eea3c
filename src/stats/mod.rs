//! Public-health statistical methods, as OHID/PHE's `PHEindicatormethods` defines them, checked
//! against its published test values (`../shared/data/stats`) to 1e-6.
//!
//! - [`wilson`]: Wilson score interval for a proportion `x / n`.
//! - [`byar`]: Byar's approximation to the Poisson interval for a count (used from 10 events).
//! - [`exact_poisson`]: exact Poisson interval from chi-square quantiles (used below 10 events).
//! - [`count_interval`]: the PHE rule: exact below 10 events, Byar from 10.
//! - [`dsr`]: directly age-standardised rate with the European Standard Population 2013 and the
//!   Dobson interval (Byar-based), not computed below 10 events.
//! - [`sii`]: slope index of inequality by population-weighted least squares of the value on the
//!   mid-point cumulative population rank (ridit) of each quantile, and the relative index.
//!
//! Confidence is a level such as 0.95 or 0.998. Functions return `None` where the method is not
//! defined (empty denominators, negative counts, fewer than 10 events for a DSR).

pub mod udf;

use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

/// European Standard Population 2013, 19 five-year bands `0-4` … `85-89`, `90+`.
pub const ESP2013: [(&str, f64); 19] = [
    ("0-4", 5000.0),
    ("5-9", 5500.0),
    ("10-14", 5500.0),
    ("15-19", 5500.0),
    ("20-24", 6000.0),
    ("25-29", 6000.0),
    ("30-34", 6500.0),
    ("35-39", 7000.0),
    ("40-44", 7000.0),
    ("45-49", 7000.0),
    ("50-54", 7000.0),
    ("55-59", 6500.0),
    ("60-64", 6000.0),
    ("65-69", 5500.0),
    ("70-74", 5000.0),
    ("75-79", 4000.0),
    ("80-84", 2500.0),
    ("85-89", 1500.0),
    ("90+", 1000.0),
];

/// A point estimate with its interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub value: f64,
    pub lower: f64,
    pub upper: f64,
}

/// Two-sided standard normal quantile for a confidence level.
pub fn z(confidence: f64) -> f64 {
    Normal::standard().inverse_cdf(1.0 - (1.0 - confidence) / 2.0)
}

/// Wilson score interval for `x` events out of `n` (a proportion in 0–1).
pub fn wilson(x: f64, n: f64, confidence: f64) -> Option<Interval> {
    if n <= 0.0 || x < 0.0 || x > n {
        return None;
    }
    let z = z(confidence);
    let p = x / n;
    let centre = 2.0 * x + z * z;
    let spread = z * (z * z + 4.0 * x * (1.0 - p)).sqrt();
    let denominator = 2.0 * (n + z * z);
    // At the boundaries the interval touches 0 or 1 exactly (the formula gives it up to rounding).
    let lower = if x == 0.0 { 0.0 } else { ((centre - spread) / denominator).max(0.0) };
    let upper = if x == n { 1.0 } else { ((centre + spread) / denominator).min(1.0) };
    Some(Interval { value: p, lower, upper })
}

/// Byar's interval for an observed count.
pub fn byar(o: f64, confidence: f64) -> Option<Interval> {
    if o < 0.0 {
        return None;
    }
    let z = z(confidence);
    let lower = if o == 0.0 { 0.0 } else { o * (1.0 - 1.0 / (9.0 * o) - z / (3.0 * o.sqrt())).powi(3) };
    let o1 = o + 1.0;
    let upper = o1 * (1.0 - 1.0 / (9.0 * o1) + z / (3.0 * o1.sqrt())).powi(3);
    Some(Interval { value: o, lower, upper })
}

/// Exact Poisson interval for an observed count (chi-square quantiles).
pub fn exact_poisson(o: f64, confidence: f64) -> Option<Interval> {
    if o < 0.0 {
        return None;
    }
    let alpha = 1.0 - confidence;
    let lower = if o == 0.0 { 0.0 } else { ChiSquared::new(2.0 * o).ok()?.inverse_cdf(alpha / 2.0) / 2.0 };
    let upper = ChiSquared::new(2.0 * (o + 1.0)).ok()?.inverse_cdf(1.0 - alpha / 2.0) / 2.0;
    Some(Interval { value: o, lower, upper })
}

/// The PHE rule for a count: exact Poisson below 10 events, Byar from 10.
pub fn count_interval(o: f64, confidence: f64) -> Option<Interval> {
    if o < 10.0 {
        exact_poisson(o, confidence)
    } else {
        byar(o, confidence)
    }
}

/// Crude rate `x / n × per` with the count interval scaled the same way.
pub fn crude_rate(x: f64, n: f64, per: f64, confidence: f64) -> Option<Interval> {
    if n <= 0.0 {
        return None;
    }
    let c = count_interval(x, confidence)?;
    let scale = per / n;
    Some(Interval { value: x * scale, lower: c.lower * scale, upper: c.upper * scale })
}

/// One stratum of a standardisation: events, population, standard population weight.
#[derive(Debug, Clone, Copy)]
pub struct Stratum {
    pub count: f64,
    pub population: f64,
    pub standard: f64,
}

/// Directly standardised rate per `per` with the Dobson interval; `None` below 10 events or
/// with an empty stratum population.
pub fn dsr(strata: &[Stratum], per: f64, confidence: f64) -> Option<Interval> {
    let total: f64 = strata.iter().map(|s| s.count).sum();
    let weights: f64 = strata.iter().map(|s| s.standard).sum();
    if total < 10.0 || weights <= 0.0 || strata.iter().any(|s| s.population <= 0.0 || s.count < 0.0) {
        return None;
    }
    let value = strata.iter().map(|s| s.standard * s.count / s.population).sum::<f64>() / weights * per;
    let variance =
        strata.iter().map(|s| s.standard * s.standard * s.count / (s.population * s.population)).sum::<f64>()
            / (weights * weights)
            * per
            * per;
    let (lower, upper) = dobson(value, variance, total, confidence)?;
    Some(Interval { value, lower, upper })
}

/// Dobson's interval for a weighted sum of Poisson counts with point `value` and `variance`,
/// from Byar's interval on the `total` count.
pub fn dobson(value: f64, variance: f64, total: f64, confidence: f64) -> Option<(f64, f64)> {
    if total <= 0.0 {
        return None;
    }
    let b = byar(total, confidence)?;
    let factor = (variance / total).sqrt();
    Some((value + factor * (b.lower - total), value + factor * (b.upper - total)))
}

/// Slope index of inequality: `groups` are (population, value) ordered from most to least
/// deprived. Returns (sii, rii) where rii is the ratio of the fitted values at the least and
/// most deprived ends (rank 1 over rank 0).
pub fn sii(groups: &[(f64, f64)]) -> Option<(f64, f64)> {
    let total: f64 = groups.iter().map(|g| g.0).sum();
    if groups.len() < 2 || total <= 0.0 {
        return None;
    }
    // Mid-point of each group's share of the cumulative population.
    let mut cumulative = 0.0;
    let ranks: Vec<f64> = groups
        .iter()
        .map(|(pop, _)| {
            let mid = (cumulative + pop / 2.0) / total;
            cumulative += pop;
            mid
        })
        .collect();
    let mean_x = groups.iter().zip(&ranks).map(|(g, x)| g.0 * x).sum::<f64>() / total;
    let mean_y = groups.iter().map(|g| g.0 * g.1).sum::<f64>() / total;
    let sxx: f64 = groups.iter().zip(&ranks).map(|(g, x)| g.0 * (x - mean_x).powi(2)).sum();
    let sxy: f64 = groups.iter().zip(&ranks).map(|(g, x)| g.0 * (x - mean_x) * (g.1 - mean_y)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let intercept = mean_y - slope * mean_x;
    Some((slope, (intercept + slope) / intercept))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }

    #[test]
    fn wilson_known_values() {
        let w = wilson(65.0, 100.0, 0.95).unwrap();
        close(w.lower, 0.5525444329688797);
        close(w.upper, 0.7363575175690247);
        assert!(wilson(1.0, 0.0, 0.95).is_none());
    }

    #[test]
    fn sii_is_a_weighted_slope() {
        // Exactly linear values: the slope over the full rank range is recovered.
        let groups: Vec<(f64, f64)> = (0..5).map(|i| (100.0, 10.0 + 5.0 * (i as f64 * 0.2 + 0.1))).collect();
        let (s, r) = sii(&groups).unwrap();
        close(s, 5.0);
        close(r, 15.0 / 10.0);
    }
}
