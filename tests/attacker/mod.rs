//! An attacker that sees only the published marts. It knows what any reader of the catalogue
//! knows about how the marts add up — written here from the marts' definitions, not taken from
//! the suppression code — and, for every withheld count, solves two linear programmes over
//! everything published (in every mart at once) for the smallest and largest value it can have.
#![allow(dead_code)]

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};
use microlp::{ComparisonOp, OptimizationDirection, Problem};

pub mod knowledge;
use std::collections::{BTreeMap, HashMap};

/// The published tables, by name, with every column read once as numbers and as text.
#[derive(Default)]
pub struct Published {
    pub tables: BTreeMap<String, RecordBatch>,
    numbers: HashMap<(String, String), Vec<Option<f64>>>,
    texts: HashMap<(String, String), Vec<String>>,
}

impl Published {
    /// Reads every `<mart>.parquet` in a folder.
    pub fn read(dir: &std::path::Path) -> Self {
        let mut out = Self::default();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "parquet") {
                let file = std::fs::File::open(&path).unwrap();
                let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .unwrap()
                    .build()
                    .unwrap();
                let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
                let name = path.file_stem().unwrap().to_string_lossy().to_string();
                if let Some(first) = batches.first() {
                    out.add(&name, arrow::compute::concat_batches(&first.schema(), &batches).unwrap());
                }
            }
        }
        out
    }

    /// Adds a table.
    pub fn add(&mut self, name: &str, batch: RecordBatch) {
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            let key = (name.to_string(), field.name().clone());
            if let Ok(n) = cast(column, &DataType::Float64) {
                self.numbers.insert(key.clone(), n.as_primitive::<Float64Type>().iter().collect());
            }
            let t = cast(column, &DataType::Utf8).unwrap();
            let t = t.as_string::<i32>();
            let text = (0..t.len()).map(|i| if t.is_valid(i) { t.value(i).to_string() } else { "∅".into() }).collect();
            self.texts.insert(key, text);
        }
        self.tables.insert(name.to_string(), batch);
    }

    pub fn rows(&self, table: &str) -> usize {
        self.tables.get(table).map_or(0, |b| b.num_rows())
    }

    pub fn num(&self, table: &str, row: usize, column: &str) -> Option<f64> {
        self.numbers[&(table.to_string(), column.to_string())][row]
    }

    pub fn text(&self, table: &str, row: usize, column: &str) -> String {
        self.texts[&(table.to_string(), column.to_string())][row].clone()
    }

    pub fn suppressed(&self, table: &str, row: usize) -> bool {
        self.tables[table].column_by_name("suppressed").unwrap().as_boolean().value(row)
    }

    /// Rows of `table` grouped by the text of `columns`.
    pub fn groups(&self, table: &str, columns: &[&str]) -> BTreeMap<Vec<String>, Vec<usize>> {
        let mut out: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
        for row in 0..self.rows(table) {
            out.entry(columns.iter().map(|c| self.text(table, row, c)).collect()).or_default().push(row);
        }
        out
    }
}

/// `Σ a × x (op) rhs` over variable indexes.
type Row = (Vec<(usize, f64)>, ComparisonOp, f64);

/// The attacker's linear system: every count cell it refers to is a variable, fixed when
/// published; withheld cells are its targets.
#[derive(Default)]
pub struct Attack {
    index: HashMap<(String, usize, String), usize>,
    values: Vec<Option<f64>>,
    names: Vec<String>,
    targets: Vec<usize>,
    rows: Vec<Row>,
}

/// One withheld cell and the interval the attacker can place it in.
#[derive(Debug, Clone)]
pub struct Exposure {
    pub cell: String,
    pub lower: f64,
    pub upper: f64,
}

