//! Reading a landing object as a stream of large chunks while hashing it.
//!
//! Object stores hand out small pieces (the local store reads 8 KiB at a time); passing each
//! through a channel would cost a thread wake-up per piece. Pieces are coalesced to
//! [`CHUNK_BYTES`] before they are sent to the decoder, and hashed (BLAKE3) on the way, so the
//! manifest learns the file's content hash without a second read.

use crate::error::{Error, Result};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Bytes per chunk handed to the decoder.
pub const CHUNK_BYTES: usize = 4 << 20;
/// Chunks in flight between the reader and the decoder.
pub const CHUNK_DEPTH: usize = 4;

/// Reads a local file in [`CHUNK_BYTES`] pieces on the calling (blocking) thread, hashing and
/// sending each: the object store's local reader would hand over 8 KiB per blocking task.
pub fn read_local_hashed(file: &std::path::Path, url: &str, tx: mpsc::Sender<Result<Bytes>>) -> Option<String> {
    use std::io::Read;
    let fail = |e: std::io::Error| Error::source_file(url, format!("cannot read: {e}"));
    let mut f = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.blocking_send(Err(fail(e)));
            return None;
        }
    };
    let mut hasher = blake3::Hasher::new();
    loop {
        let mut buffer = BytesMut::zeroed(CHUNK_BYTES);
        let mut filled = 0;
        while filled < CHUNK_BYTES {
            match f.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(fail(e)));
                    return None;
                }
            }
        }
        if filled == 0 {
            return Some(hasher.finalize().to_hex().to_string());
        }
        buffer.truncate(filled);
        let chunk = buffer.freeze();
        hasher.update(&chunk);
        if tx.blocking_send(Ok(chunk)).is_err() {
            return None;
        }
    }
}

/// Content hash of bytes: BLAKE3, lower-case hex.
pub fn content_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Streams `location` to `tx` in chunks of about [`CHUNK_BYTES`]; returns the content hash when
/// the whole object was read and sent, `None` if reading failed (the error was sent) or the
/// receiver went away.
pub async fn stream_hashed(
    store: Arc<dyn ObjectStore>,
    location: ObjectPath,
    url: String,
    tx: mpsc::Sender<Result<Bytes>>,
) -> Option<String> {
    let mut hasher = blake3::Hasher::new();
    let mut stream = match store.get(&location).await {
        Ok(r) => r.into_stream(),
        Err(e) => {
            let _ = tx.send(Err(Error::store("get", url)(e))).await;
            return None;
        }
    };
    let mut buffer = BytesMut::with_capacity(CHUNK_BYTES);
    loop {
        let next = stream.next().await;
        let flush = match &next {
            Some(Ok(piece)) => {
                buffer.extend_from_slice(piece);
                buffer.len() >= CHUNK_BYTES
            }
            Some(Err(_)) => false,
            None => !buffer.is_empty(),
        };
        if flush {
            let chunk = buffer.split().freeze();
            buffer.reserve(CHUNK_BYTES);
            hasher.update(&chunk);
            if tx.send(Ok(chunk)).await.is_err() {
                return None;
            }
        }
        match next {
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                let _ = tx.send(Err(Error::store("read", url)(e))).await;
                return None;
            }
            None => return Some(hasher.finalize().to_hex().to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn coalesces_and_hashes_the_whole_object() {
        let store = Arc::new(InMemory::new());
        let data: Vec<u8> = (0..(CHUNK_BYTES * 2 + 123)).map(|i| (i % 251) as u8).collect();
        store.put(&ObjectPath::from("a/b.csv"), data.clone().into()).await.unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let hash = stream_hashed(store, ObjectPath::from("a/b.csv"), "mem://a/b.csv".into(), tx).await;
        let mut got = Vec::new();
        while let Some(chunk) = rx.recv().await {
            got.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(got, data);
        assert_eq!(hash.unwrap(), content_hash(&data));
    }

    #[tokio::test]
    async fn local_files_are_read_in_large_hashed_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.csv");
        let data: Vec<u8> = (0..(CHUNK_BYTES + 77)).map(|i| (i % 13) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        let hash = tokio::task::spawn_blocking(move || read_local_hashed(&path, "file://f.csv", tx)).await.unwrap();
        let mut sizes = Vec::new();
        while let Some(chunk) = rx.recv().await {
            sizes.push(chunk.unwrap().len());
        }
        assert_eq!(sizes, [CHUNK_BYTES, 77]);
        assert_eq!(hash.unwrap(), content_hash(&data));
    }

    #[tokio::test]
    async fn a_missing_object_is_an_error_not_an_empty_file() {
        let (tx, mut rx) = mpsc::channel(1);
        let hash = stream_hashed(Arc::new(InMemory::new()), ObjectPath::from("x"), "mem://x".into(), tx).await;
        assert!(hash.is_none());
        assert!(rx.recv().await.unwrap().unwrap_err().to_string().contains("mem://x"));
    }
}
