//! Synthetic extracts (filled in below).
use crate::error::Result;
use crate::storage::Store;
use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {}

pub async fn run(_args: &GenerateArgs, _landing: &Store) -> Result<String> {
    Ok(String::new())
}

pub async fn seed(_from: &Path, _landing: &Store) -> Result<usize> {
    Ok(0)
}
