//! Recording, in one place: what svamlgate keeps of every callback and error, and where it goes.
//!
//! A callback's whole record — the event, the reply about to be sent, the gate's verdict, a rejected
//! candidate, the upstream exchange, the call-state change — is one [`Record`]. The reply path appends
//! it to the local [`journal`] and waits until it is durable (group commit: one `fdatasync` for every
//! record that arrived meanwhile) before the reply is released; nothing on the reply path waits for
//! PostgreSQL. The [`shipper`] moves journal records into PostgreSQL in batches, in order and
//! idempotently, whenever the database answers. [`replay`] keeps the recent dedup keys in memory
//! (rebuilt from the journal at start), so replays are answered with the stored reply through a
//! restart and through a database outage.
//!
//! Should the journal itself fail or stall (a full or broken disk, or its disk limit reached), the
//! caller is still answered: the wait is capped at [`JOURNAL_BUDGET`], and the record is held in a
//! bounded [`memory`] queue that the shipper empties into PostgreSQL (or back into the journal once it
//! works). Only when that queue is full too is a record dropped, and every drop is counted.
//!
//! Records are written in a versioned format ([`encode`], [`decode`]). Format 2 (this release) is a
//! tag byte `2`, the length of the record's JSON (u32 LE), the JSON of the record without the
//! callback's body, then the body's bytes as they arrived. Format 1 was the JSON envelope
//! `{"v":1,"record":{…}}` with the body in base64 inside; format 0 the bare record
//! (`{"callback":{…}}`). Both are still read.

pub mod build;
pub mod journal;
pub mod memory;
pub mod outbound;
pub mod pacer;
pub mod position;
pub mod replay;
pub mod ship;
pub mod shipper;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::outbound::{AttemptRecord, FinalRecord, NewOutbound};
use crate::error::ErrorRecord;
use crate::events::EventKind;
use crate::flows::state::CallState;
use crate::metrics::Metrics;
use crate::outcome::{FallbackReason, GateVerdict, ReplySource, SignatureState};
pub use journal::Journal;
use journal::{Rejected, Throttle};
use memory::{Held, Memory};

/// Longest the reply path waits for its record to be durable. Past it the reply goes out anyway (the
/// record is still written when the disk catches up) and the delay is counted.
pub const JOURNAL_BUDGET: Duration = Duration::from_millis(500);

/// A callback as first recorded, before its reply is known. Serializable so that it can wait in
/// the journal ([`crate::recording`]) until it is shipped.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewCallback {
    /// Row id (UUIDv7).
    pub id: Uuid,
    /// Reference id.
    pub reference: String,
    /// Arrival time.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// The event (an unknown one with its name as sent); `Unknown("")` when the body was not an
    /// event. Stored as text (`callbacks.event_type`).
    pub event_type: EventKind,
    /// Whether the event type is one of the five.
    pub event_known: bool,
    /// Call id.
    pub callid: Option<String>,
    /// Application key.
    pub application_key: Option<String>,
    /// Event timestamp.
    #[serde(with = "time::serde::rfc3339::option")]
    pub event_timestamp: Option<OffsetDateTime>,
    /// Raw body. Not in the record's JSON: format 2 carries it after the JSON as it is (formats 0
    /// and 1 had it in the JSON, in base64, which is still read).
    #[serde(
        skip_serializing,
        default,
        deserialize_with = "crate::recording::base64_bytes::deserialize"
    )]
    pub raw_body: Vec<u8>,
    /// Whether `raw_body` parsed as an event. The journal keeps only the raw bytes; the shipper
    /// parses them again into the `body` column (one parse instead of a serialize and a parse).
    #[serde(default)]
    pub body_is_json: bool,
    /// Parse warnings.
    pub parse_warnings: Option<Value>,
    /// Whether the signature was checked.
    pub signature: SignatureState,
    /// Duplicate-detection key.
    pub dedup_key: Option<String>,
    /// Peer address.
    pub remote_addr: Option<String>,
    /// Request path.
    pub path: String,
}

