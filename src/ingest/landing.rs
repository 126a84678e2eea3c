//! Listing landing: which entries are files ingestion may read, which are skipped and why, and
//! which nearly match a pipeline.
//!
//! On a `file://` landing root the folder is walked here, not by the object store: an entry is a
//! candidate only if it is a regular file inside the root, reached without following a symbolic
//! link, whose name is valid UTF-8 without control characters. Everything else — symbolic links
//! (to files inside or outside landing, dangling, or in a loop), devices, pipes, sockets, and names
//! the object store cannot represent — is skipped with a warning and never opened, so one odd
//! entry neither stops the listing nor lets ingestion read outside landing. On object stores the
//! store's listing is used as it is (objects are always plain objects).
//!
//! A near miss is a landing file that no pipeline reads but one nearly would: its path matches a
//! pipeline's glob but for letter case (`.CSV` for `*.csv`), or its file name matches the glob's
//! file-name pattern in another folder. Near misses are warned about, never read.

use super::redact;
use crate::config::Pipeline;
use crate::error::{Error, Result};
use crate::storage::Store;
use globset::{GlobBuilder, GlobMatcher};
use object_store::path::Path as ObjectPath;
use object_store::ObjectMeta;
use std::path::{Path, PathBuf};
use tracing::warn;

/// A landing entry that is not read, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    /// Path relative to the landing root as far as it can be shown (escaped, bounded); the raw
    /// path (lossily decoded) is used for glob matching only.
    pub path: String,
    raw: String,
    pub reason: String,
}

impl Skipped {
    fn new(raw: String, reason: impl Into<String>) -> Self {
        Self { path: redact::name(&raw), raw, reason: reason.into() }
    }

    /// True if the entry's path matches the glob (so the pipeline would have read it).
    pub fn matches(&self, glob: &GlobMatcher) -> bool {
        glob.is_match(&self.raw)
    }
}

/// What listing a landing prefix found.
#[derive(Debug, Default)]
pub struct Listing {
    /// Regular files, sorted by path.
    pub files: Vec<ObjectMeta>,
    /// Entries that are not read.
    pub skipped: Vec<Skipped>,
}

/// Lists landing under `prefix` (a folder path relative to the root, `""` for all). Skipped
/// entries are returned, not logged: see [`warn_skipped`].
pub async fn list(landing: &Store, prefix: &str) -> Result<Listing> {
    let Some(root) = landing.local_file("") else {
        return Ok(Listing { files: landing.list(prefix).await?, skipped: vec![] });
    };
    let (start, prefix_owned) = (root.join(prefix), prefix.trim_matches('/').to_string());
    let walk = tokio::task::spawn_blocking(move || walk(&start, &prefix_owned));
    let (paths, skipped) = walk.await.map_err(|e| Error::source_file(landing.url(), format!("listing: {e}")))?;
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        // The entry was a regular file when walked; `head` gives the store's own size, ETag and
        // time. Gone since (or replaced by something else): not a candidate this time.
        if let Some(meta) = landing.head(&path).await? {
            files.push(meta);
        }
    }
    files.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(Listing { files, skipped })
}

/// Warns about each skipped entry (once per run: the caller lists the whole landing once).
pub fn warn_skipped(skipped: &[Skipped]) {
    for s in skipped {
        warn!(entry = %s.path, reason = %s.reason, "landing entry skipped: not read");
    }
}

/// Walks `start` (the folder `prefix` of the root) without following links; returns the
/// relative paths of regular files and the skipped entries.
fn walk(start: &Path, prefix: &str) -> (Vec<String>, Vec<Skipped>) {
    let (mut files, mut skipped) = (Vec::new(), Vec::new());
    // The prefix folder itself must be a real folder reached without links.
    match std::fs::symlink_metadata(start) {
        Ok(m) if m.is_dir() => {}
        Ok(m) if m.file_type().is_symlink() => {
            skipped.push(Skipped::new(prefix.to_string(), "a symbolic link (links in landing are never followed)"));
            return (files, skipped);
        }
        _ => return (files, skipped),
    }
    let mut folders: Vec<(PathBuf, String)> = vec![(start.to_path_buf(), prefix.to_string())];
    while let Some((folder, relative)) = folders.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) => {
                skipped.push(Skipped::new(relative, format!("folder cannot be listed: {}", e.kind())));
                continue;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let lossy = name.to_string_lossy().into_owned();
            let path = if relative.is_empty() { lossy.clone() } else { format!("{relative}/{lossy}") };
            let Some(text) = name.to_str() else {
                skipped.push(Skipped::new(path, "the name is not valid UTF-8"));
                continue;
            };
            if text.chars().any(char::is_control) || ObjectPath::parse(&path).is_err() {
                skipped.push(Skipped::new(path, "the name holds control characters or is not a valid object name"));
                continue;
            }
            // `DirEntry::file_type` does not follow a symbolic link.
            match entry.file_type() {
                Ok(t) if t.is_symlink() => {
                    skipped.push(Skipped::new(path, "a symbolic link (links in landing are never followed)"))
                }
                Ok(t) if t.is_dir() => folders.push((entry.path(), path)),
                Ok(t) if t.is_file() => files.push(path),
                Ok(_) => skipped.push(Skipped::new(path, "not a regular file (a device, pipe or socket)")),
                Err(e) => skipped.push(Skipped::new(path, format!("cannot be inspected: {}", e.kind()))),
            }
        }
    }
    (files, skipped)
}

