//! Build identity: a BLAKE3 hash of each group of sources whose behaviour a warehouse object
//! depends on, so that an upgrade rebuilds what it affects and nothing else (see
//! `src/code_identity.rs`). Each group becomes a compile-time environment variable.

use std::path::{Path, PathBuf};

/// Groups of sources: environment variable → files and folders (relative to the crate root).
const GROUPS: &[(&str, &[&str])] = &[
    // The SQL functions: every model whose SQL calls one of them.
    ("ALLIANCE_CODE_STATS", &["src/stats"]),
    // Disclosure control: every mart that declares it.
    ("ALLIANCE_CODE_DISCLOSURE", &["src/transform/disclosure"]),
    // How a model is run and written: every materialised model.
    (
        "ALLIANCE_CODE_MODELS",
        &[
            "src/transform/mod.rs",
            "src/transform/run.rs",
            "src/transform/datatest",
            "src/transform/session.rs",
            "src/parquet_sink.rs",
            "src/parquet_dictionary.rs",
            "Cargo.lock",
        ],
    ),
    // Reading and normalising landing files: every pipeline.
    (
        "ALLIANCE_CODE_INGEST",
        &[
            "src/ingest",
            "src/config/pipeline.rs",
            "src/config/vocabulary.rs",
            "src/parquet_sink.rs",
            "src/parquet_dictionary.rs",
        ],
    ),
];

fn files_below(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(path).expect("readable source folder").map(|e| e.expect("entry").path()).collect();
        entries.sort();
        for entry in entries {
            files_below(&entry, out);
        }
    } else if path.is_file() {
        out.push(path.to_path_buf());
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    for (variable, sources) in GROUPS {
        let mut hasher = blake3::Hasher::new();
        for source in *sources {
            println!("cargo:rerun-if-changed={source}");
            let mut files = Vec::new();
            files_below(&root.join(source), &mut files);
            for file in files {
                // Names relative to the crate, so the identity does not depend on the checkout's path.
                let name = file.strip_prefix(&root).unwrap_or(&file).to_string_lossy().replace('\\', "/");
                hasher.update(name.as_bytes());
                hasher.update(&[0]);
                hasher.update(&std::fs::read(&file).expect("readable source file"));
                hasher.update(&[0]);
            }
        }
        println!("cargo:rustc-env={variable}={}", hasher.finalize().to_hex());
    }
}