/// How a callback was answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallbackOutcome {
    /// HTTP status.
    pub http_status: u16,
    /// Reply body (SVAML) when not empty, as the JSON that was sent (kept raw: it is written to the
    /// journal and shipped without being parsed again).
    pub reply: Option<Box<RawValue>>,
    /// What produced the reply.
    pub reply_source: ReplySource,
    /// Why a fallback went out.
    pub fallback_reason: Option<FallbackReason>,
    /// Gate report of what went out (raw JSON, as for `reply`).
    pub validation: Option<Box<RawValue>>,
    /// Handling latency.
    pub latency_us: i64,
    /// Flow that produced it.
    pub flow_id: Option<i64>,
    /// Flow version.
    pub flow_version: Option<i32>,
    /// Flow node.
    pub flow_node: Option<String>,
    /// Route chosen.
    pub route_id: Option<i64>,
    /// What the gate said of the decided reply.
    #[serde(default)]
    pub gate_verdict: Option<GateVerdict>,
}

impl CallbackOutcome {
    /// A 200 answered from `source`, with nothing else known yet.
    pub fn answered(reply_source: ReplySource) -> CallbackOutcome {
        CallbackOutcome {
            http_status: 200,
            reply: None,
            reply_source,
            fallback_reason: None,
            validation: None,
            latency_us: 0,
            flow_id: None,
            flow_version: None,
            flow_node: None,
            route_id: None,
            gate_verdict: None,
        }
    }

    /// Whether the reply that went out had the gate's approval (it passed, or it is a
    /// pre-validated fallback); false when observe mode sent an invalid one as it was.
    pub fn gate_passed(&self) -> bool {
        self.gate_verdict != Some(GateVerdict::Observed)
    }
}

/// A reply the gate stopped (or a source answer that could not be used), kept with its report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RejectedReply {
    /// Row id.
    pub id: Uuid,
    /// Reference of its 42202 error row.
    pub reference: String,
    /// Event type.
    pub event_type: EventKind,
    /// Source that produced it.
    pub source: ReplySource,
    /// The reply, when it was JSON.
    pub reply: Option<Value>,
    /// The reply as text, when it was not JSON.
    pub raw_reply: Option<String>,
    /// The gate report (the same text as the callback's `validation`), or why it could not be used.
    pub report: Box<RawValue>,
}

/// What the customer's app answered in proxy mode.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpstreamExchange {
    /// Where the callback was forwarded.
    pub url: String,
    /// HTTP status, when an answer arrived.
    pub status: Option<u16>,
    /// Answer body (truncated).
    pub body: Option<String>,
    /// Time until answer or failure.
    pub latency_us: i64,
    /// Failure code.
    pub failure: Option<String>,
}

/// A change of a call's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum CallStateChange {
    /// The call is (still) in progress, here.
    Set {
        /// Call id.
        callid: String,
        /// Its state.
        state: Box<CallState>,
    },
    /// The call ended (DICE).
    Ended {
        /// Call id.
        callid: String,
    },
}

/// Sinch's report that it could not use a reply: Notify `callingerror` (errorCode 40001, "Illegal
/// SVAML") or DICE `reason: CALLBACKERROR`. Shipped as a mark on the reply svamlgate last sent on
/// the call (`callbacks.rejected_by_sinch`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SinchReport {
    /// `callingerror` (Notify) or `callbackerror` (DICE).
    pub kind: String,
    /// Call id.
    pub callid: String,
    /// Notify `errorCode`.
    pub error_code: Option<i64>,
    /// Notify `errorMsg`.
    pub message: Option<String>,
    /// DICE `reason`.
    pub reason: Option<String>,
    /// DICE `result`.
    pub result: Option<String>,
}

/// Everything recorded for one callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallbackRecord {
    /// The callback as received.
    pub callback: NewCallback,
    /// How it was answered.
    pub outcome: CallbackOutcome,
    /// For a replay: the original callback.
    pub duplicate_of: Option<Uuid>,
    /// Error rows that belong to it (the 42202 of a rejected reply, a parse error).
    pub errors: Vec<ErrorRecord>,
    /// The candidate reply that did not go out.
    pub rejected: Option<RejectedReply>,
    /// The proxy-mode exchange.
    pub upstream: Option<UpstreamExchange>,
    /// The call-state change it caused.
    pub call_state: Option<CallStateChange>,
    /// Sinch's report that it could not use an earlier reply of this call.
    #[serde(default)]
    pub sinch_report: Option<SinchReport>,
}

