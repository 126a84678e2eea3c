//! Object storage: one [`Store`] per root URL (landing or warehouse).
//!
//! `file://` roots use the local filesystem (relative paths resolve against the working
//! directory); `s3://`, `az://`/`abfs://` and `gs://` roots use the cloud stores, configured from
//! their standard environment variables plus the environment file's `options`. Every path handed
//! to a `Store` is relative to its root.
//!
//! Writes are whole-object puts or multipart uploads: the local store writes a temporary file and
//! renames it, S3/Azure/GCS make an object visible only when complete, so a reader never sees a
//! partial object.

use crate::config::environment::RetrySettings;
use crate::config::StorageSettings;
use crate::error::{Error, Result};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use std::sync::Arc;
use std::time::Duration;

/// An object store rooted at a URL.
#[derive(Clone, Debug)]
pub struct Store {
    url: String,
    inner: Arc<dyn ObjectStore>,
    /// The folder of a `file://` root: bulk reads go straight to the file system there.
    local_root: Option<std::path::PathBuf>,
}

/// Landing and warehouse stores of one environment.
#[derive(Clone, Debug)]
pub struct Stores {
    pub landing: Store,
    pub warehouse: Store,
}

impl Stores {
    pub fn open(settings: &StorageSettings) -> Result<Self> {
        Ok(Self {
            landing: Store::open(&settings.landing, settings)?,
            warehouse: Store::open(&settings.warehouse, settings)?,
        })
    }
}

impl Store {
    /// Opens the store rooted at `url`.
    pub fn open(url: &str, settings: &StorageSettings) -> Result<Self> {
        let bad = |reason: String| Error::StorageUrl { url: url.to_string(), reason };
        if let Some(local) = local_path(url) {
            std::fs::create_dir_all(&local).map_err(|e| bad(format!("cannot create {}: {e}", local.display())))?;
            let fs = LocalFileSystem::new_with_prefix(&local).map_err(|e| bad(e.to_string()))?;
            return Ok(Self {
                url: format!("file://{}", local.display()),
                inner: Arc::new(fs.with_automatic_cleanup(true)),
                local_root: Some(local),
            });
        }
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        let options = resolve_options(settings).map_err(bad)?;
        let retry = retry_config(&settings.retry);
        let bucket_url = format!("{}://{}", parsed.scheme(), parsed.host_str().unwrap_or_default());
        let store: Arc<dyn ObjectStore> = match parsed.scheme() {
            "s3" | "s3a" => {
                let mut b = AmazonS3Builder::from_env().with_url(&bucket_url).with_retry(retry);
                for (k, v) in &options {
                    let key = k.parse().map_err(|e: object_store::Error| bad(e.to_string()))?;
                    b = b.with_config(key, v);
                }
                Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
            }
            "az" | "azure" | "abfs" | "abfss" => {
                let mut b = MicrosoftAzureBuilder::from_env().with_url(&bucket_url).with_retry(retry);
                for (k, v) in &options {
                    let key = k.parse().map_err(|e: object_store::Error| bad(e.to_string()))?;
                    b = b.with_config(key, v);
                }
                Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
            }
            "gs" => {
                let mut b = GoogleCloudStorageBuilder::from_env().with_url(&bucket_url).with_retry(retry);
                for (k, v) in &options {
                    let key = k.parse().map_err(|e: object_store::Error| bad(e.to_string()))?;
                    b = b.with_config(key, v);
                }
                Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
            }
            other => return Err(bad(format!("unsupported scheme '{other}' (file, s3, az, gs)"))),
        };
        let prefix = parsed.path().trim_matches('/');
        let inner: Arc<dyn ObjectStore> =
            if prefix.is_empty() { store } else { Arc::new(PrefixStore::new(store, prefix)) };
        Ok(Self { url: url.trim_end_matches('/').to_string(), inner, local_root: None })
    }

    /// A store over an existing object store (tests, in-memory work).
    pub fn from_object_store(url: impl Into<String>, inner: Arc<dyn ObjectStore>) -> Self {
        Self { url: url.into(), inner, local_root: None }
    }

