//! alliance-warehouse: a data-integration pipeline and Parquet warehouse for the NHS Cancer
//! Alliances of North East and North Central London and their Cancer Inequalities Working Group.
//!
//! Layers: [`config`] (environments and declarative pipelines) → [`storage`] (object stores) →
//! [`ingest`] (landing extracts to staging Parquet, with quarantine and manifests) →
//! [`transform`] (SQL models to tested, disclosure-controlled, atomically published marts, with
//! the [`stats`] methods as SQL functions) → [`runs`] (run records) → [`access`] (role-scoped,
//! read-only SQL for people: `query`, `shell`). [`generate`] makes realistic
//! synthetic extracts.
#![deny(warnings)]

pub mod access;
pub mod cli;
#[cfg(feature = "ballista")]
pub mod cluster;
pub mod code_identity;
pub mod config;
pub mod error;
pub mod generate;
pub mod ingest;
pub mod integrity;
pub mod jobs;
pub mod lock;
pub mod logging;
pub mod pages;
pub mod parquet_dictionary;
pub mod parquet_sink;
pub mod runs;
pub mod schedule;
pub mod stats;
pub mod storage;
pub mod transform;
pub mod verify;

pub use error::{Error, Result};