impl CallbackRecord {
    /// A record with nothing attached yet (no errors, rejection, exchange, state change or report).
    pub fn new(callback: NewCallback, outcome: CallbackOutcome) -> CallbackRecord {
        CallbackRecord {
            callback,
            outcome,
            duplicate_of: None,
            errors: Vec::new(),
            rejected: None,
            upstream: None,
            call_state: None,
            sinch_report: None,
        }
    }
}

/// A request to Sinch's Calling API at one of its stages: recorded, one attempt made, or ended.
/// Each stage carries the request itself, so that whichever reaches PostgreSQL first creates its row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboundRecord {
    /// When the request was first recorded (`outbound_requests.created_at`).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the stage was recorded.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The request.
    pub request: NewOutbound,
    /// Row id of the attempt (fixed when recorded, so that shipping it twice is harmless).
    pub attempt_id: Option<Uuid>,
    /// One attempt and Sinch's answer to it.
    pub attempt: Option<AttemptRecord>,
    /// How the request ended.
    pub finish: Option<FinalRecord>,
}

/// One journal record. Externally tagged (`{"callback": {…}}`), so that reading one back needs no
/// buffering of the whole record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Record {
    /// A callback and all that belongs to it.
    Callback(Box<CallbackRecord>),
    /// An error that belongs to no callback (a refused or malformed request).
    Error(Box<ErrorRecord>),
    /// A request to Sinch's Calling API (format 1 on).
    Outbound(Box<OutboundRecord>),
}

impl Record {
    /// Metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Callback(_) => "callback",
            Record::Error(_) => "error",
            Record::Outbound(_) => "outbound",
        }
    }
}

/// The record format written by this release (see the module documentation). Formats 0 and 1
/// (JSON, the body in base64) are still read.
pub const FORMAT_VERSION: u32 = 2;

/// Bytes before the JSON of a format-2 record: the tag, then the JSON's length (u32 LE).
const FRAMED_HEADER: usize = 5;