    /// The local file behind `path` when the root is a `file://` folder.
    pub fn local_file(&self, path: &str) -> Option<std::path::PathBuf> {
        self.local_root.as_ref().map(|root| root.join(path))
    }

    /// The root URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The underlying object store (paths relative to the root).
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.inner.clone()
    }

    /// Full URL of a relative path, for messages and lineage.
    pub fn display(&self, path: &str) -> String {
        format!("{}/{}", self.url, path)
    }

    /// Lists every object under `prefix` (recursively), sorted by path.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let prefix_path = (!prefix.is_empty()).then(|| ObjectPath::from(prefix));
        let mut metas: Vec<ObjectMeta> = self
            .inner
            .list(prefix_path.as_ref())
            .try_collect()
            .await
            .map_err(Error::store("list", self.display(prefix)))?;
        metas.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(metas)
    }

    /// Metadata of one object, `None` if absent.
    pub async fn head(&self, path: &str) -> Result<Option<ObjectMeta>> {
        match self.inner.head(&object_path(path)).await {
            Ok(m) => Ok(Some(m)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::store("head", self.display(path))(e)),
        }
    }

    /// Reads a whole object.
    pub async fn get(&self, path: &str) -> Result<Bytes> {
        let r = self.inner.get(&object_path(path)).await.map_err(Error::store("get", self.display(path)))?;
        r.bytes().await.map_err(Error::store("read", self.display(path)))
    }

    /// Reads a whole object, `None` if absent.
    pub async fn get_opt(&self, path: &str) -> Result<Option<Bytes>> {
        match self.inner.get(&object_path(path)).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(Error::store("read", self.display(path)))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::store("get", self.display(path))(e)),
        }
    }

    /// Writes a whole object atomically (replacing any previous version).
    pub async fn put(&self, path: &str, data: impl Into<PutPayload>) -> Result<()> {
        self.inner.put(&ObjectPath::from(path), data.into()).await.map_err(Error::store("put", self.display(path)))?;
        Ok(())
    }

    /// Copies an object within the store. The destination is replaced atomically (server-side
    /// copy, or hard link and rename on the local store).
    pub async fn copy(&self, from: &str, to: &str) -> Result<()> {
        self.inner
            .copy(&ObjectPath::from(from), &ObjectPath::from(to))
            .await
            .map_err(Error::store("copy", format!("{} → {}", self.display(from), self.display(to))))
    }

    /// Deletes an object; absent objects are not an error.
    pub async fn delete(&self, path: &str) -> Result<()> {
        match self.inner.delete(&ObjectPath::from(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::store("delete", self.display(path))(e)),
        }
    }
}

/// The object path of a listed location's text (`location.to_string()`): taken as it is when it
/// is a valid path, so a name with spaces, `%` or letters outside ASCII reads the object it was
/// listed as (`ObjectPath::from` would percent-encode it into another name).
fn object_path(path: &str) -> ObjectPath {
    ObjectPath::parse(path).unwrap_or_else(|_| ObjectPath::from(path))
}

/// Local path of a `file://` URL or a plain path; `None` for other schemes.
pub fn local_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = match url.split_once("://") {
        Some(("file", rest)) => rest,
        Some(_) => return None,
        None => url,
    };
    let path: std::path::PathBuf =
        std::path::Path::new(rest).components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect();
    Some(if path.is_absolute() { path } else { std::env::current_dir().map(|d| d.join(&path)).unwrap_or(path) })
}

fn resolve_options(settings: &StorageSettings) -> std::result::Result<Vec<(String, String)>, String> {
    settings
        .options
        .iter()
        .map(|(k, v)| match v.strip_prefix("env:") {
            Some(var) => std::env::var(var)
                .map(|value| (k.clone(), value))
                .map_err(|_| format!("option {k} names environment variable {var}, which is not set")),
            None => Ok((k.clone(), v.clone())),
        })
        .collect()
}

fn retry_config(r: &RetrySettings) -> RetryConfig {
    RetryConfig {
        max_retries: r.max_retries,
        retry_timeout: Duration::from_secs(r.timeout_secs),
        backoff: object_store::BackoffConfig {
            init_backoff: Duration::from_millis(r.initial_backoff_ms),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        },
    }
}

pub use crate::error::is_transient;
