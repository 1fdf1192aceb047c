//! Error recording off the reply path: errors (and refusals) are handed to a background task that writes
//! them to PostgreSQL, retrying while the database is briefly unavailable. Handing over never blocks.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::db::store::Store;
use crate::error::ErrorRecord;
use crate::metrics::Metrics;
use crate::spool::{Entry, Spool};

/// Capacity of the queue; beyond it records are dropped (and counted) rather than blocking replies.
const QUEUE: usize = 10_000;

/// Sender side: cheap to clone.
#[derive(Clone, Debug)]
pub struct ErrorSink {
    tx: mpsc::Sender<ErrorRecord>,
    metrics: Arc<Metrics>,
}

impl ErrorSink {
    /// Starts the writer task on the current runtime.
    pub fn spawn(store: Store, metrics: Arc<Metrics>, spool: Spool) -> ErrorSink {
        let (tx, mut rx) = mpsc::channel::<ErrorRecord>(QUEUE);
        tokio::spawn(async move {
            while let Some(record) = rx.recv().await {
                let mut delay = Duration::from_millis(50);
                let mut attempts = 0;
                loop {
                    match store.record_error(&record).await {
                        Ok(()) => break,
                        Err(e) if attempts < 3 => {
                            attempts += 1;
                            tracing::warn!(reference = %record.reference, error = %e, attempts, "recording error failed; retrying");
                            tokio::time::sleep(delay).await;
                            delay = (delay * 2).min(Duration::from_secs(5));
                        }
                        Err(e) => {
                            tracing::warn!(reference = %record.reference, error = %e, "database unavailable; error record spooled");
                            spool.put(Entry::Error {
                                error: Box::new(record),
                            });
                            break;
                        }
                    }
                }
            }
        });
        ErrorSink { tx, metrics }
    }

    /// Queues a record for writing.
    pub fn record(&self, record: ErrorRecord) {
        if let Err(e) = self.tx.try_send(record) {
            self.metrics.inc(
                "svamlgate_record_failures_total",
                &[("kind", "error_queue_full")],
            );
            tracing::error!(error = %e, "error queue full; record dropped");
        }
    }
}
