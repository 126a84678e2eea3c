//! Public-health statistical methods, as OHID/PHE's `PHEindicatormethods` defines them, checked
//! against its published test values (`../shared/data/stats`) to 1e-6.
//!
//! - [`wilson`]: Wilson score interval for a proportion `x / n`.
//! - [`byar`]: Byar's approximation to the Poisson interval for a count (used from 10 events).
//! - [`exact_poisson`]: exact Poisson interval from chi-square quantiles (used below 10 events).
//! - [`count_interval`]: the PHE rule: exact below 10 events, Byar from 10.
//! - [`crude_rate`]: `x / n × per` with the count interval of the raw count `x`, scaled.
//! - [`dsr`] / [`DsrSum`]: directly age-standardised rate with the Dobson interval (Byar-based),
//!   not computed below 10 events. The standard population (ESP2013) is an input: the warehouse
//!   reads it from the reference table `ref_esp2013`, never from code.
//! - [`sii`]: slope index of inequality by population-weighted least squares of the value on the
//!   mid-point cumulative population rank of each quantile (most deprived first), the relative
//!   index, optionally on the log (rates) or logit (proportions) scale ([`SiiTransform`]).
//!
//! Confidence is a level such as 0.95 or 0.998. Functions return `None` where the method is not
//! defined (empty denominators, negative counts, fewer than 10 events for a DSR).
//!
//! The marts call these through the SQL functions of [`udf`] (scalar) and [`udaf`] (aggregate):
//! one implementation of each method.

mod sii;
pub mod udaf;
pub mod udf;

pub use sii::{sii, Sii, SiiTransform};

use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

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

/// Directly standardised rate per `per` with the Dobson interval; `None` below 10 events, with
/// an empty or negative stratum population or a negative count. The strata are summed by
/// [`DsrSum`], as the SQL aggregates `dsr`, `dsr_lower` and `dsr_upper` do.
pub fn dsr(strata: &[Stratum], per: f64, confidence: f64) -> Option<Interval> {
    let mut sum = DsrSum::default();
    for s in strata {
        sum.add(*s);
    }
    sum.finish(per, confidence)
}

/// The running sums of a directly standardised rate, added to one stratum at a time and merged
/// across partitions; [`DsrSum::finish`] gives the rate and its Dobson interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DsrSum {
    /// Events over all strata.
    pub count: f64,
    /// Sum of the standard population weights.
    pub weights: f64,
    /// Sum of `standard × count / population`.
    pub rate: f64,
    /// Sum of `standard² × count / population²`.
    pub variance: f64,
    /// A stratum had a population of zero or less, or a negative count: no rate.
    pub invalid: bool,
}

impl DsrSum {
    /// Adds one stratum.
    pub fn add(&mut self, s: Stratum) {
        if s.population <= 0.0 || s.count < 0.0 || !(s.count.is_finite() && s.population.is_finite()) {
            self.invalid = true;
            return;
        }
        self.count += s.count;
        self.weights += s.standard;
        self.rate += s.standard * s.count / s.population;
        self.variance += s.standard * s.standard * s.count / (s.population * s.population);
    }

    /// Adds the strata summed by `other`.
    pub fn merge(&mut self, other: &DsrSum) {
        self.count += other.count;
        self.weights += other.weights;
        self.rate += other.rate;
        self.variance += other.variance;
        self.invalid |= other.invalid;
    }

    /// The rate per `per` with its Dobson interval; `None` below 10 events, without positive
    /// standard weights or after an invalid stratum.
    pub fn finish(&self, per: f64, confidence: f64) -> Option<Interval> {
        if self.invalid || self.count < 10.0 || self.weights <= 0.0 {
            return None;
        }
        let value = self.rate / self.weights * per;
        let variance = self.variance / (self.weights * self.weights) * per * per;
        let (lower, upper) = dobson(value, variance, self.count, confidence)?;
        Some(Interval { value, lower, upper })
    }
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
    fn dsr_sums_merge_as_one() {
        let strata: Vec<Stratum> = (1..=6)
            .map(|i| Stratum { count: 3.0 * i as f64, population: 100.0 * i as f64, standard: 1000.0 + i as f64 })
            .collect();
        let whole = dsr(&strata, 100_000.0, 0.95).unwrap();
        let (mut a, mut b) = (DsrSum::default(), DsrSum::default());
        strata[..2].iter().for_each(|s| a.add(*s));
        strata[2..].iter().for_each(|s| b.add(*s));
        a.merge(&b);
        let merged = a.finish(100_000.0, 0.95).unwrap();
        close(merged.value, whole.value);
        close(merged.lower, whole.lower);
        assert!(dsr(&strata[..1], 100_000.0, 0.95).is_none(), "3 events: below 10");
        let mut bad = strata.clone();
        bad[0].population = 0.0;
        assert!(dsr(&bad, 100_000.0, 0.95).is_none());
    }

    #[test]
    fn sii_is_a_weighted_slope() {
        // Exactly linear values: the slope over the full rank range is recovered.
        let groups: Vec<(f64, f64)> = (0..5).map(|i| (100.0, 10.0 + 5.0 * (i as f64 * 0.2 + 0.1))).collect();
        let s = sii(&groups, SiiTransform::None).unwrap();
        close(s.sii, 5.0);
        close(s.rii, 15.0 / 10.0);
        close(s.intercept, 10.0);
    }
}
