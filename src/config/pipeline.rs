//! Declarative pipeline files (`pipelines/<name>.toml`).
//!
//! A pipeline says where its extracts land (a glob under the landing root), how to read them
//! (format, encoding, header row by offset or keyword, sheet), the column contract (output name,
//! source aliases across revisions, type, nullability, null tokens, value formats, recodes),
//! rows to drop (declared totals rows only), columns derived from the file name or a title cell,
//! how loads replace earlier data, and when it runs.
//!
//! Everything a pipeline file can say is listed here; unknown keys are errors.

use super::read_toml;
pub use super::rules::{DateBound, RevisionGuardSpec};
pub use super::vocabulary::{Vocabularies, Vocabulary};
use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Null tokens applied to every column unless the pipeline overrides them: empty strings and the
/// suppression/missing markers used in NHS publications.
pub const DEFAULT_NULL_TOKENS: &[&str] = &["", "*", "-", "[E]", "[DS]", "[c]", "[x]", "..", "NULL", "N/A", "NA"];

/// One pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// Path of the file this was read from (set by the loader).
    #[serde(skip)]
    pub file: PathBuf,
    /// Pipeline name; defaults to the file stem. Also the staging table name unless `table` is set.
    #[serde(default)]
    pub name: String,
    /// What the dataset is, for the catalogue.
    #[serde(default)]
    pub description: String,
    /// Staging table name (`warehouse/staging/<table>/`); defaults to `name`.
    #[serde(default)]
    pub table: String,
    /// Where and how to read the extracts.
    pub source: SourceSpec,
    /// How loaded data replaces earlier loads.
    pub load: LoadSpec,
    /// When the pipeline runs.
    #[serde(default)]
    pub schedule: ScheduleSpec,
    /// Null tokens for every column (default [`DEFAULT_NULL_TOKENS`]); compared after trimming,
    /// case-insensitively.
    #[serde(default = "default_null_tokens")]
    pub null_tokens: Vec<String>,
    /// The column contract, in output order.
    pub columns: Vec<ColumnSpec>,
    /// Columns whose value comes from the file name, a title cell or a constant.
    #[serde(default)]
    pub derived: Vec<DerivedSpec>,
    /// Rows to drop before parsing (e.g. totals rows), only where declared.
    #[serde(default)]
    pub drop_rows: Vec<DropRule>,
    /// Mapping table of national vocabularies (CSV `vocabulary,source_value,code,label`), as a
    /// path relative to this pipeline file, e.g. `"../config/reference/code_mappings.csv"`.
    /// Required when a column names a `vocabulary`; none by default. See
    /// [`super::vocabulary`].
    #[serde(default)]
    pub vocabularies: Option<PathBuf>,
    /// The mapping table, read when the pipeline is loaded (set by the loader).
    #[serde(skip)]
    pub vocabulary_table: Option<Arc<Vocabularies>>,
    /// Workbooks of many sheets (xlsx only): which sheets are read and how each maps onto the
    /// contract ([`SheetSpec`]). Empty (the default): the one sheet of `source.sheet`.
    #[serde(default)]
    pub sheets: Vec<SheetSpec>,
}

fn default_null_tokens() -> Vec<String> {
    DEFAULT_NULL_TOKENS.iter().map(|s| s.to_string()).collect()
}

/// Source location and file shape.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Glob relative to the landing root, e.g. `cwt/*Provider*.xlsx` (`**` crosses folders).
    pub glob: String,
    /// File format.
    pub format: Format,
    /// Text encoding for csv/tsv (default `auto`: BOM sniffing, else UTF-8).
    #[serde(default)]
    pub encoding: Encoding,
    /// Field delimiter for csv (default `,`; tsv is always tab).
    #[serde(default)]
    pub delimiter: Option<char>,
    /// Worksheet name for xlsx (default: the first sheet).
    #[serde(default)]
    pub sheet: Option<String>,
    /// Where the header row is.
    #[serde(default)]
    pub header: HeaderSpec,
}

/// File formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Tsv,
    Xlsx,
    Parquet,
}

/// Text encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// Byte-order mark decides (UTF-8 BOM, UTF-16LE/BE BOM), otherwise UTF-8.
    #[default]
    Auto,
    /// UTF-8, with or without BOM.
    #[serde(alias = "utf-8", alias = "utf-8-bom")]
    Utf8,
    /// UTF-16 little-endian, with or without BOM.
    #[serde(alias = "utf-16le", alias = "utf-16")]
    Utf16le,
    /// Windows-1252 (Excel "CSV" on Windows).
    #[serde(alias = "windows-1252", alias = "cp1252")]
    Windows1252,
}