impl Attack {
    /// The variable of a cell, registered on first use (a withheld cell becomes a target).
    pub fn cell(&mut self, p: &Published, table: &str, row: usize, column: &str) -> usize {
        let key = (table.to_string(), row, column.to_string());
        if let Some(i) = self.index.get(&key) {
            return *i;
        }
        let value = p.num(table, row, column);
        let i = self.values.len();
        self.values.push(value);
        self.names.push(format!("{table} row {row} {column}"));
        if value.is_none() && p.suppressed(table, row) {
            self.targets.push(i);
        }
        self.index.insert(key, i);
        i
    }

    /// Every count column of every row of a table, so that each withheld one is attacked
    /// even when no rule mentions it.
    pub fn cells(&mut self, p: &Published, table: &str, columns: &[&str]) {
        for row in 0..p.rows(table) {
            for c in columns {
                self.cell(p, table, row, c);
            }
        }
    }

    /// `Σ a × x (op) rhs`.
    pub fn constrain(&mut self, terms: Vec<(usize, f64)>, op: ComparisonOp, rhs: f64) {
        self.rows.push((terms, op, rhs));
    }

    /// Sums of the same column over two row sets are equal.
    pub fn equal_sums(&mut self, p: &Published, table: &str, column: &str, a: &[usize], b: &[usize]) {
        let mut terms: Vec<(usize, f64)> = a.iter().map(|r| (self.cell(p, table, *r, column), 1.0)).collect();
        terms.extend(b.iter().map(|r| (self.cell(p, table, *r, column), -1.0)));
        self.constrain(terms, ComparisonOp::Eq, 0.0);
    }

    /// For every withheld cell, the smallest and largest value consistent with what is published.
    pub fn run(&self) -> Vec<Exposure> {
        // Substitute the published cells; link the unknowns.
        let mut reduced: Vec<Row> = Vec::new();
        let mut parent: Vec<usize> = (0..self.values.len()).collect();
        fn root(parent: &mut [usize], mut x: usize) -> usize {
            while parent[x] != x {
                parent[x] = parent[parent[x]];
                x = parent[x];
            }
            x
        }
        for (terms, op, rhs) in &self.rows {
            let mut unknown = Vec::new();
            let mut rhs = *rhs;
            for (v, a) in terms {
                match self.values[*v] {
                    Some(x) => rhs -= a * x,
                    None => unknown.push((*v, *a)),
                }
            }
            if unknown.is_empty() {
                continue;
            }
            for (v, _) in &unknown[1..] {
                let (x, y) = (root(&mut parent, unknown[0].0), root(&mut parent, *v));
                parent[x.max(y)] = x.min(y);
            }
            reduced.push((unknown, *op, rhs));
        }
        let mut by_component: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, (terms, _, _)) in reduced.iter().enumerate() {
            by_component.entry(root(&mut parent, terms[0].0)).or_default().push(i);
        }
        let mut out = Vec::new();
        for &target in &self.targets {
            let rows: &[usize] = by_component.get(&root(&mut parent, target)).map_or(&[], |v| v.as_slice());
            let solve = |direction| {
                let mut problem = Problem::new(direction);
                let mut vars = HashMap::new();
                let mut var = |problem: &mut Problem, v: usize| {
                    *vars
                        .entry(v)
                        .or_insert_with(|| problem.add_var(if v == target { 1.0 } else { 0.0 }, (0.0, f64::INFINITY)))
                };
                let t = var(&mut problem, target);
                for &r in rows {
                    let (terms, op, rhs) = &reduced[r];
                    let expr: Vec<_> = terms.iter().map(|(v, a)| (var(&mut problem, *v), *a)).collect();
                    problem.add_constraint(expr.as_slice(), *op, *rhs);
                }
                match problem.solve() {
                    Ok(outcome) => outcome.into_solution().expect("solved").var_value(t),
                    Err(microlp::Error::Unbounded) => f64::INFINITY,
                    Err(e) => panic!("the published marts admit no solution ({e:?}) around {}", self.names[target]),
                }
            };
            let lower = solve(OptimizationDirection::Minimize).max(0.0);
            let upper = solve(OptimizationDirection::Maximize);
            out.push(Exposure { cell: self.names[target].clone(), lower, upper });
        }
        out
    }
}