/// A pipeline glob compiled as ingestion matches it.
pub fn matcher(p: &Pipeline) -> Result<GlobMatcher> {
    compile(&p.source.glob, false).map_err(|e| Error::config(&p.file, e))
}

fn compile(glob: &str, case_insensitive: bool) -> std::result::Result<GlobMatcher, String> {
    GlobBuilder::new(glob)
        .literal_separator(true)
        .case_insensitive(case_insensitive)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| e.to_string())
}

/// A landing file that nearly matches a pipeline.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NearMiss {
    pub path: String,
    pub pipeline: String,
    pub reason: String,
}

/// The near misses among `paths` (every landing file): files no pipeline reads that one nearly
/// would.
pub fn near_misses(paths: &[String], pipelines: &[Pipeline]) -> Vec<NearMiss> {
    struct Globs<'a> {
        name: &'a str,
        exact: GlobMatcher,
        any_case: GlobMatcher,
        file_name: Option<GlobMatcher>,
    }
    let globs: Vec<Globs> = pipelines
        .iter()
        .filter_map(|p| {
            let glob = &p.source.glob;
            let file_part = glob.rsplit('/').next().unwrap_or(glob);
            Some(Globs {
                name: &p.name,
                exact: compile(glob, false).ok()?,
                any_case: compile(glob, true).ok()?,
                // Only a pattern with a literal start (`RAL_*.csv`, not `*.csv`) says which file
                // a pipeline wants wherever it lands.
                file_name: (file_part != glob && !file_part.starts_with(['*', '?', '[', '{']))
                    .then(|| compile(file_part, false).ok())
                    .flatten(),
            })
        })
        .collect();
    let mut out = Vec::new();
    for path in paths {
        if globs.iter().any(|g| g.exact.is_match(path)) {
            continue;
        }
        let file_name = path.rsplit('/').next().unwrap_or(path);
        for g in &globs {
            let reason = if g.any_case.is_match(path) {
                "matches the pipeline's file pattern but for letter case (e.g. .CSV for .csv)"
            } else if g.file_name.as_ref().is_some_and(|f| f.is_match(file_name)) {
                "its name matches the pipeline's file pattern but it is in another folder"
            } else {
                continue;
            };
            out.push(NearMiss { path: redact::name(path), pipeline: g.name.to_string(), reason: reason.into() });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_devices_and_odd_names_are_skipped_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("landing");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/good.csv"), "x").unwrap();
        std::fs::write(root.join("a/b/deep.csv"), "x").unwrap();
        std::fs::write(dir.path().join("secret.key"), "key").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.key"), root.join("a/link.csv")).unwrap();
        std::os::unix::fs::symlink(root.join("a/loop1"), root.join("a/loop2")).unwrap();
        std::os::unix::fs::symlink(root.join("a/loop2"), root.join("a/loop1")).unwrap();
        std::os::unix::fs::symlink(&root, root.join("a/up")).unwrap();
        std::fs::write(root.join("a/new\nline.csv"), "x").unwrap();
        let (mut files, skipped) = walk(&root.join("a"), "a");
        files.sort();
        assert_eq!(files, ["a/b/deep.csv", "a/good.csv"]);
        let mut names: Vec<&str> = skipped.iter().map(|s| s.path.as_str()).collect();
        names.sort();
        assert_eq!(names, ["a/link.csv", "a/loop1", "a/loop2", "a/new\\u{a}line.csv", "a/up"]);
        assert!(skipped.iter().all(|s| !s.reason.is_empty()));
    }

    #[test]
    fn near_misses_by_case_and_folder() {
        let text = "[source]\nglob = \"trusts/RAL/RAL_*.csv\"\nformat = \"csv\"\n[load]\nmode = \"append\"\n[[columns]]\nname = \"a\"\ntype = \"string\"\n";
        let mut p: Pipeline = toml::from_str(text).unwrap();
        p.name = "ral".into();
        let paths: Vec<String> = ["trusts/RAL/RAL_1.csv", "trusts/RAL/RAL_2.CSV", "trusts/RAL_3.csv", "other/x.csv"]
            .map(String::from)
            .into();
        let misses = near_misses(&paths, &[p]);
        let got: Vec<(&str, bool)> = misses.iter().map(|m| (m.path.as_str(), m.reason.contains("case"))).collect();
        assert_eq!(got, [("trusts/RAL/RAL_2.CSV", true), ("trusts/RAL_3.csv", false)]);
    }
}
