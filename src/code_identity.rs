//! The build identity: which version of the code made a warehouse object.
//!
//! `build.rs` hashes each group of sources at compile time (BLAKE3 of the files' names and bytes):
//! the SQL functions (`src/stats`), disclosure control (`src/transform/disclosure`), how models
//! are run and written (the transform driver, the session, the Parquet sink, `Cargo.lock` and so
//! DataFusion's version) and reading and normalising landing files (`src/ingest`, the pipeline
//! contract, the Parquet sink). Fingerprints include only the groups an object depends on:
//!
//! - a pipeline's staging data: the ingest group;
//! - every materialised model: the models group;
//! - a model whose SQL calls one of the statistical functions: the stats group;
//! - a mart that declares disclosure control: the disclosure group.
//!
//! So an upgrade that changes a UDF rebuilds the models that call it (and their downstream
//! models) and nothing else; an upgrade that changes nothing rebuilds nothing. Tests pass a
//! modified [`CodeIdentity`] to [`crate::transform::build`] to see exactly that.

/// Hashes of the source groups (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeIdentity {
    pub stats: String,
    pub disclosure: String,
    pub models: String,
    pub ingest: String,
}

impl CodeIdentity {
    /// The identity of this binary's sources.
    pub fn compiled() -> Self {
        Self {
            stats: env!("ALLIANCE_CODE_STATS").to_string(),
            disclosure: env!("ALLIANCE_CODE_DISCLOSURE").to_string(),
            models: env!("ALLIANCE_CODE_MODELS").to_string(),
            ingest: env!("ALLIANCE_CODE_INGEST").to_string(),
        }
    }
}

impl Default for CodeIdentity {
    fn default() -> Self {
        Self::compiled()
    }
}

/// Names of the statistical SQL functions (scalar and aggregate), lower case.
pub fn statistical_functions() -> Vec<String> {
    let scalar = crate::stats::udf::all().into_iter().map(|f| f.name().to_ascii_lowercase());
    let aggregate = crate::stats::udaf::all().into_iter().map(|f| f.name().to_ascii_lowercase());
    scalar.chain(aggregate).collect()
}

/// True when `sql` calls one of `functions` (a name followed by an opening parenthesis).
pub fn calls_any(sql: &str, functions: &[String]) -> bool {
    let lower = sql.to_ascii_lowercase();
    functions.iter().any(|name| {
        lower.match_indices(name.as_str()).any(|(at, _)| {
            let before = lower[..at].chars().next_back();
            let after = lower[at + name.len()..].trim_start().chars().next();
            !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') && after == Some('(')
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_a_name_followed_by_a_parenthesis() {
        let functions = vec!["dsr".to_string(), "wilson_lower".to_string()];
        assert!(calls_any("select DSR (events, pop, std) from t", &functions));
        assert!(calls_any("select wilson_lower(a, b)", &functions));
        assert!(!calls_any("select dsr_total from t", &functions));
        assert!(!calls_any("select my_dsr(x) from t", &functions));
        assert!(!calls_any("select 1", &functions));
    }

    #[test]
    fn every_group_has_an_identity() {
        let id = CodeIdentity::compiled();
        for hash in [&id.stats, &id.disclosure, &id.models, &id.ingest] {
            assert_eq!(hash.len(), 64);
        }
        assert_ne!(id.stats, id.disclosure);
        assert!(statistical_functions().iter().any(|f| f == "dsr"));
    }
}
