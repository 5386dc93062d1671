//! The embedded store's single writer thread: **group commit**.
//!
//! Every mutating call becomes a [`Job`] on one bounded channel ([`QUEUE`]). The thread takes the first waiting job
//! and up to [`MAX_BATCH`] − 1 more that are already queued, runs each in its *own* write
//! transaction committed with `Durability::None` (so one job's failure or abort touches no
//! other), then makes the whole batch durable with one `Durability::Immediate` commit (one
//! fsync), and only then acknowledges every job of the batch. So a call still returns only
//! once its write is on disk, but concurrent calls share the fsync: throughput grows with
//! concurrency instead of being capped at one fsync per write.
//!
//! Readers may see a batch's writes before its fsync. That is harmless: nothing has been
//! acknowledged to a client yet, so a crash then loses only unacknowledged writes (their callers
//! never got a token or a confirmation), and a read can only be "more revoked" than the disk.
//! A batch with no change (all jobs aborted) skips the fsync: earlier batches are already
//! durable.
//!
//! If the durable commit fails (I/O error), every job of the batch fails with `Unavailable`
//! (redb then refuses further writes until reopened: fail closed). If the thread dies, pending
//! and later calls fail with `Unavailable`. Dropping the last store handle closes the channel
//! and joins the thread, so the file is unlocked when the drop returns.

use super::super::StoreError;
use super::tables::Fail;
use redb::{Database, Durability};
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::mpsc;

/// Most jobs sharing one fsync.
pub const MAX_BATCH: usize = 256;
/// Jobs waiting for the writer. When full, callers wait (async, no worker blocked): back
/// pressure instead of unbounded memory under a write flood.
pub const QUEUE: usize = 4096;

/// Called with the batch's durability result once it is known.
pub(super) type Ack = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// Runs one job's transaction; returns its acknowledgement and whether it committed a change.
pub(super) type Job = Box<dyn FnOnce(&Database) -> (Ack, bool) + Send>;

pub(super) struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub(super) fn start(db: Arc<Database>) -> Result<Self, StoreError> {
        let (jobs, mut rx) = mpsc::channel::<Job>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("tokengate-store-writer".into())
            .spawn(move || run(&db, &mut rx))
            .map_err(|e| StoreError::Unavailable(format!("cannot start store writer: {e}")))?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    pub(super) async fn submit(&self, job: Job) -> Result<(), StoreError> {
        let stopped = || StoreError::Unavailable("store writer stopped".into());
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .await
            .map_err(|_| stopped())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            // The thread finishes the batch in hand (milliseconds), then sees the closed channel.
            let _ = t.join();
        }
    }
}

fn run(db: &Database, rx: &mut mpsc::Receiver<Job>) {
    while let Some(first) = rx.blocking_recv() {
        let mut acks = Vec::new();
        let mut changed = false;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            let (ack, c) = job(db);
            acks.push(ack);
            changed |= c;
            if acks.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        let durable = if changed {
            sync(db).map_err(StoreError::from)
        } else {
            Ok(())
        };
        for ack in acks {
            ack(durable.clone());
        }
    }
}

/// An empty transaction committed durably: persists every `Durability::None` commit before it.
fn sync(db: &Database) -> Result<(), Fail> {
    let mut tx = db.begin_write()?;
    tx.set_durability(Durability::Immediate);
    tx.commit()?;
    Ok(())
}
