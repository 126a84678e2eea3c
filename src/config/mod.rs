//! Configuration: environments (`config/<env>.toml`) and declarative pipelines
//! (`pipelines/<name>.toml`). The structs here are the documentation of both file formats:
//! every field has a doc comment and a named default, and unknown fields are rejected so that a
//! typo is an error rather than a silently ignored setting.

pub mod cron;
pub mod environment;
pub mod pipeline;
pub mod rules;
pub mod vocabulary;

pub use environment::{Environment, StorageSettings};
pub use pipeline::{load_pipelines, Pipeline};

use crate::error::{Error, Result};
use std::path::Path;

/// Reads and parses a TOML file into `T`, mapping failures to [`Error::Config`] with the file name
/// and the line/column that TOML reports.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
    toml::from_str(&text).map_err(|e| Error::config(path, e.to_string()))
}
