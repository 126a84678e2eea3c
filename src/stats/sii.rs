//! Slope and relative index of inequality, as `PHEindicatormethods::phe_sii` computes the point
//! estimates (its confidence intervals are simulated and not reproduced here).
//!
//! The groups are quantiles of deprivation ordered **most deprived first** (IMD quintile or
//! decile 1 first). Each group's rank is the mid-point of its share of the cumulative population
//! (0 = most deprived end, 1 = least deprived end). The value is regressed on the rank by least
//! squares weighted by population; the SII is the fitted difference between the least and the
//! most deprived end (fitted at rank 1 minus fitted at rank 0) and the RII their ratio.
//!
//! With [`SiiTransform::Log`] (rates) or [`SiiTransform::Logit`] (proportions in 0–1) the
//! regression is on the transformed values and the fitted ends are transformed back before the
//! difference and ratio are taken, as `phe_sii(transform = TRUE)` does. PHE's default is no
//! transform, for rates and proportions alike; its `multiplier` scales the SII (a negative one
//! also turns the RII into its reciprocal) and is left to the caller.
//!
//! Checked against every area of `testdata_SII.xlsx` (quintiles and deciles, life expectancy,
//! rates, proportions, with and without transform) in `tests/slt/sii.slt`.

/// The scale the regression runs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SiiTransform {
    /// The values as given (PHE's default).
    #[default]
    None,
    /// Natural logarithm: for rates (values > 0).
    Log,
    /// Log-odds: for proportions strictly between 0 and 1.
    Logit,
}

impl SiiTransform {
    /// `none`, `log` or `logit` (case-insensitive).
    pub fn parse(name: &str) -> Option<SiiTransform> {
        match name.trim().to_ascii_lowercase().as_str() {
            "none" | "" => Some(SiiTransform::None),
            "log" => Some(SiiTransform::Log),
            "logit" => Some(SiiTransform::Logit),
            _ => None,
        }
    }

    fn forward(self, v: f64) -> Option<f64> {
        let t = match self {
            SiiTransform::None => v,
            SiiTransform::Log if v > 0.0 => v.ln(),
            SiiTransform::Logit if v > 0.0 && v < 1.0 => (v / (1.0 - v)).ln(),
            _ => return None,
        };
        t.is_finite().then_some(t)
    }

    fn back(self, t: f64) -> f64 {
        match self {
            SiiTransform::None => t,
            SiiTransform::Log => t.exp(),
            SiiTransform::Logit => 1.0 / (1.0 + (-t).exp()),
        }
    }
}

/// The point estimates of [`sii`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sii {
    /// Fitted value at the least deprived end minus at the most deprived end.
    pub sii: f64,
    /// Fitted value at the least deprived end over at the most deprived end (not finite when
    /// the fitted most deprived value is 0).
    pub rii: f64,
    /// Fitted value at the most deprived end (rank 0), on the scale of the values.
    pub intercept: f64,
}

/// SII and RII of `groups`, each (population, value), ordered most deprived first. `None` with
/// fewer than two groups, a population that is not positive, a value that is not finite or
/// outside the transform's domain, or when every group has the same rank.
pub fn sii(groups: &[(f64, f64)], transform: SiiTransform) -> Option<Sii> {
    if groups.len() < 2 || groups.iter().any(|(pop, _)| !(pop.is_finite() && *pop > 0.0)) {
        return None;
    }
    let values: Vec<f64> = groups.iter().map(|(_, v)| transform.forward(*v)).collect::<Option<_>>()?;
    let total: f64 = groups.iter().map(|g| g.0).sum();
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
    let weighted = |f: &dyn Fn(usize) -> f64| (0..groups.len()).map(|i| groups[i].0 * f(i)).sum::<f64>();
    let mean_x = weighted(&|i| ranks[i]) / total;
    let mean_y = weighted(&|i| values[i]) / total;
    let sxx = weighted(&|i| (ranks[i] - mean_x).powi(2));
    let sxy = weighted(&|i| (ranks[i] - mean_x) * (values[i] - mean_y));
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let intercept = mean_y - slope * mean_x;
    let (most, least) = (transform.back(intercept), transform.back(intercept + slope));
    let result = Sii { sii: least - most, rii: least / most, intercept: most };
    result.sii.is_finite().then_some(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undefined_inputs_give_none() {
        let ok = [(10.0, 0.2), (20.0, 0.4)];
        assert!(sii(&ok, SiiTransform::Logit).is_some());
        assert!(sii(&ok[..1], SiiTransform::None).is_none(), "one group");
        assert!(sii(&[(10.0, 0.2), (-5.0, 0.4)], SiiTransform::None).is_none(), "negative population");
        assert!(sii(&[(10.0, 0.0), (20.0, 0.4)], SiiTransform::Logit).is_none(), "logit of 0");
        assert!(sii(&[(10.0, -1.0), (20.0, 0.4)], SiiTransform::Log).is_none(), "log of a negative");
        assert!(sii(&[(10.0, f64::NAN), (20.0, 0.4)], SiiTransform::None).is_none());
        assert_eq!(SiiTransform::parse("LOGIT"), Some(SiiTransform::Logit));
        assert_eq!(SiiTransform::parse("sqrt"), None);
    }
}
