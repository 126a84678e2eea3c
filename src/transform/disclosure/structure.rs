//! The additive structure of a mart as a linear system over its count cells.
//!
//! A cell is one count of one row (`row × counts.len() + column`). Every declared rule becomes
//! equations `Σ coefficient × variable = 0` over cells and hidden variables: the unpublished
//! population of a partition, the unpublished rest of an incomplete identity or hierarchy. Every
//! variable is a count, so at least zero. A null count is an unknown the attacker does not see
//! either: a free variable, never published and never protected.

use super::model::{DisclosureSpec, RowSet};
use crate::error::{Error, Result};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use std::collections::BTreeMap;

/// A variable of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Var {
    /// A count cell.
    Cell(usize),
    /// An unpublished quantity (a partition's population, the rest of an incomplete sum).
    Hidden(usize),
}

/// `Σ coefficient × variable = 0`, with the rule it comes from.
#[derive(Debug, Clone)]
pub struct Equation {
    pub terms: Vec<(Var, f64)>,
    pub rule: String,
}

/// The linear system of one mart.
#[derive(Debug, Clone)]
pub struct System {
    /// Count columns, in declaration order.
    pub columns: Vec<String>,
    pub rows: usize,
    /// Value of each cell (`None` for a null count).
    pub values: Vec<Option<f64>>,
    /// Number of hidden variables.
    pub hidden: usize,
    pub equations: Vec<Equation>,
    /// Cells published or withheld together (the counts of a complete identity on one row, the
    /// copies of a repeated value).
    pub together: Vec<Vec<usize>>,
}

impl System {
    /// Reads the counts of `batch` and builds every declared equation.
    pub fn build(spec: &DisclosureSpec, batch: &RecordBatch) -> Result<Self> {
        let rows = batch.num_rows();
        let columns = spec.counts.clone();
        let mut values = vec![None; rows * columns.len()];
        for (j, name) in columns.iter().enumerate() {
            let array = numbers(batch, name)?;
            for (row, v) in array.into_iter().enumerate() {
                values[row * columns.len() + j] = v;
            }
        }
        let mut system = System { columns, rows, values, hidden: 0, equations: vec![], together: vec![] };
        system.identities(spec);
        system.partitions(spec, batch)?;
        system.hierarchies(spec, batch)?;
        system.same_values(spec, batch)?;
        Ok(system)
    }

    /// The cell of `row` in count column `name`.
    pub fn cell(&self, row: usize, name: &str) -> usize {
        let j = self.columns.iter().position(|c| c == name).expect("a declared count");
        row * self.columns.len() + j
    }

    /// The row of a cell.
    pub fn row_of(&self, cell: usize) -> usize {
        cell / self.columns.len()
    }

    fn hidden_var(&mut self) -> Var {
        self.hidden += 1;
        Var::Hidden(self.hidden - 1)
    }

    /// `total − Σ parts (− rest) = 0`.
    fn sum_rule(&mut self, total: usize, parts: &[usize], complete: bool, rule: String) {
        let mut terms = vec![(Var::Cell(total), 1.0)];
        terms.extend(parts.iter().map(|p| (Var::Cell(*p), -1.0)));
        if !complete {
            let rest = self.hidden_var();
            terms.push((rest, -1.0));
        }
        self.equations.push(Equation { terms, rule });
    }

    fn identities(&mut self, spec: &DisclosureSpec) {
        for identity in &spec.identities {
            let rule = format!("identity {} = {}", identity.total, identity.parts.join(" + "));
            for row in 0..self.rows {
                let total = self.cell(row, &identity.total);
                let parts: Vec<usize> = identity.parts.iter().map(|p| self.cell(row, p)).collect();
                self.sum_rule(total, &parts, identity.complete, rule.clone());
                if identity.complete {
                    self.together.push(std::iter::once(total).chain(parts).collect());
                }
            }
        }
    }

    fn partitions(&mut self, spec: &DisclosureSpec, batch: &RecordBatch) -> Result<()> {
        for partition in &spec.partitions {
            let within = keys(batch, &partition.within)?;
            let by = keys(batch, std::slice::from_ref(&partition.by))?;
            // within key → by value → rows
            let mut groups: BTreeMap<&str, BTreeMap<&str, Vec<usize>>> = BTreeMap::new();
            for row in 0..self.rows {
                groups.entry(&within[row]).or_default().entry(&by[row]).or_default().push(row);
            }
            let rule = format!("partition by {} within {}", partition.by, partition.within.join(", "));
            for parts in groups.values().filter(|g| g.len() > 1) {
                for column in self.columns.clone() {
                    let population = self.hidden_var();
                    for members in parts.values() {
                        let mut terms = vec![(population, -1.0)];
                        terms.extend(members.iter().map(|r| (Var::Cell(self.cell(*r, &column)), 1.0)));
                        self.equations.push(Equation { terms, rule: format!("{rule} ({column})") });
                    }
                }
            }
        }
        Ok(())
    }