/// Header row location: exactly one of `offset`, `keyword` or `none`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderSpec {
    /// 0-based index of the header line/row (default 0 when nothing is set).
    #[serde(default)]
    pub offset: Option<usize>,
    /// The header is the first row (within `scan_rows`) having a cell equal to this text
    /// (trimmed, case-insensitive).
    #[serde(default)]
    pub keyword: Option<String>,
    /// The file has no header row; columns are matched by `position`.
    #[serde(default)]
    pub none: bool,
    /// Rows searched for `keyword` (default 50).
    #[serde(default = "HeaderSpec::default_scan_rows")]
    pub scan_rows: usize,
}

impl HeaderSpec {
    fn default_scan_rows() -> usize {
        50
    }
}

/// Value types of the column contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// Text, trimmed.
    String,
    /// Code: trimmed, upper-cased text (org codes, LSOA codes).
    Code,
    /// Whole number (`1,234` allowed).
    Integer,
    /// Decimal number (`1,234.5` allowed).
    Number,
    /// Non-negative count in halves (`0.5` for shared patients; `1,234` allowed).
    Count,
    /// Percentage as a proportion 0–1 (`72.3%` → 0.723; bare numbers per `bare_percent`).
    Percent,
    /// Calendar date, parsed with `formats`.
    Date,
    /// A month: stored as the date of its first day (`April 2023`, `APR-23`, `2023-04`, or any date).
    Month,
    /// Financial year `YYYY/YY`, normalised to `2023/24`.
    FinancialYear,
    /// NHS number: validated (mod 11) and replaced by its keyed HMAC pseudonym; the raw value is
    /// never written anywhere.
    NhsNumber,
    /// Yes/no (`Y`/`N`, `yes`/`no`, `true`/`false`, `1`/`0`).
    Boolean,
}

/// Date and month forms accepted in sources. ISO `yyyy-mm-dd` (optionally with a time) is always
/// accepted for `date` and `month` columns, as is a spreadsheet's native date cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DateFormat {
    /// `31/01/2024` (also `31-01-2024`, `31.01.2024`).
    DdMmYyyy,
    /// `2024-01-31`.
    YyyyMmDd,
    /// `20240131`.
    Yyyymmdd,
    /// `31-Jan-2024` / `31 Jan 2024`.
    DdMonYyyy,
    /// Excel serial day number (`45322`), 1900 date system.
    ExcelSerial,
    /// `January 2024` / `Jan 2024`.
    MonthYyyy,
    /// `JAN-24`.
    MonYy,
    /// `2024-01`.
    YyyyMm,
    /// A month of a financial year, `JUL 2021/22` (July 2021) or `JAN 2021/22` (January 2022).
    MonFinancialYear,
}

/// How bare numbers in a percent column are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BarePercent {
    /// `72.3` means 72.3 % (→ 0.723).
    #[default]
    Percent,
    /// `0.723` is already a proportion.
    Fraction,
}