/// Why a journal record could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum Undecodable {
    /// A later release wrote it.
    #[error("written in record format {0}, newer than this release's {FORMAT_VERSION}")]
    Newer(u32),
    /// Not a record of its format.
    #[error("not a record: {0}")]
    Invalid(#[from] serde_json::Error),
    /// A JSON object with no record in it.
    #[error("no record in it")]
    Empty,
    /// A format-2 record whose framing does not hold (cut short, or a body after a record that
    /// has none).
    #[error("not a record: {0}")]
    Framing(&'static str),
}

/// Encodes a record for the journal, in this release's format: the tag byte, the length of the
/// JSON, the JSON of the record (without the callback's body), then the body as it arrived (no
/// base64, no escaping: the largest field of a callback record is copied once).
pub fn encode(record: &Record) -> serde_json::Result<Vec<u8>> {
    let body: &[u8] = match record {
        Record::Callback(c) => &c.callback.raw_body,
        Record::Error(_) | Record::Outbound(_) => &[],
    };
    // A callback record's JSON is one to three KB: one allocation in the common case.
    let mut out = Vec::with_capacity(FRAMED_HEADER + 3072 + body.len());
    out.push(FORMAT_VERSION as u8);
    out.extend_from_slice(&[0; 4]);
    serde_json::to_writer(&mut out, record)?;
    let len = u32::try_from(out.len() - FRAMED_HEADER)
        .map_err(|_| serde::ser::Error::custom("record larger than 4 GiB"))?;
    out[1..FRAMED_HEADER].copy_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

/// Decodes a journal record of this format or an earlier one: format 2 (framed, see [`encode`]),
/// format 1 (`{"v":1,"record":{…}}`) or format 0 (`{"callback":{…}}` or `{"error":{…}}`, without
/// envelope). A JSON record starts with `{` (or white space); a framed one with its format number.
pub fn decode(payload: &[u8]) -> Result<Record, Undecodable> {
    match payload.first() {
        Some(&tag) if tag < 0x20 && !matches!(tag, b'\t' | b'\n' | b'\r') => {
            decode_framed(tag, payload)
        }
        _ => decode_json(payload),
    }
}

/// A record of format 2 (or a later framed one, which is refused as newer).
fn decode_framed(tag: u8, payload: &[u8]) -> Result<Record, Undecodable> {
    match u32::from(tag) {
        FORMAT_VERSION => {}
        v if v > FORMAT_VERSION => return Err(Undecodable::Newer(v)),
        _ => return Err(Undecodable::Framing("no framed record format below 2")),
    }
    let len = payload
        .get(1..FRAMED_HEADER)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
        .ok_or(Undecodable::Framing("cut short in its header"))?;
    let json_end = usize::try_from(len)
        .ok()
        .and_then(|n| n.checked_add(FRAMED_HEADER))
        .filter(|&end| end <= payload.len())
        .ok_or(Undecodable::Framing("cut short in its JSON"))?;
    let body = &payload[json_end..];
    let mut record: Record = serde_json::from_slice(&payload[FRAMED_HEADER..json_end])?;
    match &mut record {
        Record::Callback(c) => c.callback.raw_body = body.to_vec(),
        Record::Error(_) | Record::Outbound(_) if !body.is_empty() => {
            return Err(Undecodable::Framing("a body after a record that has none"))
        }
        Record::Error(_) | Record::Outbound(_) => {}
    }
    Ok(record)
}

/// A JSON record: format 1 (`{"v":1,"record":{…}}`) or format 0 (the bare record).
fn decode_json(payload: &[u8]) -> Result<Record, Undecodable> {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(default)]
        v: u32,
        record: Option<Record>,
        callback: Option<Box<CallbackRecord>>,
        error: Option<Box<ErrorRecord>>,
    }
    #[derive(Deserialize)]
    struct Version {
        #[serde(default)]
        v: u32,
    }
    match serde_json::from_slice::<Envelope>(payload) {
        Ok(e) if e.v > FORMAT_VERSION => Err(Undecodable::Newer(e.v)),
        Ok(Envelope {
            record: Some(r), ..
        }) => Ok(r),
        Ok(Envelope {
            callback: Some(c), ..
        }) => Ok(Record::Callback(c)),
        Ok(Envelope { error: Some(e), .. }) => Ok(Record::Error(e)),
        Ok(_) => Err(Undecodable::Empty),
        Err(e) => match serde_json::from_slice::<Version>(payload) {
            Ok(v) if v.v > FORMAT_VERSION => Err(Undecodable::Newer(v.v)),
            _ => Err(Undecodable::Invalid(e)),
        },
    }
}

/// Shipping progress, for readiness and metrics.
#[derive(Debug, Default)]
pub struct ShipStatus {
    /// Highest durable seq.
    pub durable: AtomicU64,
    /// Highest shipped seq.
    pub shipped: AtomicU64,
    /// Unix ms when the shipper last had nothing left to ship.
    pub caught_up_at_ms: AtomicU64,
    /// Whether the last attempt to write to PostgreSQL succeeded.
    pub db_ok: AtomicBool,
    /// Last shipping error.
    pub last_error: Mutex<Option<String>>,
    /// Whether the journal was above 90% of its disk limit at the last housekeeping.
    pub near_limit: AtomicBool,
    /// Callbacks being handled right now (the shipper's measure of how busy the reply path is).
    pub in_flight: AtomicU64,
    /// Records the journal could not take, waiting for the shipper.
    pub memory: Memory,
    /// Rate limits of the recorder's error logs.
    logs: Mutex<RecorderLogs>,
    /// Readers waiting for the shipper ([`position`]): woken at every shipped batch.
    pub shipped_moved: tokio::sync::Notify,
    /// A reader waits: the shipper ships at once (no linger, no holding back) up to [`ShipStatus::wanted`].
    pub urge: tokio::sync::Notify,
    /// Highest journal position a reader waits for.
    pub wanted: AtomicU64,
}

