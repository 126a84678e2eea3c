//! SQL models: one `SELECT` per file under `sql/staging`, `sql/intermediate` and `sql/marts`,
//! named by the file stem (`sql/marts/mart_cwt_performance.sql` is the model
//! `mart_cwt_performance`), with an optional sidecar `<name>.toml` ([`ModelSpec`]) holding its
//! documentation, data tests and disclosure rules.
//!
//! Dependencies are not declared: they are the tables the query reads, found with DataFusion's SQL
//! parser (CTE names excluded). Each must be another model or a staging table of a pipeline.

use super::datatest::DataTest;
use super::disclosure::DisclosureSpec;
use crate::config::read_toml;
use crate::error::{Error, Result};
use datafusion::sql::parser::DFParser;
use datafusion::sql::resolve::resolve_table_references;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Where a model sits, which decides how it is materialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// Light renaming and code mapping over staging tables: registered as views.
    Staging,
    /// Joins and derivations: written as Parquet under `warehouse/models/<name>/`.
    Intermediate,
    /// Published marts: written, tested, then published atomically to `warehouse/marts/`.
    Mart,
}

impl Layer {
    pub const ALL: [(Layer, &'static str); 3] =
        [(Layer::Staging, "staging"), (Layer::Intermediate, "intermediate"), (Layer::Mart, "marts")];
}

/// Documentation and rules of a model (`<name>.toml` beside its SQL).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// What the model holds.
    #[serde(default)]
    pub description: String,
    /// One row per … (the grain), e.g. "org × month × standard × cancer type".
    #[serde(default)]
    pub grain: String,
    /// Column meanings, for the catalogue.
    #[serde(default)]
    pub columns: Vec<ColumnDoc>,
    /// Data tests that gate publishing.
    #[serde(default)]
    pub tests: Vec<DataTest>,
    /// Disclosure control applied before publishing (marts only).
    #[serde(default)]
    pub disclosure: Option<DisclosureSpec>,
}

/// A documented column.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnDoc {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// One SQL model.
#[derive(Debug, Clone)]
pub struct Model {
    pub name: String,
    pub layer: Layer,
    pub path: PathBuf,
    pub sql: String,
    /// Tables the query reads (lower-case), models and staging tables alike.
    pub reads: Vec<String>,
    pub spec: ModelSpec,
}

impl Model {
    /// Reads and parses one model file (and its sidecar).
    pub fn load(path: &Path, layer: Layer) -> Result<Self> {
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(Error::config(path, "model file names must be snake_case identifiers"));
        }
        let sql = std::fs::read_to_string(path).map_err(Error::io(path))?;
        let reads = table_references(&sql).map_err(|reason| Error::config(path, reason))?;
        let sidecar = path.with_extension("toml");
        let spec = if sidecar.exists() { read_toml(&sidecar)? } else { ModelSpec::default() };
        if spec.disclosure.is_some() && layer != Layer::Mart {
            return Err(Error::config(&sidecar, "disclosure applies to marts only"));
        }
        Ok(Self { name, layer, path: path.to_path_buf(), sql, reads, spec })
    }
}

/// The tables a single `SELECT` statement reads, lower-cased, CTEs excluded.
pub fn table_references(sql: &str) -> std::result::Result<Vec<String>, String> {
    let mut statements = DFParser::parse_sql(sql).map_err(|e| format!("SQL does not parse: {e}"))?;
    if statements.len() != 1 {
        return Err(format!("a model is exactly one SQL statement, found {}", statements.len()));
    }
    let statement = statements.pop_front().expect("one statement");
    let (tables, _ctes) =
        resolve_table_references(&statement, true).map_err(|e| format!("cannot resolve tables: {e}"))?;
    let mut names: Vec<String> = tables.iter().map(|t| t.table().to_lowercase()).collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Every model under `sql_dir`, by layer then name.
pub fn load_models(sql_dir: &Path) -> Result<Vec<Model>> {
    let mut models = Vec::new();
    for (layer, folder) in Layer::ALL {
        let dir = sql_dir.join(folder);
        if !dir.is_dir() {
            continue;
        }
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(Error::io(&dir))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
        paths.sort();
        for path in paths {
            let model = Model::load(&path, layer)?;
            if let Some(other) = models.iter().find(|m: &&Model| m.name == model.name) {
                return Err(Error::config(&path, format!("model name clashes with {}", other.path.display())));
            }
            models.push(model);
        }
    }
    Ok(models)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_exclude_ctes_and_follow_joins_and_subqueries() {
        let sql = "with recent as (select * from stg_a where x > 1)
                   select * from recent r join ref_b b on r.k = b.k
                   where r.y in (select y from Int_C) union all select * from stg_a";
        assert_eq!(table_references(sql).unwrap(), ["int_c", "ref_b", "stg_a"]);
        assert!(table_references("select 1; select 2").unwrap_err().contains("exactly one"));
        assert!(table_references("selec 1").unwrap_err().contains("does not parse"));
    }
}