/// One column of the contract.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// Output column name (snake_case).
    pub name: String,
    /// Source header names across revisions; matched trimmed and case-insensitively. The output
    /// name itself always matches too.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// 0-based column position, for sources without a header row.
    #[serde(default)]
    pub position: Option<usize>,
    /// Value type.
    #[serde(rename = "type")]
    pub kind: ColumnType,
    /// Whether nulls are allowed (default true). A null in a non-nullable column quarantines the row.
    #[serde(default = "yes")]
    pub nullable: bool,
    /// Whether the column must be present in the source (default true). An optional column that
    /// is absent is all null.
    #[serde(default = "yes")]
    pub required: bool,
    /// Extra null tokens for this column, added to the pipeline's.
    #[serde(default)]
    pub null_tokens: Vec<String>,
    /// Accepted date/month forms (default: dd_mm_yyyy, yyyy_mm_dd, excel_serial for dates;
    /// month_yyyy, mon_yy, yyyy_mm for months).
    #[serde(default)]
    pub formats: Vec<DateFormat>,
    /// Bare numbers in a percent column (default `percent`).
    #[serde(default)]
    pub bare_percent: BarePercent,
    /// Value recoding applied before parsing (keys trimmed, case-insensitive), e.g. `M = "1"`.
    #[serde(default)]
    pub recode: BTreeMap<String, String>,
    /// If set, only these values (after recode and normalisation) are accepted; any other value
    /// is invalid (see `on_invalid`).
    #[serde(default)]
    pub accepted: Vec<String>,
    /// National vocabulary (a name in the pipeline's `vocabularies` table) the values are mapped
    /// through after `recode`: each value is replaced by its national code; a value the table
    /// does not map is invalid (see `on_invalid`), reason `vocabulary <name>: no mapping for …`,
    /// and never passed through. None (the default): values are kept as sent.
    #[serde(default)]
    pub vocabulary: Option<String>,
    /// What an invalid value does (one that fails to parse, is not accepted, is not in the
    /// vocabulary, or is outside the plausibility bounds): `reject_row` (the default) quarantines
    /// the whole row; `null_value` quarantines the value alone (an entry with level `value`) and
    /// writes the row with a null there. `null_value` is for optional attributes (stage,
    /// ethnicity, modality…): it needs a nullable column that is not an NHS number nor part of
    /// `load.unique_key`, `load.period` or `load.unique_order`. A missing value in a non-nullable
    /// column always rejects the row.
    #[serde(default)]
    pub on_invalid: OnInvalid,
    /// Values are (nearly) all distinct, like an identifier (default false): stored without a
    /// Parquet dictionary, which for such columns only grows until it is abandoned.
    #[serde(default)]
    pub distinct: bool,
    /// Plausibility: the smallest stored value a numeric column (integer, number, count, percent
    /// as a proportion) may hold; a smaller one quarantines the row, reason `min = …`.
    #[serde(default)]
    pub min: Option<f64>,
    /// Plausibility: the largest stored value of a numeric column (`max = 1` for a percent column
    /// caps it at 100 %); a larger one quarantines the row, reason `max = …`.
    #[serde(default)]
    pub max: Option<f64>,
    /// Plausibility: the earliest date or month (`YYYY-MM-DD`, `today`, `today-10y`); an earlier
    /// one quarantines the row, reason `min_date = …`.
    #[serde(default)]
    pub min_date: Option<DateBound>,
    /// Plausibility: the latest date or month (e.g. `today+1y`); a later one quarantines the row,
    /// reason `max_date = …`.
    #[serde(default)]
    pub max_date: Option<DateBound>,
    /// Meaning of the column, for the catalogue.
    #[serde(default)]
    pub description: String,
}

fn yes() -> bool {
    true
}

/// What an invalid value of a column does ([`ColumnSpec::on_invalid`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnInvalid {
    /// The row is quarantined (counted in `rows_quarantined`): keys, the dates that define a
    /// pathway, NHS numbers. The default.
    #[default]
    RejectRow,
    /// The value is quarantined and the row written with a null in its place (the row counts as
    /// written; the value in `values_nulled`).
    NullValue,
}

/// Where a derived column's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DerivedFrom {
    /// The source object's file name (without folders).
    FileName,
    /// A cell above the header: `cell = "A1"` in xlsx, or line `line` (0-based) of a text file.
    TitleCell,
    /// A constant `value`.
    Constant,
}

/// A column derived once per file and repeated on every row.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DerivedSpec {
    /// Output column name.
    pub name: String,
    /// Where the value comes from.
    pub from: DerivedFrom,
    /// Regex applied to the file name / cell text; the group named `value` (or the first group)
    /// is the value. Without a pattern the whole text is used.
    #[serde(default)]
    pub pattern: Option<String>,
    /// xlsx title cell, e.g. `A1`.
    #[serde(default)]
    pub cell: Option<String>,
    /// Text title line (0-based) for csv/tsv.
    #[serde(default)]
    pub line: Option<usize>,
    /// The value for `from = "constant"`.
    #[serde(default)]
    pub value: Option<String>,
    /// Value used when `pattern` does not match (e.g. a file name without a revision marker);
    /// without it such a file is rejected.
    #[serde(default)]
    pub default: Option<String>,
    /// Value type (parsed like a contract column).
    #[serde(rename = "type")]
    pub kind: ColumnType,
    /// Accepted forms for date/month types.
    #[serde(default)]
    pub formats: Vec<DateFormat>,
    /// Meaning, for the catalogue.
    #[serde(default)]
    pub description: String,
}

/// Default number of header rows of a sheet block.
pub const DEFAULT_HEADER_ROWS: usize = 1;