    fn hierarchies(&mut self, spec: &DisclosureSpec, batch: &RecordBatch) -> Result<()> {
        for h in &spec.hierarchies {
            let within = keys(batch, &h.within)?;
            let parents = selected(batch, &h.parent)?;
            let children = selected(batch, &h.child)?;
            let pairs: Vec<[String; 2]> = if h.columns.is_empty() {
                self.columns.iter().map(|c| [c.clone(), c.clone()]).collect()
            } else {
                h.columns.clone()
            };
            // (within, key) → child rows
            let mut by_key: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
            for (row, key) in children.iter().enumerate() {
                if let Some(key) = key {
                    by_key.entry((&within[row], key)).or_default().push(row);
                }
            }
            for (row, key) in parents.iter().enumerate() {
                let Some(key) = key else { continue };
                let Some(members) = by_key.get(&(within[row].as_str(), key.as_str())) else { continue };
                for [parent_column, child_column] in &pairs {
                    let total = self.cell(row, parent_column);
                    let parts: Vec<usize> = members.iter().map(|r| self.cell(*r, child_column)).collect();
                    self.sum_rule(total, &parts, h.complete, format!("hierarchy {} ({parent_column})", h.name));
                }
            }
        }
        Ok(())
    }

    fn same_values(&mut self, spec: &DisclosureSpec, batch: &RecordBatch) -> Result<()> {
        for s in &spec.same_value {
            let within = keys(batch, &s.within)?;
            let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
            for (row, key) in within.iter().enumerate() {
                groups.entry(key).or_default().push(self.cell(row, &s.column));
            }
            for cells in groups.into_values().filter(|c| c.len() > 1) {
                for pair in cells.windows(2) {
                    let terms = vec![(Var::Cell(pair[0]), 1.0), (Var::Cell(pair[1]), -1.0)];
                    self.equations
                        .push(Equation { terms, rule: format!("same {} within {}", s.column, s.within.join(", ")) });
                }
                self.together.push(cells);
            }
        }
        Ok(())
    }
}

/// A column of the mart cast to `to`.
fn column_as(batch: &RecordBatch, name: &str, to: &DataType) -> Result<ArrayRef> {
    let context = || format!("disclosure control: column {name}");
    let index = batch.schema().index_of(name).map_err(Error::arrow(context()))?;
    cast(batch.column(index), to).map_err(Error::arrow(context()))
}

/// A column as `f64` values.
pub fn numbers(batch: &RecordBatch, name: &str) -> Result<Vec<Option<f64>>> {
    Ok(column_as(batch, name, &DataType::Float64)?.as_primitive::<Float64Type>().iter().collect())
}

/// One text key per row from the values of `columns` (empty columns: one key for every row).
pub fn keys(batch: &RecordBatch, columns: &[String]) -> Result<Vec<String>> {
    let mut keys = vec![String::new(); batch.num_rows()];
    for name in columns {
        let text = text(batch, name)?;
        for (key, value) in keys.iter_mut().zip(text) {
            key.push_str(value.as_deref().unwrap_or("\u{0}"));
            key.push('\u{1}');
        }
    }
    Ok(keys)
}

/// A column as text (null stays `None`).
fn text(batch: &RecordBatch, name: &str) -> Result<Vec<Option<String>>> {
    let column = column_as(batch, name, &DataType::Utf8)?;
    let column = column.as_string::<i32>();
    Ok((0..column.len()).map(|i| column.is_valid(i).then(|| column.value(i).to_string())).collect())
}

/// For each row: its key in `set` if the row belongs to the set (an empty key when the set has
/// no key column), else `None`.
fn selected(batch: &RecordBatch, set: &RowSet) -> Result<Vec<Option<String>>> {
    let mut out: Vec<Option<String>> = match &set.key {
        Some(key) => text(batch, key)?,
        None => vec![Some(String::new()); batch.num_rows()],
    };
    for (column, wanted) in &set.filter {
        for (slot, value) in out.iter_mut().zip(text(batch, column)?) {
            if value.as_deref() != Some(wanted.as_str()) {
                *slot = None;
            }
        }
    }
    Ok(out)
}
