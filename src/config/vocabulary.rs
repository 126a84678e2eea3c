//! National vocabularies: code mappings a pipeline column applies at ingest.
//!
//! A pipeline names a mapping table (`vocabularies = "../config/reference/code_mappings.csv"`,
//! relative to the pipeline file) and a column names one vocabulary in it
//! (`vocabulary = "treatment_modality"`). The table is a CSV with the header
//! `vocabulary,source_value,code,label`: each row says that a value a trust sends
//! (`source_value`) means the national `code`, whose national `label` is `label`. The same file is
//! loaded into the warehouse by the `ref_code_mappings` pipeline, so SQL can join labels.
//!
//! Semantics of a lookup:
//! - values are compared trimmed, with runs of white space as one space and case-insensitively
//!   (Unicode lower case); `SURGERY`, `surgery` and ` Surgery ` are one value;
//! - a national code and its national label always map to the code (they need no row of their
//!   own), so values already in the national vocabulary pass;
//! - anything else is **unmapped**: the column's `on_invalid` rule applies (quarantine the value
//!   and keep the row with a null, or reject the row), with the reason
//!   `vocabulary <name>: no mapping for …`. An unmapped value is never passed through.
//!
//! Loading fails (a configuration error naming the file and line) when the header is not the one
//! above, a field is empty, or one normalised value would map to two different codes.

use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The header a mapping table must have.
pub const MAPPING_HEADER: [&str; 4] = ["vocabulary", "source_value", "code", "label"];

/// One vocabulary: normalised source value → national code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocabulary {
    /// Its name in the mapping table (e.g. `treatment_modality`).
    pub name: String,
    /// Exact trimmed text → code, tried first (no allocation for values spelled as mapped).
    exact: HashMap<String, String>,
    /// [`normalise`]d text → code.
    folded: HashMap<String, String>,
    /// National code → label.
    pub labels: BTreeMap<String, String>,
}

impl Vocabulary {
    /// The national code `value` (already trimmed) maps to, if any.
    #[inline]
    pub fn lookup(&self, value: &str) -> Option<&str> {
        self.exact.get(value).or_else(|| self.folded.get(&normalise(value))).map(String::as_str)
    }

    /// The national codes, in order.
    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.labels.keys().map(String::as_str)
    }
}

/// A mapping table: every vocabulary it holds, and the bytes it was read from (part of the
/// fingerprint of every pipeline that uses it, so a changed mapping re-reads their files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocabularies {
    pub file: PathBuf,
    pub bytes: Vec<u8>,
    pub by_name: BTreeMap<String, Arc<Vocabulary>>,
}