/// One sheet (or family of sheets) of a multi-sheet workbook (`[[sheets]]`).
///
/// Semantics (see `src/ingest/workbook.rs`): every row of the sheet holding one of
/// `header_keywords` starts a block; the block's rows run to the next block's header. A block is
/// read when its part label (the nearest single-text row above its header, e.g. `PART B: FIRST
/// TREATMENTS`) starts with one of `parts`, or always when `parts` is empty. Cells under no
/// header name are ignored, and a row with nothing under a named header is not a record. Each
/// contract column takes, in this order: its `constants` value, its `title` cell, the header named
/// for it in `columns`, then its name and `aliases` in their order (the first alias present wins,
/// and the first column of that name).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SheetSpec {
    /// Sheet name (trimmed, case-insensitive). Exactly one of `sheet` and `sheet_pattern`.
    #[serde(default)]
    pub sheet: Option<String>,
    /// Regex on the sheet name (case-insensitive).
    #[serde(default)]
    pub sheet_pattern: Option<String>,
    /// Header cell texts that mark a header row (trimmed, case-insensitive); default the
    /// pipeline's `source.header.keyword`.
    #[serde(default)]
    pub header_keywords: Vec<String>,
    /// Rows the header spans (default [`DEFAULT_HEADER_ROWS`]; 2 for a group row above the
    /// names): a column's name is its cell in the keyword row, or the group cell above it when
    /// that is empty; the group row is never read as data of the block before.
    #[serde(default = "SheetSpec::default_header_rows")]
    pub header_rows: usize,
    /// Prefixes of the part labels to read (trimmed, case-insensitive); empty: every block.
    #[serde(default)]
    pub parts: Vec<String>,
    /// Contract column → value repeated on every row of the sheet (e.g. the standard).
    #[serde(default)]
    pub constants: BTreeMap<String, String>,
    /// Contract column → title cell of the sheet (e.g. the period in `A2`), with an optional
    /// regex whose group `value` (or first group) is the value.
    #[serde(default)]
    pub title: BTreeMap<String, TitleCellSpec>,
    /// Contract column → header names in this sheet, tried before the column's aliases.
    #[serde(default)]
    pub columns: BTreeMap<String, Vec<String>>,
}

impl SheetSpec {
    fn default_header_rows() -> usize {
        DEFAULT_HEADER_ROWS
    }

    /// Whether this entry reads the sheet `name`.
    pub fn matches(&self, name: &str) -> bool {
        let name = name.trim();
        match (&self.sheet, &self.sheet_pattern) {
            (Some(s), _) => s.trim().eq_ignore_ascii_case(name),
            (None, Some(p)) => {
                regex::RegexBuilder::new(p).case_insensitive(true).build().is_ok_and(|re| re.is_match(name))
            }
            (None, None) => false,
        }
    }
}

/// A value read from a title cell of a sheet.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TitleCellSpec {
    /// Cell, e.g. `A2`.
    pub cell: String,
    /// Regex; the group named `value` (or the first group) is the value. Without it the whole text.
    #[serde(default)]
    pub pattern: Option<String>,
}

/// Drop rows whose `column` holds one of `values` (trimmed, case-insensitive) — e.g. totals rows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropRule {
    /// Contract column (output name) to test, on its raw text.
    pub column: String,
    /// Values that mark the row for dropping.
    pub values: Vec<String>,
    /// Why, recorded in the run's counts.
    #[serde(default)]
    pub reason: String,
}

/// Load behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// How new data replaces old.
    pub mode: LoadMode,
    /// The `date`/`month` column that partitions staging by month (`staging/<table>/YYYY-MM/`).
    /// Required for `replace_by_period`.
    #[serde(default)]
    pub period: Option<String>,
    /// Columns constant within one file that narrow what a file replaces (e.g. the trust code
    /// from the file name, so one trust's March file does not replace another trust's March).
    #[serde(default)]
    pub scope: Vec<String>,
    /// Checks a `replace_by_period` revision before it replaces earlier data (on by default; see
    /// [`RevisionGuardSpec`]).
    #[serde(default)]
    pub revision_guard: RevisionGuardSpec,
    /// Columns that identify a row (e.g. `["pathway_id"]`): rows of one file, or of the files of
    /// one month, sharing them are duplicates, and all but the latest by `unique_order` are
    /// quarantined at ingest. Empty (the default): not checked. For `merge`, also the merge key:
    /// the same key in the snapshots of different periods is one entity, reported again.
    #[serde(default)]
    pub unique_key: Vec<String>,
    /// Columns (contract, derived or `_source_row`) ordering duplicates, the greatest being the
    /// latest and kept; ties, and an empty list (the default), go to the file loaded last, then to
    /// the later source row.
    #[serde(default)]
    pub unique_order: Vec<String>,
}

/// Load modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadMode {
    /// A file replaces the periods (within its scope) that it contains: a revised extract
    /// supersedes the provisional one for the same months.
    ReplaceByPeriod,
    /// Each file adds its rows; a changed file replaces only its own earlier rows.
    Append,
    /// The newest matching file is the whole table (reference data).
    FullReplace,
    /// Each file is a snapshot as at its period (a trust's monthly PTL), stored like
    /// `replace_by_period`: a revised snapshot replaces its period (within its scope), and the
    /// staging table keeps every period's snapshot. A key (`unique_key`) repeated in one snapshot
    /// is a duplicate and quarantined; the same key in several snapshots is one entity reported
    /// again, whose latest snapshot (by `unique_order`, which starts with `period`) holds its
    /// current values — dbt's `unique_key` incremental, SQLMesh's `INCREMENTAL_BY_UNIQUE_KEY`.
    /// Models take the latest row per key for current values and each period's rows for what
    /// was true as at that period (`sql/staging/stg_trust_pathways.sql`, `mart_backlog`).
    Merge,
}

