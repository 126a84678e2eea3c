//! Access to the warehouse through SQL: who sees what, and nobody writes (SPEC §9).
//!
//! [`session::AccessSession`] is the one way analyst-facing surfaces reach the warehouse:
//! `alliance query` ([`query`]), `alliance shell` ([`shell`]) and `alliance serve` ([`server`],
//! Arrow Flight SQL for token holders). A
//! session is built for a [`Role`] and registers only the tables that role may read; it accepts
//! queries only (`SELECT`/`WITH`/`EXPLAIN`/`DESCRIBE`/`SHOW`), never `COPY`, DDL, DML or `SET`,
//! and never reads a file path as a table.
//!
//! | role | reads |
//! |---|---|
//! | `analyst` (default) | published marts, `runs`, `catalogue`, `information_schema` |
//! | `engineer` | also staging views `stg_*`, intermediate models `int_*`, reference tables `ref_*`, pipeline staging tables (`trust_pathways_*`, `cwt_*`, `screening_*`) |
//!
//! Patient-level tables (pipeline staging tables, `int_pathways`) are never registered in an
//! analyst session. Exports are safe to open in a spreadsheet: CSV text cells that a
//! spreadsheet would run as a formula are prefixed with `'` ([`query::neutralise_csv`]).

pub mod query;
pub mod role;
pub mod server;
pub mod session;
pub mod shell;

pub use role::{Role, TableKind};
pub use session::AccessSession;