/// The recorder's error logs, each at most once per 10 s, with counts.
#[derive(Debug)]
struct RecorderLogs {
    held: Throttle,
    dropped: Throttle,
    slow: Throttle,
}

impl Default for RecorderLogs {
    fn default() -> Self {
        let every = Duration::from_secs(10);
        RecorderLogs {
            held: Throttle::new(every),
            dropped: Throttle::new(every),
            slow: Throttle::new(every),
        }
    }
}

/// Counts one callback as in flight for as long as it lives ([`ShipStatus::in_flight`]).
#[derive(Debug)]
pub struct InFlight<'a>(&'a ShipStatus);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ShipStatus {
    /// The status of a journal just opened: what is owed is known before the shipper's first
    /// round (which may wait for PostgreSQL).
    pub fn new(journal: &Journal) -> ShipStatus {
        let status = ShipStatus::default();
        status
            .durable
            .store(*journal.durable().borrow(), Ordering::Release);
        status.shipped.store(journal.shipped(), Ordering::Release);
        status.caught_up_at_ms.store(now_ms(), Ordering::Release);
        status
    }

    fn logs(&self) -> std::sync::MutexGuard<'_, RecorderLogs> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks a callback in flight until the guard is dropped.
    pub fn enter(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self)
    }

    /// Records not yet in PostgreSQL: in the journal, and held in memory.
    pub fn lag_records(&self) -> u64 {
        self.durable
            .load(Ordering::Acquire)
            .saturating_sub(self.shipped.load(Ordering::Acquire))
            + self.memory.len()
    }

    /// Seconds since the shipper was last caught up (0 when it is).
    pub fn lag_seconds(&self) -> f64 {
        if self.lag_records() == 0 {
            return 0.0;
        }
        let at = self.caught_up_at_ms.load(Ordering::Acquire);
        (now_ms().saturating_sub(at)) as f64 / 1000.0
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The reply path's handle to recording; cheap to clone.
#[derive(Debug, Clone)]
pub struct Recorder {
    journal: Journal,
    metrics: Arc<Metrics>,
    /// Shipping progress.
    pub status: Arc<ShipStatus>,
}

impl Recorder {
    /// Wraps an open journal.
    pub fn new(journal: Journal, metrics: Arc<Metrics>, status: Arc<ShipStatus>) -> Recorder {
        Recorder {
            journal,
            metrics,
            status,
        }
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Appends a record and waits (at most [`JOURNAL_BUDGET`]) until it is durable. Returns whether
    /// it is. When the journal cannot take it, the record is held in memory for the shipper (and
    /// dropped, counted, only when that is full too); the caller answers anyway.
    pub async fn record(&self, record: Record) -> bool {
        self.record_at(record).await.is_some()
    }

    /// As [`Recorder::record`], returning the record's journal sequence number when it is durable.
    pub async fn record_at(&self, record: Record) -> Option<u64> {
        let kind = record.kind();
        let payload = match encode(&record) {
            Ok(p) => p,
            Err(e) => {
                self.metrics
                    .inc("svamlgate_record_failures_total", &[("kind", "encode")]);
                tracing::error!(error = %e, kind, "could not encode a record; it is lost");
                return None;
            }
        };
        let started = std::time::Instant::now();
        let journal = self.journal.clone();
        let mut append = Box::pin(async move { journal.append_or_return(payload).await });
        let result = tokio::time::timeout(JOURNAL_BUDGET, &mut append).await;
        self.metrics
            .observe("svamlgate_journal_append_seconds", &[], started.elapsed());
        match result {
            Ok(Ok(seq)) => {
                self.status.durable.fetch_max(seq, Ordering::AcqRel);
                Some(seq)
            }
            Ok(Err(rejected)) => {
                self.hold(rejected, kind);
                None
            }
            Err(_) => {
                self.metrics.inc(
                    "svamlgate_record_failures_total",
                    &[("kind", "journal_slow")],
                );
                if let Some(n) = self.status.logs().slow.hit(1) {
                    tracing::error!(
                        kind,
                        records = n,
                        "the journal did not make records durable within {} ms; answered anyway (each is held in memory if the write then fails)",
                        JOURNAL_BUDGET.as_millis()
                    );
                }
                // The write goes on: should it fail, the record is held in memory all the same.
                let me = self.clone();
                tokio::spawn(async move {
                    match append.await {
                        Ok(seq) => {
                            me.status.durable.fetch_max(seq, Ordering::AcqRel);
                        }
                        Err(rejected) => me.hold(rejected, kind),
                    }
                });
                None
            }
        }
    }

    /// A record the journal handed back: held in memory, or dropped (counted) when memory is full.
    fn hold(&self, rejected: Rejected, kind: &'static str) {
        let Rejected { error, payload } = rejected;
        let label = if error.kind() == std::io::ErrorKind::StorageFull {
            "journal_limit"
        } else {
            "journal"
        };
        self.metrics
            .inc("svamlgate_record_failures_total", &[("kind", label)]);
        let held = if payload.is_empty() {
            // The writer is gone and took the record with it.
            self.status.memory.note_dropped();
            false
        } else {
            self.status.memory.push(Held { payload, kind })
        };
        if held {
            if let Some(n) = self.status.logs().held.hit(1) {
                tracing::error!(error = %error, records = n, in_memory = self.status.memory.len(),
                    "the journal cannot take records; they are held in memory and shipped from there");
            }
        } else {
            self.metrics
                .inc("svamlgate_records_dropped_total", &[("kind", kind)]);
            if let Some(n) = self.status.logs().dropped.hit(1) {
                tracing::error!(error = %error, dropped = n, dropped_since_start = self.status.memory.dropped(),
                    "RECORDS DROPPED: the journal cannot take them and memory is full (PostgreSQL away too); answered callbacks will be missing from PostgreSQL");
            }
        }
    }

    /// Records an error that belongs to no callback, off the caller's path (HTTP-layer errors).
    pub fn error_in_background(&self, error: ErrorRecord) {
        let me = self.clone();
        tokio::spawn(async move {
            me.record(Record::Error(Box::new(error))).await;
        });
    }
}

/// Raw bodies in base64 text, as journal records of formats 0 and 1 carry them.
pub mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer};

    /// Reads base64 back into bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn callback_record(raw_body: Vec<u8>) -> Record {
        let c = NewCallback {
            id: Uuid::now_v7(),
            reference: "r".into(),
            received_at: time::OffsetDateTime::now_utc(),
            event_type: "ice".into(),
            event_known: true,
            callid: Some("c".into()),
            application_key: None,
            event_timestamp: None,
            raw_body,
            body_is_json: false,
            parse_warnings: None,
            signature: SignatureState::Verified,
            dedup_key: Some("k".into()),
            remote_addr: None,
            path: "/sinch/callback".into(),
        };
        let o = CallbackOutcome {
            http_status: 200,
            latency_us: 5,
            ..CallbackOutcome::answered(ReplySource::Fallback)
        };
        Record::Callback(Box::new(CallbackRecord {
            call_state: Some(CallStateChange::Ended { callid: "c".into() }),
            ..CallbackRecord::new(c, o)
        }))
    }

    /// Everything a record holds, comparable: its JSON (without the body) and the body.
    fn contents(r: &Record) -> (Value, Vec<u8>) {
        let body = match r {
            Record::Callback(c) => c.callback.raw_body.clone(),
            _ => Vec::new(),
        };
        (serde_json::to_value(r).expect("json"), body)
    }

    /// A record written by the release before (format 1), from its journal: an ICE answered by a
    /// flow (`tests/fixtures/journal/record-format1.json`).
    const FORMAT1: &[u8] = include_bytes!("../../tests/fixtures/journal/record-format1.json");

    #[test]
    fn records_round_trip_in_the_framed_format() {
        let body = vec![0, 159, 146, 150, b'{', b'"', b'\\'];
        let r = callback_record(body.clone());
        let encoded = encode(&r).expect("encodes");
        assert_eq!(encoded[0], 2, "the format tag");
        let len = u32::from_le_bytes(encoded[1..5].try_into().expect("4 bytes")) as usize;
        let json: Value = serde_json::from_slice(&encoded[5..5 + len]).expect("json");
        assert!(json["callback"]["callback"].get("raw_body").is_none());
        assert_eq!(&encoded[5 + len..], &body[..], "the body as it arrived");
        let back = decode(&encoded).expect("decodes");
        assert_eq!(contents(&back), contents(&r));
        let Record::Callback(back) = back else {
            panic!("kind changed")
        };
        assert_eq!(back.callback.signature, SignatureState::Verified);
        assert_eq!(back.outcome.reply_source, ReplySource::Fallback);
        assert!(serde_json::from_str::<Record>(r#"{"nonsense":{}}"#).is_err());

        // Records without a body, and a callback with an empty one.
        let e = Record::Error(Box::new(
            crate::error::ApiError::new(crate::catalog::code::INVALID_REQUEST, "x").record(),
        ));
        assert_eq!(
            contents(&decode(&encode(&e).expect("e")).expect("d")),
            contents(&e)
        );
        let empty = callback_record(Vec::new());
        let encoded = encode(&empty).expect("encodes");
        assert_eq!(contents(&decode(&encoded).expect("d")), contents(&empty));
    }

    #[test]
    fn records_of_formats_1_and_0_are_still_decoded() {
        let old = decode(FORMAT1).expect("format 1 is read");
        let Record::Callback(c) = &old else {
            panic!("a callback record")
        };
        assert_eq!(c.callback.callid.as_deref(), Some("fixture-0"));
        let event: Value = serde_json::from_slice(&c.callback.raw_body).expect("the ICE");
        assert_eq!(event["callid"], "fixture-0");
        assert_eq!(c.outcome.flow_node.as_deref(), Some("welcome"));
        assert!(c
            .outcome
            .reply
            .as_ref()
            .is_some_and(|r| r.get().contains("runMenu")));
        assert!(matches!(c.call_state, Some(CallStateChange::Set { .. })));
        // Written again in this release's format, it reads back the same.
        let again = decode(&encode(&old).expect("encodes")).expect("decodes");
        assert_eq!(contents(&again), contents(&old));
        // Format 0: the same record without the envelope.
        let envelope: Value = serde_json::from_slice(FORMAT1).expect("json");
        let bare = serde_json::to_vec(&envelope["record"]).expect("json");
        assert_eq!(
            contents(&decode(&bare).expect("format 0 is read")),
            contents(&old)
        );
    }

    #[test]
    fn records_that_cannot_be_decoded_say_why() {
        assert!(matches!(
            decode(br#"{"v":3,"record":{"callback":{"new":true}}}"#),
            Err(Undecodable::Newer(3))
        ));
        assert!(matches!(
            decode(br#"{"v":7,"record":{"telepathy":{}}}"#),
            Err(Undecodable::Newer(7))
        ));
        assert!(matches!(
            decode(br#"{"nonsense":{}}"#),
            Err(Undecodable::Empty)
        ));
        assert!(matches!(
            decode(br#"{"v":1,"record":{"telepathy":{}}}"#),
            Err(Undecodable::Invalid(_))
        ));
        assert!(matches!(decode(b"\xff\x00"), Err(Undecodable::Invalid(_))));
        // Framed: a later format, a tag no format had, cut short, a body where none belongs.
        assert!(matches!(
            decode(b"\x03anything"),
            Err(Undecodable::Newer(3))
        ));
        assert!(matches!(decode(b"\x01{}"), Err(Undecodable::Framing(_))));
        let encoded = encode(&callback_record(b"{}".to_vec())).expect("encodes");
        assert!(matches!(
            decode(&encoded[..3]),
            Err(Undecodable::Framing(_))
        ));
        let len = u32::from_le_bytes(encoded[1..5].try_into().expect("4 bytes")) as usize;
        assert!(matches!(
            decode(&encoded[..5 + len - 1]),
            Err(Undecodable::Framing(_))
        ));
        let e = Record::Error(Box::new(
            crate::error::ApiError::new(crate::catalog::code::INVALID_REQUEST, "x").record(),
        ));
        let mut with_body = encode(&e).expect("encodes");
        with_body.extend_from_slice(b"stray");
        assert!(matches!(decode(&with_body), Err(Undecodable::Framing(_))));
    }
}