impl LoadMode {
    /// Whether a file replaces the periods it contains (`replace_by_period` and `merge`).
    pub fn by_period(self) -> bool {
        matches!(self, LoadMode::ReplaceByPeriod | LoadMode::Merge)
    }
}

/// Scheduling.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Cron expression (`sec min hour day month weekday`, or the usual 5 fields), UTC.
    #[serde(default)]
    pub cron: Option<String>,
    /// Run when a new or changed file appears in landing (default true).
    #[serde(default = "yes")]
    pub on_new_file: bool,
}

impl Default for ScheduleSpec {
    /// No cron; runs when a new or changed file appears.
    fn default() -> Self {
        Self { cron: None, on_new_file: true }
    }
}

impl Pipeline {
    /// Staging columns stored without a dictionary: declared `distinct`, NHS-number pseudonyms
    /// and the source row number.
    pub fn undictionaried_columns(&self) -> Vec<String> {
        self.columns
            .iter()
            .filter(|c| c.distinct || c.kind == ColumnType::NhsNumber)
            .map(|c| c.name.clone())
            .chain(std::iter::once("_source_row".to_string()))
            .collect()
    }

    /// Loads and validates one pipeline file.
    pub fn load(path: &Path) -> Result<Self> {
        let mut p: Pipeline = read_toml(path)?;
        p.file = path.to_path_buf();
        if let Some(table) = &p.vocabularies {
            let at = path.parent().unwrap_or(Path::new(".")).join(table);
            p.vocabulary_table = Some(Arc::new(Vocabularies::load(&at)?));
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        if p.name.is_empty() {
            p.name = stem.to_string();
        }
        if p.table.is_empty() {
            p.table = p.name.clone();
        }
        p.validate()?;
        Ok(p)
    }

    fn err(&self, reason: impl Into<String>) -> Error {
        Error::config(&self.file, reason)
    }

    /// The vocabulary a column maps its values through, if it names one (and the table holds it:
    /// [`Pipeline::validate`] makes sure it does).
    pub fn vocabulary_of(&self, c: &ColumnSpec) -> Option<Arc<Vocabulary>> {
        let name = c.vocabulary.as_ref()?;
        self.vocabulary_table.as_ref()?.by_name.get(name).cloned()
    }

    /// The contract column or derived column named `name`, with its type.
    pub fn column_type(&self, name: &str) -> Option<ColumnType> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.kind)
            .or_else(|| self.derived.iter().find(|d| d.name == name).map(|d| d.kind))
    }

    /// Checks everything that can be checked without reading data.
    pub fn validate(&self) -> Result<()> {
        if !is_identifier(&self.name) || !is_identifier(&self.table) {
            return Err(self.err("name and table must be snake_case identifiers"));
        }
        globset::Glob::new(&self.source.glob).map_err(|e| self.err(format!("source.glob: {e}")))?;
        self.validate_source()?;
        if self.columns.is_empty() {
            return Err(self.err("at least one [[columns]] entry is required"));
        }
        let mut seen = HashSet::new();
        for name in self.columns.iter().map(|c| &c.name).chain(self.derived.iter().map(|d| &d.name)) {
            if !is_identifier(name) {
                return Err(self.err(format!("column '{name}' must be a snake_case identifier")));
            }
            if !seen.insert(name.as_str()) {
                return Err(self.err(format!("column '{name}' is declared twice")));
            }
        }
        for c in &self.columns {
            self.validate_column(c)?;
        }
        for d in &self.derived {
            self.validate_derived(d)?;
        }
        for rule in &self.drop_rows {
            if !self.columns.iter().any(|c| c.name == rule.column) {
                return Err(self.err(format!("drop_rows column '{}' is not a contract column", rule.column)));
            }
            if rule.values.is_empty() {
                return Err(self.err(format!("drop_rows on '{}' lists no values", rule.column)));
            }
        }
        self.validate_sheets()?;
        self.validate_load()?;
        if let Some(cron) = &self.schedule.cron {
            super::cron::parse_cron(cron).map_err(|e| self.err(format!("schedule.cron: {e}")))?;
        }
        Ok(())
    }

    fn validate_source(&self) -> Result<()> {
        let s = &self.source;
        let h = &s.header;
        let ways = h.offset.is_some() as u8 + h.keyword.is_some() as u8 + h.none as u8;
        if ways > 1 {
            return Err(self.err("header: set only one of offset, keyword, none"));
        }
        if s.sheet.is_some() && s.format != Format::Xlsx {
            return Err(self.err("source.sheet applies to xlsx only"));
        }
        if s.format == Format::Parquet && (ways > 0 || s.encoding != Encoding::Auto) {
            return Err(self.err("parquet sources take no header or encoding settings"));
        }
        if s.delimiter.is_some() && s.format != Format::Csv {
            return Err(self.err("source.delimiter applies to csv only"));
        }
        if h.none && self.columns.iter().any(|c| c.position.is_none()) {
            return Err(self.err("header.none: every column needs a position"));
        }
        Ok(())
    }

    fn validate_sheets(&self) -> Result<()> {
        if self.sheets.is_empty() {
            return Ok(());
        }
        if self.source.format != Format::Xlsx || self.source.sheet.is_some() {
            return Err(self.err("[[sheets]] apply to xlsx sources without source.sheet"));
        }
        for (i, s) in self.sheets.iter().enumerate() {
            let at = |reason: String| self.err(format!("sheets[{i}]: {reason}"));
            match (&s.sheet, &s.sheet_pattern) {
                (Some(_), None) => {}
                (None, Some(p)) => {
                    regex::Regex::new(p).map_err(|e| at(format!("sheet_pattern: {e}")))?;
                }
                _ => return Err(at("set exactly one of sheet and sheet_pattern".into())),
            }
            if s.header_keywords.is_empty() && self.source.header.keyword.is_none() {
                return Err(at("header_keywords (or source.header.keyword) is required".into()));
            }
            if !(1..=2).contains(&s.header_rows) {
                return Err(at("header_rows must be 1 or 2".into()));
            }
            let names = s.constants.keys().chain(s.title.keys()).chain(s.columns.keys());
            for name in names {
                if !self.columns.iter().any(|c| &c.name == name) {
                    return Err(at(format!("'{name}' is not a contract column")));
                }
            }
            for (name, t) in &s.title {
                if parse_cell_ref(&t.cell).is_none() {
                    return Err(at(format!("title '{name}': cell must be like \"A2\"")));
                }
                if let Some(p) = &t.pattern {
                    let re = regex::Regex::new(p).map_err(|e| at(format!("title '{name}': pattern: {e}")))?;
                    if re.captures_len() < 2 {
                        return Err(at(format!("title '{name}': pattern needs a capture group")));
                    }
                }
            }
        }
        Ok(())
    }

    fn validate_column(&self, c: &ColumnSpec) -> Result<()> {
        let dateish = matches!(c.kind, ColumnType::Date | ColumnType::Month);
        if !c.formats.is_empty() && !dateish {
            return Err(self.err(format!("column '{}': formats apply to date/month columns", c.name)));
        }
        if c.kind == ColumnType::NhsNumber && !c.accepted.is_empty() {
            return Err(self.err(format!("column '{}': nhs_number takes no accepted list", c.name)));
        }
        if !c.required && !c.nullable {
            return Err(self.err(format!("column '{}': an optional column must be nullable", c.name)));
        }
        let numeric =
            matches!(c.kind, ColumnType::Integer | ColumnType::Number | ColumnType::Count | ColumnType::Percent);
        if (c.min.is_some() || c.max.is_some()) && !numeric {
            return Err(
                self.err(format!("column '{}': min/max apply to integer, number, count and percent columns", c.name))
            );
        }
        if (c.min_date.is_some() || c.max_date.is_some()) && !dateish {
            return Err(self.err(format!("column '{}': min_date/max_date apply to date and month columns", c.name)));
        }
        if c.min.zip(c.max).is_some_and(|(min, max)| min > max) || [c.min, c.max].iter().flatten().any(|b| b.is_nan()) {
            return Err(self.err(format!("column '{}': min must not exceed max", c.name)));
        }
        if let Some(name) = &c.vocabulary {
            if !matches!(c.kind, ColumnType::String | ColumnType::Code) {
                return Err(self.err(format!("column '{}': a vocabulary applies to string and code columns", c.name)));
            }
            if !c.accepted.is_empty() {
                return Err(self.err(format!("column '{}': set accepted or vocabulary, not both", c.name)));
            }
            let Some(table) = &self.vocabulary_table else {
                return Err(self
                    .err(format!("column '{}': vocabulary '{name}' needs the pipeline's vocabularies table", c.name)));
            };
            if !table.by_name.contains_key(name) {
                return Err(self.err(format!(
                    "column '{}': vocabulary '{name}' is not in {}",
                    c.name,
                    table.file.display()
                )));
            }
        }
        if c.on_invalid == OnInvalid::NullValue {
            let l = &self.load;
            let structural = l.unique_key.contains(&c.name)
                || l.unique_order.contains(&c.name)
                || l.period.as_ref() == Some(&c.name);
            if !c.nullable || c.kind == ColumnType::NhsNumber || structural {
                return Err(self.err(format!(
                    "column '{}': on_invalid = \"null_value\" is for nullable optional attributes, not NHS numbers, keys or the period",
                    c.name
                )));
            }
        }
        Ok(())
    }

    fn validate_derived(&self, d: &DerivedSpec) -> Result<()> {
        let name = &d.name;
        match d.from {
            DerivedFrom::Constant if d.value.is_none() => {
                return Err(self.err(format!("derived '{name}': constant needs value")))
            }
            DerivedFrom::TitleCell => match self.source.format {
                Format::Xlsx if d.cell.as_deref().and_then(parse_cell_ref).is_none() => {
                    return Err(self.err(format!("derived '{name}': title_cell needs cell like \"A1\"")))
                }
                Format::Csv | Format::Tsv if d.line.is_none() => {
                    return Err(self.err(format!("derived '{name}': title_cell needs line for text files")))
                }
                Format::Parquet => return Err(self.err(format!("derived '{name}': parquet has no title cells"))),
                _ => {}
            },
            _ => {}
        }
        if let Some(p) = &d.pattern {
            let re = regex::Regex::new(p).map_err(|e| self.err(format!("derived '{name}': pattern: {e}")))?;
            if re.captures_len() < 2 {
                return Err(self.err(format!("derived '{name}': pattern needs a capture group")));
            }
        }
        if d.kind == ColumnType::NhsNumber {
            return Err(self.err(format!("derived '{name}': cannot be an nhs_number")));
        }
        Ok(())
    }

    fn validate_load(&self) -> Result<()> {
        let l = &self.load;
        match (&l.period, l.mode) {
            (None, LoadMode::ReplaceByPeriod) => return Err(self.err("load.mode replace_by_period needs load.period")),
            (None, LoadMode::Merge) => return Err(self.err("load.mode merge needs load.period")),
            (Some(p), _) => match self.column_type(p) {
                Some(ColumnType::Date | ColumnType::Month) => {}
                Some(_) => return Err(self.err(format!("load.period '{p}' must be a date or month column"))),
                None => return Err(self.err(format!("load.period '{p}' is not a column"))),
            },
            _ => {}
        }
        if l.mode == LoadMode::Merge {
            let period = l.period.as_deref().unwrap_or_default();
            if l.unique_key.is_empty() || l.unique_order.first().map(String::as_str) != Some(period) {
                return Err(self.err(format!(
                    "load.mode merge needs load.unique_key (the merge key) and load.unique_order starting with the period '{period}'"
                )));
            }
        }
        if l.mode.by_period() {
            if let Some(p) = &l.period {
                let nullable = self.columns.iter().find(|c| &c.name == p).map(|c| c.nullable);
                if nullable == Some(true) {
                    return Err(self.err(format!("load.period '{p}' must be nullable = false")));
                }
            }
        }
        for s in &l.scope {
            if !self.derived.iter().any(|d| &d.name == s) {
                return Err(self.err(format!("load.scope '{s}' must be a derived column (constant within a file)")));
            }
        }
        if !l.scope.is_empty() && !l.mode.by_period() {
            return Err(self.err("load.scope applies to replace_by_period and merge only"));
        }
        let guard = &l.revision_guard;
        if !(0.0..=1.0).contains(&guard.max_row_loss) {
            return Err(self.err("load.revision_guard.max_row_loss must be between 0 and 1"));
        }
        if let Some(org) = &guard.organisation_column {
            if self.column_type(org).is_none() {
                return Err(self.err(format!("load.revision_guard.organisation_column '{org}' is not a column")));
            }
        }
        for k in &l.unique_key {
            match self.column_type(k) {
                None => return Err(self.err(format!("load.unique_key '{k}' is not a column"))),
                Some(ColumnType::NhsNumber) => {
                    return Err(self.err(format!("load.unique_key '{k}': an nhs_number column cannot be a key")))
                }
                Some(_) => {}
            }
        }
        for o in &l.unique_order {
            if o != "_source_row" && self.column_type(o).is_none() {
                return Err(self.err(format!("load.unique_order '{o}' is not a column")));
            }
        }
        if l.unique_key.is_empty() && !l.unique_order.is_empty() {
            return Err(self.err("load.unique_order needs load.unique_key"));
        }
        Ok(())
    }
}

