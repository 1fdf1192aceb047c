//! One callback, end to end, independent of HTTP: verify the signature, parse the event, detect replays,
//! decide the reply under the deadline, pass it through the gate, record everything.

mod decide;
mod signed;
mod verdict;

use std::sync::Arc;

use actix_web::http::header::HeaderMap;
use actix_web::web::Bytes;
use std::time::Instant;

use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::app::AppState;
use crate::catalog::code;
use crate::error::ApiError;
use crate::events::{parse_event, EventError, EventKind, ParsedEvent};
use crate::feedback;
use crate::live::shadow::ShadowJob;
use crate::recording::build::Arrival;
use crate::recording::replay::{hex, Claim, Original};
use crate::recording::{CallbackRecord, NewCallback, Record};
use crate::redact::Masked;
use crate::sources;
use crate::svaml::Target;

/// A callback request as received, reduced to what matters.
#[derive(Debug, Clone)]
pub struct InboundCallback {
    /// HTTP method.
    pub method: String,
    /// Path as received (without query string).
    pub path: String,
    /// Query string as received (without `?`), for explaining a signature refusal.
    pub query: Option<String>,
    /// content-type header, verbatim.
    pub content_type: Option<String>,
    /// x-timestamp header, verbatim.
    pub x_timestamp: Option<String>,
    /// authorization header, verbatim.
    pub authorization: Option<String>,
    /// All headers, for refusal records (the signature is stripped before storing). Kept as the
    /// HTTP layer's map (shared buffers, no copy) and turned into text only for a refusal.
    pub headers: HeaderMap,
    /// Peer address.
    pub remote_addr: Option<String>,
    /// Raw body.
    pub body: Vec<u8>,
    /// When the first byte was handled.
    pub started: Instant,
}

/// What to answer.
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackReply {
    /// HTTP status (200 for every accepted callback).
    pub status: u16,
    /// JSON body as sent, None for an empty 200.
    pub body: Option<Bytes>,
    /// Reference of the recorded callback.
    pub reference: String,
    /// Event type (for logs).
    pub event_type: EventKind,
    /// Call id (for logs).
    pub callid: Option<String>,
}

/// Key of a byte-identical signed request: everything the signature covers, plus the signature.
pub fn dedup_key(req: &InboundCallback) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [
        req.method.as_bytes(),
        req.path.as_bytes(),
        req.content_type.as_deref().unwrap_or("").as_bytes(),
        req.x_timestamp.as_deref().unwrap_or("").as_bytes(),
        req.authorization.as_deref().unwrap_or("").as_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.update(&req.body);
    h.finalize().into()
}

/// A reply as the JSON bytes that go out (and that a replay gets again).
fn to_body(reply: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(reply).unwrap_or_else(|_| b"{}".to_vec()))
}

/// Handles one callback. `Err` is an error envelope to answer with (already queued for recording).
pub async fn handle(state: &AppState, mut req: InboundCallback) -> Result<CallbackReply, ApiError> {
    let received_at = OffsetDateTime::now_utc();
    let _in_flight = state.recorder.status.enter();

    // 1. Signature.
    let signed = signed::check(state, &req, received_at).await?;

    // 2. Parse.
    let dedup = dedup_key(&req);
    let mut new = NewCallback::arrived(Arrival {
        received_at,
        signature: signed.state,
        signed_by: signed.key,
        dedup_key: hex(&dedup),
        remote_addr: req.remote_addr.clone(),
        path: req.path.clone(),
        // The body moves into the record (forwarding reads it from there): no copy on the reply path.
        body: std::mem::take(&mut req.body),
    });
    let event = match parse_event(&new.raw_body) {
        Ok(ev) => ev,
        Err(e) => return Err(reject_unparseable(state, new, e, &req).await),
    };
    new.read(&event);
    note_span(&event, &new.reference);
    let canary = crate::canary::is_canary(event.callid.as_deref());

    // 3. Replays: a byte-identical signed request gets the stored reply and is never processed twice.
    let original = match state.replays.claim(&dedup, new.id, &new.reference) {
        Claim::New(original) => original,
        Claim::Duplicate(original) => {
            return Ok(answer_duplicate(state, new, &event, original, &req).await)
        }
    };

    // 4. Decide and gate (or take in an event without a reply).
    let mut record = CallbackRecord::deciding(new, signed.reported);
    let answer = answer(state, &event, &mut record, &req, canary).await;

    // 5. Record, then answer: the reply is released once its record is durable in the journal.
    Ok(release(state, record, &original, answer, event, &req, canary).await)
}

/// The event and its reference on the request's span.
fn note_span(event: &ParsedEvent, reference: &str) {
    let span = tracing::Span::current();
    span.record("event", event.kind.label());
    span.record("reference", reference);
    if let Some(c) = &event.callid {
        span.record("callid", c.as_str());
    }
}

/// What step 4 hands to step 5.
#[derive(Default)]
struct Answer {
    /// The reply's bytes, None for an empty 200.
    body: Option<Bytes>,
    /// The shadow evaluation to run once the reply is released.
    shadow: Option<ShadowJob>,
}

