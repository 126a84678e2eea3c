//! Applies a pipeline's column contract to raw text batches.
//!
//! Per batch: blank rows are skipped (they are not records), rows matching a declared drop rule
//! are counted and dropped, every contract column is parsed by its kernel (and mapped through its
//! national vocabulary, if it names one), and every invalid value is reported once (file, row,
//! column, reason; NHS-number values are never reported). What happens to the row depends on the
//! column's `on_invalid`:
//!
//! - `reject_row` (the default): the row is removed from the output and counted in
//!   `rows_quarantined`; its quarantine entries have level `row`.
//! - `null_value`: the value is replaced by a null, the row is written (counted in
//!   `rows_written`), and the entry has level `value`; each such value counts once in
//!   `values_nulled`. If the same row is also rejected by another column, it is a quarantined
//!   row like any other: all its entries have level `row` and none counts in `values_nulled`.
//!
//! Accounting per batch always holds: `rows_in = rows_written + rows_quarantined +
//! rows_dropped`, each row counted once; `values_nulled` counts values, not rows.
//!
//! Output columns: the contract columns in order, the derived columns, then `_source_file` and
//! `_source_row` (1-based row in the source, as a spreadsheet numbers it).

use super::nhs::Pseudonymiser;
use super::parse::{arrow_type, ColumnParser, NullTokens};
use super::plausibility::RangeRule;
use super::redact;
use super::source::{header_key, RawBatch, SourceHeader};
use crate::config::pipeline::{ColumnSpec, ColumnType, DerivedFrom, DerivedSpec, OnInvalid, Pipeline};
use crate::error::{Error, Result};
use arrow::array::{new_null_array, Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow::compute::filter;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use std::sync::{Arc, Mutex};

/// A value that failed its contract.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedValue {
    pub source_row: u64,
    pub column: String,
    pub reason: String,
    /// The raw text, or `None` where it must not be kept (NHS numbers).
    pub value: Option<String>,
    /// What was quarantined: the whole row, or this value alone (the row was written with a
    /// null in its place).
    pub level: QuarantineLevel,
}

/// What a quarantine entry stands for (the quarantine's `level` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuarantineLevel {
    /// The row was not written (`rows_quarantined`).
    #[default]
    Row,
    /// The value was nulled and the row written (`values_nulled`).
    Value,
}

impl QuarantineLevel {
    /// As stored in the quarantine's `level` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Row => "row",
            Self::Value => "value",
        }
    }

    /// From the `level` column (anything but `value` is a row).
    pub fn parse(text: &str) -> Self {
        if text == "value" {
            Self::Value
        } else {
            Self::Row
        }
    }
}

/// One normalised batch.
#[derive(Debug)]
pub struct Normalised {
    pub batch: RecordBatch,
    pub rejected: Vec<RejectedValue>,
    pub rows_in: u64,
    pub rows_dropped: u64,
    pub rows_quarantined: u64,
    /// Values nulled in written rows (`on_invalid = "null_value"`).
    pub values_nulled: u64,
}

struct Mapped {
    spec: ColumnSpec,
    source_index: Option<usize>,
    parser: ColumnParser,
    /// Declared plausibility bounds ([`RangeRule`]).
    rule: RangeRule,
}

/// Normaliser for one source file.
pub struct Normaliser {
    file: String,
    columns: Vec<Mapped>,
    derived: Vec<(String, ArrayRef)>,
    drop_rules: Vec<(usize, Vec<String>)>,
    schema: SchemaRef,
    /// The staging schema with every field nullable: rows are assembled under it, and only
    /// after the rejected rows are removed do non-nullable columns hold no nulls.
    relaxed: SchemaRef,
    /// See [`Normaliser::constant_columns`].
    constants: Mutex<Vec<ArrayRef>>,
}

/// The staging schema of a pipeline.
pub fn output_schema(p: &Pipeline) -> SchemaRef {
    let mut fields: Vec<Field> =
        p.columns.iter().map(|c| Field::new(&c.name, arrow_type(c.kind), c.nullable)).collect();
    fields.extend(p.derived.iter().map(|d| Field::new(&d.name, arrow_type(d.kind), true)));
    fields.push(Field::new("_source_file", DataType::Utf8, false));
    fields.push(Field::new("_source_row", DataType::Int64, false));
    Arc::new(Schema::new(fields))
}