/// Parses an A1-style cell reference into 0-based (row, column).
pub fn parse_cell_ref(cell: &str) -> Option<(u32, u32)> {
    let cell = cell.trim().to_ascii_uppercase();
    let split = cell.find(|c: char| c.is_ascii_digit())?;
    let (letters, digits) = cell.split_at(split);
    if letters.is_empty() || !letters.chars().all(|c| c.is_ascii_uppercase()) {
        return None;
    }
    let col = letters.bytes().fold(0u32, |acc, b| acc * 26 + (b - b'A' + 1) as u32) - 1;
    let row: u32 = digits.parse().ok()?;
    (row >= 1).then(|| (row - 1, col))
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Loads every `*.toml` in `dir`, sorted by name; names must be unique.
pub fn load_pipelines(dir: &Path) -> Result<Vec<Pipeline>> {
    let entries = std::fs::read_dir(dir).map_err(Error::io(dir))?;
    let mut paths: Vec<PathBuf> =
        entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "toml")).collect();
    paths.sort();
    let mut out: Vec<Pipeline> = Vec::with_capacity(paths.len());
    for path in paths {
        let p = Pipeline::load(&path)?;
        if let Some(other) = out.iter().find(|o| o.name == p.name || o.table == p.table) {
            return Err(Error::config(&path, format!("name/table clashes with {}", other.file.display())));
        }
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_refs() {
        assert_eq!(parse_cell_ref("A1"), Some((0, 0)));
        assert_eq!(parse_cell_ref("b3"), Some((2, 1)));
        assert_eq!(parse_cell_ref("AA10"), Some((9, 26)));
        assert_eq!(parse_cell_ref("A0"), None);
        assert_eq!(parse_cell_ref("1A"), None);
    }

    #[test]
    fn a_pipeline_without_a_schedule_section_watches_for_new_files() {
        let text =
            "[source]\nglob='x/*.csv'\nformat='csv'\n[load]\nmode='append'\n[[columns]]\nname='a'\ntype='string'\n";
        let p: Pipeline = toml::from_str(text).unwrap();
        assert!(p.schedule.on_new_file && p.schedule.cron.is_none());
    }

    #[test]
    fn null_value_is_for_nullable_optional_attributes_and_a_vocabulary_needs_its_table() {
        let with = |column: &str| {
            let text = format!("name='t'\ntable='t'\n[source]\nglob='x/*.csv'\nformat='csv'\n[load]\nmode='append'\nunique_key=['id']\n[[columns]]\nname='id'\ntype='string'\n[[columns]]\n{column}\n");
            let p: Pipeline = toml::from_str(&text).unwrap();
            p.validate().map_err(|e| e.to_string())
        };
        with("name='stage'\ntype='code'\non_invalid='null_value'").unwrap();
        let required = with("name='stage'\ntype='code'\nnullable=false\non_invalid='null_value'").unwrap_err();
        assert!(required.contains("null_value"), "{required}");
        let nhs = with("name='nhs'\ntype='nhs_number'\non_invalid='null_value'").unwrap_err();
        assert!(nhs.contains("null_value"), "{nhs}");
        let orphan = with("name='stage'\ntype='code'\nvocabulary='stage'").unwrap_err();
        assert!(orphan.contains("vocabularies"), "{orphan}");
        assert!(toml::from_str::<Pipeline>("[source]\nglob='x'\nformat='csv'\n[load]\nmode='append'\n[[columns]]\nname='a'\ntype='string'\non_invalid='skip'\n").is_err());
    }

    #[test]
    fn merge_needs_a_key_and_the_period_first_in_its_order() {
        let base = "name='x'\ntable='x'\n[source]\nglob='x/*.csv'\nformat='csv'\n[[columns]]\nname='id'\ntype='string'\n[[columns]]\nname='m'\ntype='month'\nnullable=false\n[load]\nmode='merge'\nperiod='m'\n";
        let check = |extra: &str| toml::from_str::<Pipeline>(&format!("{base}{extra}")).unwrap().validate();
        assert!(check("unique_key=['id']\nunique_order=['m']\n").is_ok());
        for bad in ["", "unique_key=['id']\n", "unique_key=['id']\nunique_order=['_source_row']\n"] {
            let err = check(bad).unwrap_err().to_string();
            assert!(err.contains("load.mode merge needs load.unique_key"), "{bad}: {err}");
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let text = "[source]\nglob='x/*.csv'\nformat='csv'\nbogus=1\n[load]\nmode='append'\n[[columns]]\nname='a'\ntype='string'\n";
        let err = toml::from_str::<Pipeline>(text).unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
    }
}
