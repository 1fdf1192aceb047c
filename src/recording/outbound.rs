//! Requests to Sinch's Calling API take the journal like callbacks: the request, each attempt with
//! Sinch's answer (and its error reference), and the outcome are journal records
//! ([`super::OutboundRecord`]), shipped to `outbound_requests` and `outbound_attempts`. While
//! PostgreSQL is away they wait in the journal (or in memory) instead of being only logged.
//!
//! Admin reads follow their writes: once a request has ended (or was refused before sending), the
//! caller waits, while PostgreSQL answers and for at most [`READ_YOUR_WRITES`], until its records
//! are shipped, so that the admin API and `psql` show it as soon as the answer is back.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{OutboundRecord, Record, Recorder};
use crate::db::outbound::{AttemptRecord, FinalRecord, NewOutbound};

/// Longest an ended request waits for its records to reach PostgreSQL (while PostgreSQL takes
/// records: a few hundred ms at most unless the machine is overloaded; the wait ends at once when
/// shipping fails).
pub const READ_YOUR_WRITES: Duration = Duration::from_secs(10);

/// The journal side of one [`crate::db::outbound::OutboundStore`]: remembers each request it
/// recorded, so that its attempts and outcome carry it.
#[derive(Debug)]
pub struct OutboundJournal {
    recorder: Recorder,
    requests: Mutex<HashMap<Uuid, (OffsetDateTime, NewOutbound)>>,
}

impl OutboundJournal {
    /// Records through `recorder`.
    pub fn new(recorder: Recorder) -> OutboundJournal {
        OutboundJournal {
            recorder,
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

    /// Records a request. One that will not be sent (refused locally) is waited for.
    pub async fn request(&self, request: &NewOutbound) {
        let now = OffsetDateTime::now_utc();
        let ended = request.outcome != "pending";
        if !ended {
            self.requests().insert(request.id, (now, request.clone()));
        }
        let seq = self
            .record(OutboundRecord {
                created_at: now,
                at: now,
                request: request.clone(),
                attempt_id: None,
                attempt: None,
                finish: None,
            })
            .await;
        if ended {
            self.wait_shipped(seq).await;
        }
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

    /// Records how a request ended, and waits until its records are in PostgreSQL.
    pub async fn finish(&self, id: Uuid, fin: &FinalRecord) {
        let Some((created_at, request)) = self.requests().remove(&id) else {
            tracing::warn!(request = %id, "the outcome of a request this store did not record");
            return;
        };
        let seq = self
            .record(OutboundRecord {
                created_at,
                at: OffsetDateTime::now_utc(),
                request,
                attempt_id: None,
                attempt: None,
                finish: Some(fin.clone()),
            })
            .await;
        self.wait_shipped(seq).await;
    }

    async fn record(&self, r: OutboundRecord) -> Option<u64> {
        self.recorder.record_at(Record::Outbound(Box::new(r))).await
    }

    /// Waits until the journal is shipped up to `seq`, for at most [`READ_YOUR_WRITES`], unless
    /// shipping is failing (PostgreSQL away).
    async fn wait_shipped(&self, seq: Option<u64>) {
        let Some(seq) = seq else { return };
        let status = &self.recorder.status;
        let until = tokio::time::Instant::now() + READ_YOUR_WRITES;
        loop {
            let shipped = status.shipped_changed.notified();
            tokio::pin!(shipped);
            shipped.as_mut().enable();
            let failing = !status.db_ok.load(Ordering::Acquire)
                && status
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_some();
            if status.shipped.load(Ordering::Acquire) >= seq || failing {
                return;
            }
            if tokio::time::timeout_at(until, shipped).await.is_err() {
                return;
            }
        }
    }
}
