//! Normalisation on several threads, results delivered in source order.
//!
//! A dispatcher thread numbers the raw batches coming from the reader and hands them to a pool of
//! worker threads; the writer receives `(sequence, result)` pairs and [`Reorder`] releases them in
//! sequence, so the staging Parquet has the source's row order whatever thread finished first.
//! At most `in_flight` batches exist between the dispatcher and the writer (a token is taken per
//! batch dispatched and returned per batch written), which bounds memory whatever the file size.

use super::normalise::{Normalised, Normaliser};
use super::source::{SourceMsg, SourceRx};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use tokio::sync::mpsc;

/// A normalised batch (or the error that ends the file) with its position in the source.
pub type Numbered = (u64, Result<Normalised>);

/// Worker threads for normalisation and Parquet encoding: the machine's parallelism, at most 8.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(1, 8)
}

/// Handle the writer uses to return a token once it has written a batch.
pub struct Tokens(std_mpsc::Receiver<()>);

impl Tokens {
    /// Returns one batch's token (never blocks: the token was taken before dispatch).
    pub fn release(&self) {
        let _ = self.0.try_recv();
    }
}

/// Starts the dispatcher and `workers` normaliser threads over the reader's channel.
pub fn spawn(
    normaliser: Normaliser,
    mut rx: SourceRx,
    workers: usize,
    in_flight: usize,
) -> (mpsc::Receiver<Numbered>, Tokens) {
    let normaliser = Arc::new(normaliser);
    let (out_tx, out_rx) = mpsc::channel::<Numbered>(in_flight.max(1));
    let (token_tx, token_rx) = std_mpsc::sync_channel::<()>(in_flight.max(1));
    let (work_tx, work_rx) = std_mpsc::sync_channel::<(u64, super::source::RawBatch)>(workers);
    let work_rx = Arc::new(Mutex::new(work_rx));
    for _ in 0..workers.max(1) {
        let (work_rx, out_tx, normaliser) = (work_rx.clone(), out_tx.clone(), normaliser.clone());
        std::thread::spawn(move || loop {
            let job = work_rx.lock().map(|rx| rx.recv());
            let Ok(Ok((seq, raw))) = job else { return };
            let result = normaliser.normalise(&raw);
            if out_tx.blocking_send((seq, result)).is_err() {
                return;
            }
        });
    }
    std::thread::spawn(move || {
        let mut seq = 0u64;
        while let Some(msg) = rx.blocking_recv() {
            let raw = match msg {
                Ok(SourceMsg::Batch(raw)) => raw,
                Ok(SourceMsg::Header(_)) => {
                    let _ = out_tx.blocking_send((seq, Err(Error::source_file(normaliser.file(), "second header"))));
                    return;
                }
                Err(e) => {
                    let _ = out_tx.blocking_send((seq, Err(e)));
                    return;
                }
            };
            if token_tx.send(()).is_err() || work_tx.send((seq, raw)).is_err() {
                return;
            }
            seq += 1;
        }
    });
    (out_rx, Tokens(token_rx))
}

/// Releases numbered results in sequence order.
#[derive(Default)]
pub struct Reorder {
    next: u64,
    pending: BTreeMap<u64, Result<Normalised>>,
}

impl Reorder {
    /// Adds a result; returns every result now releasable, in order.
    pub fn push(&mut self, (seq, result): Numbered) -> Vec<Result<Normalised>> {
        self.pending.insert(seq, result);
        let mut ready = Vec::new();
        while let Some(r) = self.pending.remove(&self.next) {
            self.next += 1;
            ready.push(r);
        }
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(rows: u64) -> Result<Normalised> {
        let schema = Arc::new(arrow::datatypes::Schema::empty());
        Ok(Normalised {
            batch: arrow::array::RecordBatch::new_empty(schema),
            rejected: vec![],
            rows_in: rows,
            rows_dropped: 0,
            rows_quarantined: 0,
            values_nulled: 0,
        })
    }

    #[test]
    fn releases_in_sequence() {
        let mut r = Reorder::default();
        assert!(r.push((1, ok(1))).is_empty());
        assert!(r.push((2, ok(2))).is_empty());
        let out: Vec<u64> = r.push((0, ok(0))).into_iter().map(|x| x.unwrap().rows_in).collect();
        assert_eq!(out, [0, 1, 2]);
        assert_eq!(r.push((3, ok(3))).len(), 1);
    }
}
