//! Requests to Sinch's Calling API take the journal like callbacks: the request, each attempt with
//! Sinch's answer (and its error reference), and the outcome are journal records
//! ([`super::OutboundRecord`]), shipped to `outbound_requests` and `outbound_attempts`. While
//! PostgreSQL is away they wait in the journal (or in memory) instead of being only logged.
//!
//! Admin reads follow their writes: once a stage is in the journal, it is also applied to
//! PostgreSQL at once (for at most [`APPLY_TIMEOUT`], and not while shipping is known to fail), so
//! that the admin API and `psql` show a request as it happens, whatever the shipper's lag. Applying
//! is idempotent (the shipper applies the same record again later, changing nothing).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{OutboundRecord, Record, Recorder};
use crate::db::outbound::{
    Admission, AttemptRecord, CallLimits, FinalRecord, NewOutbound, OutboundStore,
};
use crate::db::store::Store;

/// Longest a stage waits for PostgreSQL to apply it directly (it is in the journal already).
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// The journal side of one [`crate::db::outbound::OutboundStore`]: remembers each request it
/// recorded, so that its attempts and outcome carry it.
#[derive(Debug)]
pub struct OutboundJournal {
    recorder: Recorder,
    store: Store,
    requests: Mutex<HashMap<Uuid, (OffsetDateTime, NewOutbound)>>,
}

impl OutboundJournal {
    /// Records through `recorder`, and applies to `store` at once.
    pub fn new(recorder: Recorder, store: Store) -> OutboundJournal {
        OutboundJournal {
            recorder,
            store,
            requests: Mutex::new(HashMap::new()),
        }
    }

    fn requests(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (OffsetDateTime, NewOutbound)>> {
        self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers a request already in PostgreSQL (an admitted callout).
    pub fn remember(&self, request: &NewOutbound) {
        self.requests()
            .insert(request.id, (OffsetDateTime::now_utc(), request.clone()));
    }

    /// Records a request.
    pub async fn request(&self, request: &NewOutbound) {
        let now = OffsetDateTime::now_utc();
        self.requests().insert(request.id, (now, request.clone()));
        self.record(OutboundRecord {
            created_at: now,
            at: now,
            request: request.clone(),
            attempt_id: None,
            attempt: None,
            finish: None,
        })
        .await;
    }

    /// Records one attempt.
    pub async fn attempt(&self, attempt: &AttemptRecord) {
        let Some((created_at, request)) = self.requests().get(&attempt.request_id).cloned() else {
            tracing::warn!(request = %attempt.request_id, "an attempt of a request this store did not record");
            return;
        };
        self.record(OutboundRecord {
            created_at,
            at: OffsetDateTime::now_utc(),
            request,
            attempt_id: Some(Uuid::now_v7()),
            attempt: Some(attempt.clone()),
            finish: None,
        })
        .await;
    }

    /// Records how a request ended.
    pub async fn finish(&self, id: Uuid, fin: &FinalRecord) {
        let Some((created_at, request)) = self.requests().remove(&id) else {
            tracing::warn!(request = %id, "the outcome of a request this store did not record");
            return;
        };
        self.record(OutboundRecord {
            created_at,
            at: OffsetDateTime::now_utc(),
            request,
            attempt_id: None,
            attempt: None,
            finish: Some(fin.clone()),
        })
        .await;
    }

    /// Journals the stage, then applies it to PostgreSQL unless shipping is known to fail.
    async fn record(&self, r: OutboundRecord) {
        let record = Record::Outbound(Box::new(r));
        let direct = record.clone();
        self.recorder.record(record).await;
        let status = &self.recorder.status;
        let failing = !status.db_ok.load(Ordering::Acquire)
            && status
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some();
        if failing {
            return;
        }
        match tokio::time::timeout(APPLY_TIMEOUT, self.store.ship(&[&direct])).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "an outbound record waits for the shipper")
            }
            Err(_) => tracing::debug!("an outbound record waits for the shipper (slow PostgreSQL)"),
        }
    }
}

/// Writes of the outbound tables: through the journal, as callbacks are; reads through
/// [`OutboundStore`].
#[derive(Clone, Debug)]
pub struct OutboundWriter {
    reads: OutboundStore,
    journal: Arc<OutboundJournal>,
}

/// Defined here, beside the journal it writes through (the database layer below only reads,
/// and admits callouts).
impl OutboundStore {
    /// A writer recording requests, attempts and outcomes through the journal (as callbacks are).
    pub fn journaled(self, recorder: Recorder) -> OutboundWriter {
        let store = Store::new(self.pool().clone());
        OutboundWriter {
            journal: Arc::new(OutboundJournal::new(recorder, store)),
            reads: self,
        }
    }
}

impl OutboundWriter {
    /// The reads of the same tables.
    pub fn reads(&self) -> &OutboundStore {
        &self.reads
    }

    /// Records a request (pending, or refused locally).
    pub async fn insert_request(&self, r: &NewOutbound) {
        self.journal.request(r).await;
    }

    /// Admits a callout ([`OutboundStore::admit_callout_with`]) and remembers it when admitted,
    /// so that its attempts and outcome carry it.
    pub async fn admit_callout_with(
        &self,
        r: &NewOutbound,
        limits: &CallLimits,
        local_open: &[String],
    ) -> Result<Admission, sqlx::Error> {
        let admission = self.reads.admit_callout_with(r, limits, local_open).await?;
        if let Admission::Admitted(_) = &admission {
            self.journal.remember(r);
        }
        Ok(admission)
    }

    /// Records one attempt.
    pub async fn insert_attempt(&self, a: &AttemptRecord) {
        self.journal.attempt(a).await;
    }

    /// Records how a request ended.
    pub async fn finish_request(&self, id: Uuid, f: &FinalRecord) {
        self.journal.finish(id, f).await;
    }
}