/// Step 4: the reply of an ICE, ACE or PIE; what an unknown event, a DICE or a Notify tells; and
/// the call-state change either caused.
async fn answer(
    state: &AppState,
    event: &ParsedEvent,
    record: &mut CallbackRecord,
    req: &InboundCallback,
    canary: bool,
) -> Answer {
    let mut answer = Answer::default();
    if let Some(target) = event.kind.reply_target() {
        answer = reply(state, event, target, record, req, canary).await;
    } else if matches!(event.kind, EventKind::Unknown(_)) {
        tracing::warn!(reference = %record.callback.reference, "unknown event type stored and acknowledged");
    } else {
        let report = feedback::report_of(event);
        if let Some(report) = &report {
            feedback::observe(&state.calls, &state.metrics, &state.alerts, report);
        }
        record.observed(report, sources::observe_final(event));
    }
    if let Some(change) = record.call_state.as_ref().filter(|_| !canary) {
        state.calls.apply(change, record.callback.received_at);
    }
    answer
}

/// Decides and gates the reply of an ICE, ACE or PIE, records it as sent and notes it on its call.
async fn reply(
    state: &AppState,
    event: &ParsedEvent,
    target: Target,
    record: &mut CallbackRecord,
    req: &InboundCallback,
    canary: bool,
) -> Answer {
    let reply = decide::decide_and_gate(state, event, target, record, req).await;
    let mut shadow = None;
    if record.outcome.route_id.is_some() {
        shadow = crate::live::shadow::job(
            &state.live.routes(),
            event,
            &record.callback.raw_body,
            &record.outcome,
            &record.callback.reference,
            record.callback.received_at,
            &reply,
        );
    }
    // Serialized once: the record keeps the text, the answer and the replay index its bytes.
    let text = serde_json::value::to_raw_value(&reply).ok();
    let body = text
        .as_ref()
        .map(|t| Bytes::copy_from_slice(t.get().as_bytes()));
    record.sent(text);
    if let Some(c) = event.callid.as_ref().filter(|_| !canary) {
        let passed = record.outcome.gate_passed();
        let source = record.outcome.reply_source;
        let cookies = crate::svaml::cookies_set(&reply);
        state.calls.note_reply(
            c,
            &record.callback.reference,
            target,
            source,
            passed,
            cookies,
        );
    }
    Answer { body, shadow }
}

/// Step 5: journals the record, releases the reply to replays of it, hands the shadow job over,
/// and counts and logs the callback.
async fn release(
    state: &AppState,
    mut record: CallbackRecord,
    original: &Original,
    answer: Answer,
    event: ParsedEvent,
    req: &InboundCallback,
    canary: bool,
) -> CallbackReply {
    record.took(req.started);
    let outcome_label = record.outcome_label();
    let latency_us = record.outcome.latency_us;
    let reference = record.callback.reference.clone();
    let event_type = record.callback.event_type.clone();
    state
        .recorder
        .record(Record::Callback(Box::new(record)))
        .await;
    original.answered(200, answer.body.clone());
    // A shadowed route: the candidate is evaluated off the reply path, after the reply is released.
    if let Some(job) = answer.shadow {
        state.shadow.offer(job);
    }
    // The canary is counted apart from real calls (and recorded with a reserved call id).
    state.metrics.inc(
        if canary {
            "svamlgate_canary_callbacks_total"
        } else {
            "svamlgate_callbacks_total"
        },
        &[("event", event.kind.label()), ("outcome", outcome_label)],
    );
    tracing::info!(
        reference = %reference,
        caller = %Masked(event.caller().unwrap_or("")),
        source = outcome_label,
        latency_us,
        "callback answered"
    );
    CallbackReply {
        status: 200,
        body: answer.body,
        reference,
        event_type,
        callid: event.callid,
    }
}

/// Answers a replay with the original's reply (waiting for it, within the event's deadline, when the
/// original is still in flight) and records the replay as a duplicate of it.
async fn answer_duplicate(
    state: &AppState,
    new: NewCallback,
    event: &ParsedEvent,
    original: Arc<Original>,
    req: &InboundCallback,
) -> CallbackReply {
    state.metrics.inc("svamlgate_duplicates_total", &[]);
    // A DICE or Notify replay has no reply deadline of its own: it waits at most as an ICE would.
    let deadline = state
        .config
        .deadline(event.kind.reply_target().unwrap_or(Target::Ice));
    let left = deadline.saturating_sub(req.started.elapsed());
    let (status, reply) = match original.reply_within(left).await {
        Some(stored) => stored,
        None => (
            200,
            event
                .kind
                .reply_target()
                .map(|t| to_body(state.gate.fallback(t))),
        ),
    };
    tracing::info!(reference = %new.reference, original = %original.reference, "duplicate callback answered with the stored reply");
    let reply_out = CallbackReply {
        status,
        body: reply.clone(),
        reference: new.reference.clone(),
        event_type: new.event_type.clone(),
        callid: new.callid.clone(),
    };
    let record = CallbackRecord::duplicate(new, original.id, status, reply.as_deref(), req.started);
    state
        .recorder
        .record(Record::Callback(Box::new(record)))
        .await;
    reply_out
}

/// Answers a body that is not an event with an error envelope, and records it with the callback.
async fn reject_unparseable(
    state: &AppState,
    new: NewCallback,
    e: EventError,
    req: &InboundCallback,
) -> ApiError {
    let code = match e {
        EventError::MissingEvent => code::MISSING_PARAMETER,
        _ => code::INVALID_REQUEST,
    };
    let err = ApiError::new(code, e.to_string()).with_reference(new.reference.clone());
    state.metrics.inc(
        "svamlgate_callbacks_total",
        &[("event", "invalid"), ("outcome", "rejected")],
    );
    let record = CallbackRecord::unparseable(new, &err, &req.method, req.started);
    state
        .recorder
        .record(Record::Callback(Box::new(record)))
        .await;
    err.already_recorded()
}