/// Comparison form of a value: trimmed, white-space runs as one space, lower case.
pub fn normalise(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

impl Vocabularies {
    /// Reads and checks a mapping table.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(Error::io(path))?;
        let parsed = Self::parse(&bytes).map_err(|reason| Error::config(path, reason))?;
        Ok(Self { file: path.to_path_buf(), bytes, by_name: parsed })
    }

    /// Parses the CSV text of a mapping table.
    pub fn parse(bytes: &[u8]) -> std::result::Result<BTreeMap<String, Arc<Vocabulary>>, String> {
        use arrow::array::{Array, AsArray};
        use arrow::datatypes::{DataType, Field, Schema};
        let schema = Arc::new(Schema::new(MAPPING_HEADER.map(|n| Field::new(n, DataType::Utf8, true)).to_vec()));
        let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let header: Vec<String> =
            text.lines().next().unwrap_or_default().split(',').map(|h| h.trim().to_lowercase()).collect();
        if header != MAPPING_HEADER {
            return Err(format!("the header must be {}", MAPPING_HEADER.join(",")));
        }
        let reader = arrow::csv::ReaderBuilder::new(schema)
            .with_header(true)
            .build(std::io::Cursor::new(text.as_bytes()))
            .map_err(|e| e.to_string())?;
        let mut rows: Vec<[String; 4]> = Vec::new();
        for batch in reader {
            let batch = batch.map_err(|e| e.to_string())?;
            let cols: Vec<_> = (0..4).map(|i| batch.column(i).as_string::<i32>().clone()).collect();
            for r in 0..batch.num_rows() {
                let cell =
                    |i: usize| if cols[i].is_null(r) { String::new() } else { cols[i].value(r).trim().to_string() };
                rows.push([cell(0), cell(1), cell(2), cell(3)]);
            }
        }
        let mut out: BTreeMap<String, Vocabulary> = BTreeMap::new();
        for (i, [name, source, code, label]) in rows.iter().enumerate() {
            let line = i + 2;
            if name.is_empty() || source.is_empty() || code.is_empty() || label.is_empty() {
                return Err(format!("line {line}: every field must be filled"));
            }
            let v = out.entry(name.clone()).or_insert_with(|| Vocabulary {
                name: name.clone(),
                exact: HashMap::new(),
                folded: HashMap::new(),
                labels: BTreeMap::new(),
            });
            match v.labels.get(code) {
                Some(l) if l != label => return Err(format!("line {line}: code '{code}' has two labels in {name}")),
                _ => {
                    v.labels.insert(code.clone(), label.clone());
                }
            }
            add(v, source, code, line)?;
        }
        // National codes and labels map to themselves.
        for v in out.values_mut() {
            for (code, label) in v.labels.clone() {
                add(v, &code, &code, 0)?;
                add(v, &label, &code, 0)?;
            }
        }
        Ok(out.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
    }
}

/// Adds `key → code` to `v`, refusing a key that already maps to another code.
fn add(v: &mut Vocabulary, key: &str, code: &str, line: usize) -> std::result::Result<(), String> {
    let folded = normalise(key);
    match v.folded.get(&folded) {
        Some(other) if other != code => {
            Err(format!("line {line}: '{key}' maps to both '{other}' and '{code}' in vocabulary {}", v.name))
        }
        _ => {
            v.folded.insert(folded, code.to_string());
            v.exact.insert(key.to_string(), code.to_string());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "vocabulary,source_value,code,label\n\
        treatment_modality,SURGERY,Surgery,Surgery\n\
        treatment_modality,Chemotherapy,Anti-cancer drug regimen,Anti-cancer drug regimen\n\
        stage,I,1,Stage 1\n\
        suspected_cancer,\"Head and Neck \u{2013} upper aerodigestive\",Head & Neck,Head & Neck\n";

    #[test]
    fn values_map_case_and_space_insensitively_codes_and_labels_to_themselves() {
        let v = Vocabularies::parse(TABLE.as_bytes()).unwrap();
        let m = &v["treatment_modality"];
        assert_eq!(m.lookup("surgery"), Some("Surgery"));
        assert_eq!(m.lookup("CHEMOTHERAPY"), Some("Anti-cancer drug regimen"));
        assert_eq!(m.lookup("anti-cancer  drug regimen"), Some("Anti-cancer drug regimen"));
        assert_eq!(m.lookup("Immunotherapy"), None, "unmapped values are not passed through");
        assert_eq!(v["stage"].lookup("1"), Some("1"));
        assert_eq!(v["stage"].lookup("Stage 1"), Some("1"));
        assert_eq!(v["stage"].lookup("5"), None);
        assert_eq!(v["suspected_cancer"].lookup("HEAD AND NECK \u{2013} UPPER AERODIGESTIVE"), Some("Head & Neck"));
    }

    #[test]
    fn a_value_mapped_to_two_codes_or_a_wrong_header_is_an_error() {
        let clash = "vocabulary,source_value,code,label\nstage,I,1,Stage 1\nstage,i,2,Stage 2\n";
        assert!(Vocabularies::parse(clash.as_bytes()).unwrap_err().contains("maps to both"));
        assert!(Vocabularies::parse(b"vocab,from,to\n").unwrap_err().contains("header"));
        let empty = "vocabulary,source_value,code,label\nstage,,1,Stage 1\n";
        assert!(Vocabularies::parse(empty.as_bytes()).unwrap_err().contains("filled"));
    }
}
