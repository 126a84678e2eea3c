//! Streaming generator output into an object store: a blocking `std::io::Write` that hands
//! fixed-size chunks over a bounded channel to an async multipart upload, so a multi-gigabyte
//! extract never sits in memory and the object appears only when complete.

use crate::error::{Error, Result};
use crate::storage::Store;
use bytes::Bytes;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Bytes per chunk handed to the uploader.
const CHUNK: usize = 8 << 20;

/// A blocking writer feeding an upload task.
pub struct ChunkWriter {
    buffer: Vec<u8>,
    /// `Some(chunk)` data; `None` marks a clean end (without it the upload is aborted).
    tx: mpsc::Sender<Option<Bytes>>,
    /// Bytes written so far.
    pub written: u64,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Some(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the upload stopped"))
    }

    /// Sends what is buffered and marks the end: the upload completes. A writer dropped without
    /// `finish` (the generator failed) aborts the upload, leaving no partial object.
    pub fn finish(mut self) -> std::io::Result<u64> {
        self.send()?;
        self.tx
            .blocking_send(None)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the upload stopped"))?;
        Ok(self.written)
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        self.written += buf.len() as u64;
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts an upload of `path` in `store`; returns the writer to fill (on a blocking thread) and
/// the task that completes the object when the writer is dropped.
pub fn upload(store: &Store, path: &str) -> (ChunkWriter, tokio::task::JoinHandle<Result<()>>) {
    let (tx, mut rx) = mpsc::channel::<Option<Bytes>>(4);
    let mut object = BufWriter::new(store.object_store(), ObjectPath::from(path));
    let location = store.display(path);
    let task = tokio::spawn(async move {
        let fail =
            |e: std::io::Error| Error::State { location: location.clone(), reason: format!("upload failed: {e}") };
        loop {
            match rx.recv().await {
                Some(Some(chunk)) => object.write_all(&chunk).await.map_err(fail)?,
                Some(None) => return object.shutdown().await.map_err(fail),
                None => {
                    let _ = object.abort().await;
                    return Err(fail(std::io::Error::other("the generator stopped before the end")));
                }
            }
        }
    });
    (ChunkWriter { buffer: Vec::with_capacity(CHUNK), tx, written: 0 }, task)
}
