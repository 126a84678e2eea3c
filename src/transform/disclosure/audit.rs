//! The attacker's view of a suppressed mart: for every withheld cell, the smallest and largest
//! value consistent with every published cell and the declared structure (two linear
//! programmes per cell, as sdcTable's `attack` and τ-Argus's audit do), solved with `microlp`.
//!
//! Published cells are constants; withheld cells, null cells and hidden quantities are the
//! unknowns, each at least zero. The system splits into independent components (cells linked by
//! no equation cannot narrow each other), each solved on its own.

use super::structure::{System, Var};
use microlp::{ComparisonOp, OptimizationDirection, Problem};
use std::collections::BTreeMap;

/// Values a withheld cell can take given what is published (`upper` may be infinite).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub lower: f64,
    pub upper: f64,
}

impl Range {
    pub fn width(&self) -> f64 {
        self.upper - self.lower
    }
}

/// Cells and equations that are linked to each other and to nothing else.
#[derive(Debug, Clone, Default)]
pub struct Component {
    pub cells: Vec<usize>,
    pub equations: Vec<usize>,
}

/// Splits the system into independent components (union–find over the variables).
pub fn components(system: &System) -> Vec<Component> {
    let cells = system.values.len();
    let index = |v: Var| match v {
        Var::Cell(c) => c,
        Var::Hidden(h) => cells + h,
    };
    let mut parent: Vec<usize> = (0..cells + system.hidden).collect();
    fn root(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for eq in &system.equations {
        let first = index(eq.terms[0].0);
        for (v, _) in &eq.terms[1..] {
            let (a, b) = (root(&mut parent, first), root(&mut parent, index(*v)));
            parent[a.max(b)] = a.min(b);
        }
    }
    let mut by_root: BTreeMap<usize, Component> = BTreeMap::new();
    for (i, eq) in system.equations.iter().enumerate() {
        let r = root(&mut parent, index(eq.terms[0].0));
        by_root.entry(r).or_default().equations.push(i);
    }
    for cell in 0..cells {
        let r = root(&mut parent, cell);
        by_root.entry(r).or_default().cells.push(cell);
    }
    by_root.into_values().collect()
}

/// The linear programme of one component: unknowns and `Σ a × unknown = rhs` rows.
struct Programme {
    unknowns: Vec<Var>,
    rows: Vec<(Vec<(usize, f64)>, f64)>,
}

/// Why a component could not be audited (names the rule, never a value).
#[derive(Debug, Clone)]
pub struct AuditError(pub String);

impl Programme {
    fn new(system: &System, component: &Component, withheld: &[bool]) -> Result<Self, AuditError> {
        let mut slots: BTreeMap<Var, usize> = BTreeMap::new();
        let mut unknowns = Vec::new();
        let mut rows = Vec::with_capacity(component.equations.len());
        for &e in &component.equations {
            let eq = &system.equations[e];
            let mut constant = 0.0;
            let mut terms = Vec::new();
            for &(var, coefficient) in &eq.terms {
                let published = match var {
                    Var::Cell(c) if !withheld[c] => system.values[c],
                    _ => None,
                };
                match published {
                    Some(value) => constant += coefficient * value,
                    None => {
                        let slot = *slots.entry(var).or_insert_with(|| {
                            unknowns.push(var);
                            unknowns.len() - 1
                        });
                        terms.push((slot, coefficient));
                    }
                }
            }
            if terms.is_empty() {
                if constant.abs() > 1e-6 * (1.0 + constant.abs()) {
                    return Err(AuditError(format!("the declared {} does not hold on the data", eq.rule)));
                }
                continue;
            }
            rows.push((terms, -constant));
        }
        Ok(Self { unknowns, rows })
    }

    fn solve(&self, target: usize, direction: OptimizationDirection) -> Result<f64, AuditError> {
        let mut problem = Problem::new(direction);
        let vars: Vec<_> = (0..self.unknowns.len())
            .map(|i| problem.add_var(if i == target { 1.0 } else { 0.0 }, (0.0, f64::INFINITY)))
            .collect();
        for (terms, rhs) in &self.rows {
            let expr: Vec<_> = terms.iter().map(|(slot, a)| (vars[*slot], *a)).collect();
            problem.add_constraint(expr.as_slice(), ComparisonOp::Eq, *rhs);
        }
        match problem.solve() {
            Ok(outcome) => match outcome.into_solution() {
                Ok(solution) => Ok(solution.var_value(vars[target])),
                Err(_) => Err(AuditError("the audit's linear programme was interrupted".into())),
            },
            Err(microlp::Error::Unbounded) => Ok(f64::INFINITY),
            Err(microlp::Error::Infeasible) => {
                Err(AuditError("the declared structure has no solution with the published values".into()))
            }
            Err(e) => Err(AuditError(format!("the audit's linear programme failed: {e:?}"))),
        }
    }
}

/// Checks that the declared structure holds on the unsuppressed data of a component: every
/// equation of published cells adds up, and the rest has a solution. Returns programmes solved.
/// `nothing_withheld` is all false, one entry per cell.
pub fn check(system: &System, component: &Component, nothing_withheld: &[bool]) -> Result<usize, AuditError> {
    let programme = Programme::new(system, component, nothing_withheld)?;
    if programme.unknowns.is_empty() || programme.rows.is_empty() {
        return Ok(0);
    }
    programme.solve(0, OptimizationDirection::Minimize)?;
    Ok(1)
}

/// The range of every withheld cell of one component, and the number of programmes solved.
pub fn audit(
    system: &System,
    component: &Component,
    withheld: &[bool],
) -> Result<(Vec<(usize, Range)>, usize), AuditError> {
    let programme = Programme::new(system, component, withheld)?;
    let mut ranges = Vec::new();
    let mut solved = 0;
    for &cell in component.cells.iter().filter(|c| withheld[**c]) {
        let Some(target) = programme.unknowns.iter().position(|v| *v == Var::Cell(cell)) else {
            // In no equation: nothing published bounds it.
            ranges.push((cell, Range { lower: 0.0, upper: f64::INFINITY }));
            continue;
        };
        let lower = programme.solve(target, OptimizationDirection::Minimize)?;
        let upper = programme.solve(target, OptimizationDirection::Maximize)?;
        solved += 2;
        ranges.push((cell, Range { lower: lower.max(0.0), upper }));
    }
    Ok((ranges, solved))
}