fn parser_for(p: &Pipeline, c: &ColumnSpec, pseudonymiser: Option<&Arc<Pseudonymiser>>) -> ColumnParser {
    ColumnParser {
        kind: c.kind,
        formats: c.formats.clone(),
        bare_percent: c.bare_percent,
        nulls: NullTokens::new(p.null_tokens.iter().chain(c.null_tokens.iter())),
        recode: c.recode.iter().map(|(k, v)| (k.trim().to_string(), v.clone())).collect(),
        accepted: c.accepted.clone(),
        nullable: c.nullable,
        pseudonymiser: pseudonymiser.cloned(),
        vocabulary: p.vocabulary_of(c),
    }
}

impl Normaliser {
    /// Maps the header onto the contract and derives per-file columns. Fails (rejecting the
    /// whole file) when a required column is missing or ambiguous, or a derived value can't be
    /// found.
    pub fn new(
        p: &Pipeline,
        file: &str,
        header: &SourceHeader,
        pseudonymiser: Option<Arc<Pseudonymiser>>,
    ) -> Result<Self> {
        let keys: Vec<String> = header.names.iter().map(|n| header_key(n)).collect();
        let mut columns = Vec::with_capacity(p.columns.len());
        let (mut missing, mut missing_names) = (Vec::new(), Vec::new());
        let today = crate::config::pipeline::DateBound::today();
        for spec in &p.columns {
            let source_index = if let Some(pos) = spec.position {
                (pos < keys.len()).then_some(pos)
            } else {
                let wanted: Vec<String> =
                    std::iter::once(&spec.name).chain(spec.aliases.iter()).map(|n| header_key(n)).collect();
                let hits: Vec<usize> = (0..keys.len()).filter(|i| wanted.contains(&keys[*i])).collect();
                if hits.len() > 1 {
                    let names: Vec<String> = hits.iter().map(|i| header.names[*i].clone()).collect();
                    return Err(Error::source_file(
                        file,
                        format!("column '{}' matches several headers: {}", spec.name, redact::header_names(&names)),
                    ));
                }
                hits.first().copied()
            };
            if source_index.is_none() && spec.required {
                missing_names.push(format!("'{}'", spec.name));
                missing.push(match spec.position {
                    Some(pos) => format!("'{}' (position {pos})", spec.name),
                    None => format!(
                        "'{}' (looked for {:?})",
                        spec.name,
                        std::iter::once(&spec.name).chain(&spec.aliases).collect::<Vec<_>>()
                    ),
                });
            }
            let parser = parser_for(p, spec, pseudonymiser.as_ref());
            let rule = RangeRule::new(spec, today);
            columns.push(Mapped { spec: spec.clone(), source_index, parser, rule });
        }
        if !missing.is_empty() {
            return Err(Error::source_file(
                file,
                format!(
                    "missing required column(s) {}; headers found: {}",
                    // Where the aliases looked for are, unless the whole header is wrong.
                    if missing.len() <= 3 { missing.join(", ") } else { missing_names.join(", ") },
                    redact::header_names(&header.names)
                ),
            ));
        }
        let mut derived = Vec::with_capacity(p.derived.len());
        for d in &p.derived {
            derived.push((d.name.clone(), derive_value(p, d, file, header)?));
        }
        let drop_rules = p
            .drop_rows
            .iter()
            .filter_map(|r| {
                let mapped = columns.iter().find(|c| c.spec.name == r.column)?;
                Some((mapped.source_index?, r.values.iter().map(|v| v.trim().to_string()).collect()))
            })
            .collect();
        let schema = output_schema(p);
        let relaxed = Arc::new(Schema::new(
            schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect::<Vec<_>>(),
        ));
        let constants = Mutex::new(Vec::new());
        Ok(Self { file: file.to_string(), columns, derived, drop_rules, schema, relaxed, constants })
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Normalises one raw batch.
    pub fn normalise(&self, raw: &RawBatch) -> Result<Normalised> {
        let n = raw.rows;
        let text = |i: usize| -> Option<&StringArray> { raw.columns.get(i).map(|a| a.as_string::<i32>()) };
        // Keep rows that are neither blank nor declared for dropping.
        let mut blank = vec![true; n];
        let mut blanks = n;
        for col in &raw.columns {
            if blanks == 0 {
                break;
            }
            let col = col.as_string::<i32>();
            for (row, b) in blank.iter_mut().enumerate() {
                if *b && !col.is_null(row) && !col.value(row).trim().is_empty() {
                    *b = false;
                    blanks -= 1;
                }
            }
        }
        let mut dropped = vec![false; n];
        for (index, values) in &self.drop_rules {
            if let Some(col) = text(*index) {
                for (row, d) in dropped.iter_mut().enumerate() {
                    if !*d && !col.is_null(row) {
                        let v = col.value(row).trim();
                        *d = values.iter().any(|x| x.eq_ignore_ascii_case(v));
                    }
                }
            }
        }
        let rows_in = blank.iter().filter(|b| !**b).count() as u64;
        let rows_dropped = (0..n).filter(|i| !blank[*i] && dropped[*i]).count() as u64;
        let keep: Vec<usize> = (0..n).filter(|i| !blank[*i] && !dropped[*i]).collect();
        let keep_mask = BooleanArray::from((0..n).map(|i| !blank[i] && !dropped[i]).collect::<Vec<_>>());
        let all_kept = keep.len() == n;
        let m = keep.len();

        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        let mut bad = vec![false; m];
        let mut rejected = Vec::new();
        // Entries of values nulled (`null_value`): index in `rejected`, row in the batch.
        let mut nulled: Vec<(usize, usize)> = Vec::new();
        for c in &self.columns {
            let Some(source) = c.source_index.and_then(|i| raw.columns.get(i)) else {
                arrays.push(new_null_array(&arrow_type(c.spec.kind), m));
                if !c.spec.nullable {
                    for (row, b) in bad.iter_mut().enumerate() {
                        *b = true;
                        rejected.push(self.reject(raw, &keep, row, c, "required column is absent".into(), None));
                    }
                }
                continue;
            };
            let filtered: ArrayRef = if all_kept {
                source.clone()
            } else {
                filter(source.as_ref(), &keep_mask).map_err(Error::arrow(format!("filtering {}", self.file)))?
            };
            let input = filtered.as_string::<i32>();
            let parsed = c.parser.parse(input);
            let null_value = c.spec.on_invalid == OnInvalid::NullValue;
            let mut mark = |row: usize, entry: RejectedValue, rejected: &mut Vec<RejectedValue>| {
                // A missing value in a non-nullable column always rejects the row.
                if null_value && c.spec.nullable {
                    nulled.push((rejected.len(), row));
                } else {
                    bad[row] = true;
                }
                rejected.push(entry);
            };
            for r in parsed.rejections {
                // Never an NHS number, nor anything that could be one (a digit run in the wrong
                // column), nor more than a short excerpt.
                let value = (c.spec.kind != ColumnType::NhsNumber && !input.is_null(r.row))
                    .then(|| input.value(r.row))
                    .filter(|v| !redact::could_be_identifier(v))
                    .map(|v| v.chars().take(redact::MAX_NAME_CHARS * 4).collect());
                let entry = self.reject(raw, &keep, r.row, c, r.reason, value);
                mark(r.row, entry, &mut rejected);
            }
            let mut out_of_range = Vec::new();
            for (row, reason) in c.rule.check(&parsed.array) {
                let value = (!input.is_null(row)).then(|| input.value(row).to_string());
                let entry = self.reject(raw, &keep, row, c, reason, value);
                mark(row, entry, &mut rejected);
                out_of_range.push(row);
            }
            let array = if null_value && !out_of_range.is_empty() {
                // Implausible values of a `null_value` column are nulled (parse failures are
                // nulls already).
                let mut mask = vec![false; m];
                out_of_range.iter().for_each(|r| mask[*r] = true);
                arrow::compute::nullif(parsed.array.as_ref(), &BooleanArray::from(mask))
                    .map_err(Error::arrow("nulling implausible values"))?
            } else {
                parsed.array
            };
            arrays.push(array);
        }
        // A nulled value in a row rejected by another column is part of a quarantined row.
        let mut values_nulled = 0u64;
        for (index, row) in nulled {
            if bad[row] {
                rejected[index].level = QuarantineLevel::Row;
            } else {
                rejected[index].level = QuarantineLevel::Value;
                values_nulled += 1;
            }
        }
        arrays.extend(self.constant_columns(m)?);
        arrays.push(Arc::new(Int64Array::from_iter_values(keep.iter().map(|i| raw.first_row as i64 + *i as i64))));
        let rows_quarantined = bad.iter().filter(|b| **b).count() as u64;
        let arrays = if rows_quarantined > 0 {
            let relaxed = RecordBatch::try_new(self.relaxed.clone(), arrays)
                .map_err(Error::arrow(format!("assembling rows of {}", self.file)))?;
            let good = BooleanArray::from(bad.iter().map(|b| !b).collect::<Vec<_>>());
            let kept = arrow::compute::filter_record_batch(&relaxed, &good)
                .map_err(Error::arrow("removing quarantined rows"))?;
            kept.columns().to_vec()
        } else {
            arrays
        };
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(Error::arrow(format!("assembling rows of {}", self.file)))?;
        Ok(Normalised { batch, rejected, rows_in, rows_dropped, rows_quarantined, values_nulled })
    }

    /// The derived columns and `_source_file` for `m` rows: slices of the columns built for the
    /// longest batch so far, so their values are written once per file, not once per batch.
    fn constant_columns(&self, m: usize) -> Result<Vec<ArrayRef>> {
        let mut cached = self.constants.lock().map_err(|_| Error::source_file(&self.file, "a normaliser panicked"))?;
        if cached.first().is_none_or(|c| c.len() < m) {
            let mut columns = Vec::with_capacity(self.derived.len() + 1);
            for (_, value) in &self.derived {
                columns.push(broadcast(value, m)?);
            }
            columns
                .push(Arc::new(StringArray::from_iter_values(std::iter::repeat_n(self.file.as_str(), m))) as ArrayRef);
            *cached = columns;
        }
        Ok(cached.iter().map(|c| c.slice(0, m)).collect())
    }

    fn reject(
        &self,
        raw: &RawBatch,
        keep: &[usize],
        row: usize,
        c: &Mapped,
        reason: String,
        value: Option<String>,
    ) -> RejectedValue {
        RejectedValue {
            source_row: raw.first_row + keep[row] as u64,
            column: c.spec.name.clone(),
            reason,
            value,
            level: QuarantineLevel::Row,
        }
    }
}

/// Repeats a one-element array `n` times.
fn broadcast(value: &ArrayRef, n: usize) -> Result<ArrayRef> {
    let indices = arrow::array::UInt32Array::from(vec![0u32; n]);
    arrow::compute::take(value.as_ref(), &indices, None).map_err(Error::arrow("repeating a derived value"))
}

/// Computes a derived column's single value for a file.
fn derive_value(p: &Pipeline, d: &DerivedSpec, file: &str, header: &SourceHeader) -> Result<ArrayRef> {
    let fail = |reason: String| Error::source_file(file, format!("derived column '{}': {reason}", d.name));
    let text: String = match d.from {
        DerivedFrom::Constant => d.value.clone().unwrap_or_default(),
        DerivedFrom::FileName => file.rsplit('/').next().unwrap_or(file).to_string(),
        DerivedFrom::TitleCell => {
            if let Some(cell) = &d.cell {
                let pos =
                    crate::config::pipeline::parse_cell_ref(cell).ok_or_else(|| fail(format!("bad cell {cell}")))?;
                header.title_cells.get(&pos).cloned().ok_or_else(|| fail(format!("title cell {cell} is empty")))?
            } else {
                let line = d.line.unwrap_or(0);
                header.title_lines.get(line).cloned().ok_or_else(|| fail(format!("no title line {line}")))?
            }
        }
    };
    let value = match &d.pattern {
        None => text.trim().to_string(),
        Some(pattern) => {
            let re = regex::Regex::new(pattern).map_err(|e| fail(e.to_string()))?;
            match (re.captures(&text), &d.default) {
                (Some(caps), _) => caps
                    .name("value")
                    .or_else(|| caps.get(1))
                    .map(|m| m.as_str().trim().to_string())
                    .unwrap_or_default(),
                (None, Some(default)) => default.clone(),
                (None, None) => return Err(fail(format!("{} does not match {pattern}", redact::excerpt(&text)))),
            }
        }
    };
    let spec = ColumnSpec {
        name: d.name.clone(),
        aliases: vec![],
        position: None,
        kind: d.kind,
        nullable: false,
        required: true,
        null_tokens: vec![],
        formats: d.formats.clone(),
        bare_percent: Default::default(),
        recode: Default::default(),
        accepted: vec![],
        vocabulary: None,
        on_invalid: OnInvalid::RejectRow,
        distinct: false,
        min: None,
        max: None,
        min_date: None,
        max_date: None,
        description: String::new(),
    };
    parser_for(p, &spec, None).parse_one(&value).map_err(fail)
}

impl Normaliser {
    /// Source file URL this normaliser reads.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Object name for a file's scope: the scope columns' values joined with `_`.
    pub fn scope_slot(&self, scope: &[String]) -> Result<String> {
        let mut parts = Vec::with_capacity(scope.len());
        for name in scope {
            let (_, value) = self
                .derived
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| Error::source_file(&self.file, format!("scope column '{name}' is not derived")))?;
            let text = arrow::compute::cast(value, &DataType::Utf8).map_err(Error::arrow("formatting scope"))?;
            let text = text.as_string::<i32>();
            let v = if text.is_null(0) { "none".to_string() } else { text.value(0).to_string() };
            parts.push(
                v.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect::<String>(),
            );
        }
        Ok(parts.join("_"))
    }
}
