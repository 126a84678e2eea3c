//! Primary and secondary suppression over the linear system, accepted only when the audit finds
//! every withheld cell protected.
//!
//! 1. **Primary**: every count between 1 and `threshold − 1`.
//! 2. **Together**: cells that are published or withheld as one (the counts of a complete
//!    identity on a row, the copies of a repeated value) follow each other, so a total is never
//!    withheld while both of its parts are published, nor the reverse.
//! 3. **Audit and secondary**: each component holding a withheld cell is audited
//!    ([`super::audit`]). For every withheld cell whose feasible range is narrower than the
//!    protection width, one more published cell is withheld: from the equations that hold the
//!    exposed cell (then their neighbours, and so on), preferring a cell whose value alone can
//!    widen the range enough, then the cheapest (smallest value together with what it drags
//!    along). Steps 2–3 repeat until the audit passes everywhere.

use super::audit::{self, AuditError, Component, Range};
use super::structure::{System, Var};
use std::collections::{BTreeSet, HashMap};

/// The decision for one mart.
#[derive(Debug, Clone)]
pub struct Decision {
    /// Withheld, per cell.
    pub withheld: Vec<bool>,
    pub primary: usize,
    /// Range of every withheld cell at the final audit.
    pub ranges: Vec<(usize, Range)>,
    pub programmes: usize,
}

/// Suppresses the system until every withheld cell's range is at least `protection` wide.
pub fn protect(system: &System, threshold: f64, protection: f64) -> Result<Decision, AuditError> {
    let mut withheld: Vec<bool> = system.values.iter().map(|v| v.is_some_and(|x| x > 0.0 && x < threshold)).collect();
    let primary = withheld.iter().filter(|w| **w).count();
    let components = audit::components(system);
    let uses = equations_of(system);
    let together = together_of(system);
    let mut programmes = 0;
    // Every component is checked once against the data: the declared structure must hold.
    let nothing_withheld = vec![false; withheld.len()];
    for component in &components {
        programmes += audit::check(system, component, &nothing_withheld)?;
    }
    let mut ranges: HashMap<usize, Vec<(usize, Range)>> = HashMap::new();
    let mut dirty: BTreeSet<usize> = (0..components.len()).collect();
    while !dirty.is_empty() {
        close(system, &mut withheld);
        let mut next = BTreeSet::new();
        for k in dirty {
            let component = &components[k];
            if !component.cells.iter().any(|c| withheld[*c]) {
                continue;
            }
            let (found, solved) = audit::audit(system, component, &withheld)?;
            programmes += solved;
            // One more cell per component and round, for its most exposed cell: one withheld
            // neighbour often protects several exposed cells at once (those of one identity,
            // or of one equation), and the next audit says what is still exposed.
            let most_exposed = found
                .iter()
                .map(|(cell, range)| (*cell, protection - range.width()))
                .filter(|(_, needed)| *needed > 1e-6)
                .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
            if let Some((cell, needed)) = most_exposed {
                match candidate(system, component, &uses, &together, &withheld, cell, needed) {
                    Some(extra) => {
                        withheld[extra] = true;
                        next.insert(k);
                    }
                    None => {
                        return Err(AuditError(format!(
                            "no published cell is left to protect a withheld {} cell",
                            system.columns[cell % system.columns.len()]
                        )))
                    }
                }
            }
            ranges.insert(k, found);
        }
        dirty = next;
    }
    let mut all: Vec<(usize, Range)> = ranges.into_values().flatten().collect();
    all.sort_by_key(|a| a.0);
    Ok(Decision { withheld, primary, ranges: all, programmes })
}

/// Withholds every cell that goes together with a withheld one, until nothing changes.
fn close(system: &System, withheld: &mut [bool]) {
    let mut changed = true;
    while changed {
        changed = false;
        for set in &system.together {
            if set.iter().any(|c| withheld[*c]) {
                for c in set {
                    if !withheld[*c] && system.values[*c].is_some() {
                        withheld[*c] = true;
                        changed = true;
                    }
                }
            }
        }
    }
}

fn equations_of(system: &System) -> HashMap<Var, Vec<usize>> {
    let mut uses: HashMap<Var, Vec<usize>> = HashMap::new();
    for (i, eq) in system.equations.iter().enumerate() {
        for (v, _) in &eq.terms {
            uses.entry(*v).or_default().push(i);
        }
    }
    uses
}

fn together_of(system: &System) -> HashMap<usize, Vec<usize>> {
    let mut of: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, set) in system.together.iter().enumerate() {
        for c in set {
            of.entry(*c).or_default().push(i);
        }
    }
    of
}

/// The published cell to withhold next for an exposed `cell`: searched outwards from the
/// equations holding it, preferring one whose value covers the `needed` width, then the lowest
/// information loss (its value plus the values withheld along with it), then the first.
fn candidate(
    system: &System,
    component: &Component,
    uses: &HashMap<Var, Vec<usize>>,
    together: &HashMap<usize, Vec<usize>>,
    withheld: &[bool],
    cell: usize,
    needed: f64,
) -> Option<usize> {
    let published = |c: usize| !withheld[c] && system.values[c].is_some();
    let cost = |c: usize| -> f64 {
        let dragged: BTreeSet<usize> =
            together.get(&c).into_iter().flatten().flat_map(|s| system.together[*s].iter().copied()).collect();
        system.values[c].unwrap_or(0.0)
            + dragged
                .iter()
                .filter(|d| **d != c && published(**d))
                .map(|d| system.values[*d].unwrap_or(0.0))
                .sum::<f64>()
    };
    let mut frontier: BTreeSet<Var> = [Var::Cell(cell)].into();
    let mut seen: BTreeSet<usize> = BTreeSet::new();
    for _ in 0..component.equations.len().max(1) {
        let equations: Vec<usize> = frontier
            .iter()
            .flat_map(|v| uses.get(v).into_iter().flatten().copied())
            .filter(|e| seen.insert(*e))
            .collect();
        if equations.is_empty() {
            return None;
        }
        let mut cells: Vec<usize> = equations
            .iter()
            .flat_map(|e| system.equations[*e].terms.iter())
            .filter_map(|(v, _)| match v {
                Var::Cell(c) if published(*c) => Some(*c),
                _ => None,
            })
            .collect();
        cells.sort_unstable();
        cells.dedup();
        let best = cells.into_iter().min_by(|a, b| {
            let short = |c: usize| system.values[c].unwrap_or(0.0) < needed;
            (short(*a), cost(*a), *a).partial_cmp(&(short(*b), cost(*b), *b)).unwrap_or(std::cmp::Ordering::Equal)
        });
        if best.is_some() {
            return best;
        }
        frontier = equations.iter().flat_map(|e| system.equations[*e].terms.iter().map(|(v, _)| *v)).collect();
    }
    None
}
