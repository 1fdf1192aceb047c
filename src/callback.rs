//! One callback, end to end, independent of HTTP: verify the signature, parse the event, detect replays,
//! decide the reply under the deadline, pass it through the gate, record everything.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::app::AppState;
use crate::catalog::code;
use crate::db::store::{CallbackOutcome, Claim, NewCallback};
use crate::error::{new_reference, ApiError, RefusalRecord};
use crate::events::{parse_event, EventError, EventKind, ParsedEvent};
use crate::redact::Masked;
use crate::signature::{self, CallbackRequest};
use crate::sources;
use crate::spool::Entry;
use crate::svaml::Target;

/// A callback request as received, reduced to what matters.
#[derive(Debug, Clone)]
pub struct InboundCallback {
    /// HTTP method.
    pub method: String,
    /// Path as received (without query string).
    pub path: String,
    /// content-type header, verbatim.
    pub content_type: Option<String>,
    /// x-timestamp header, verbatim.
    pub x_timestamp: Option<String>,
    /// authorization header, verbatim.
    pub authorization: Option<String>,
    /// All headers (name, value), for refusal records; the signature is stripped before storing.
    pub headers: Vec<(String, String)>,
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
    /// JSON body, None for an empty 200.
    pub body: Option<Value>,
    /// Reference of the recorded callback.
    pub reference: String,
    /// Event type (for logs).
    pub event_type: String,
    /// Call id (for logs).
    pub callid: Option<String>,
}

/// Metric label for an event type: unknown values collapse into one label.
fn event_label(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Ice => "ice",
        EventKind::Ace => "ace",
        EventKind::Dice => "dice",
        EventKind::Pie => "pie",
        EventKind::Notify => "notify",
        EventKind::Unknown(_) => "unknown",
    }
}

fn target_of(kind: &EventKind) -> Option<Target> {
    match kind {
        EventKind::Ice => Some(Target::Ice),
        EventKind::Ace => Some(Target::Ace),
        EventKind::Pie => Some(Target::Pie),
        _ => None,
    }
}

/// Key of a byte-identical signed request: everything the signature covers, plus the signature.
pub fn dedup_key(req: &InboundCallback) -> String {
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
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Headers as stored with a refusal: the signature part of authorization is removed.
fn headers_without_signature(headers: &[(String, String)]) -> Value {
    let map: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| {
            let v = if k.eq_ignore_ascii_case("authorization") {
                match v.split_once(':') {
                    Some((before, _)) => format!("{before}:[signature removed]"),
                    None => "[removed]".to_owned(),
                }
            } else {
                v.clone()
            };
            (k.to_ascii_lowercase(), Value::String(v))
        })
        .collect();
    Value::Object(map)
}

/// Longest a storage call on the reply path may take: a slow or absent database must not make the
/// caller wait (the reply goes out without the record, and the failure is counted and logged).
pub const STORAGE_BUDGET: Duration = Duration::from_millis(250);

async fn bounded<T>(
    f: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    tokio::time::timeout(STORAGE_BUDGET, f)
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut))
}

fn elapsed_us(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX)
}

/// Handles one callback. `Err` is an error envelope to answer with (already queued for recording).
pub async fn handle(state: &AppState, mut req: InboundCallback) -> Result<CallbackReply, ApiError> {
    let received_at = OffsetDateTime::now_utc();

    // 1. Signature.
    let (signature_state, signed_by) = if state.config.verify_signatures {
        let signed_path =
            signature::signed_path(&req.path, state.config.public_path_prefix.as_deref());
        let creq = CallbackRequest {
            method: &req.method,
            path: &signed_path,
            content_type: req.content_type.as_deref(),
            x_timestamp: req.x_timestamp.as_deref(),
            authorization: req.authorization.as_deref(),
            body: &req.body,
        };
        match signature::verify(&state.keys, &creq, received_at, &state.verify_policy) {
            Ok(verified) => ("verified", Some(verified.key)),
            Err(refusal) => {
                let reason = refusal.reason.as_str();
                state
                    .metrics
                    .inc("svamlgate_signature_refusals_total", &[("reason", reason)]);
                let err = ApiError::new(refusal.reason.error_code(), refusal.reason.message());
                tracing::warn!(reference = %err.reference, reason, "callback refused");
                let mut record = err.record();
                record.method = Some(req.method.clone());
                record.path = Some(req.path.clone());
                record.remote_addr = req.remote_addr.clone();
                record.refusal = Some(RefusalRecord {
                    reason: reason.to_owned(),
                    application_key: refusal.key.clone(),
                    headers: headers_without_signature(&req.headers),
                    body_sha256: signature::body_digest(&req.body),
                    body_bytes: req.body.len(),
                });
                state.errors.record(record);
                return Err(err.already_recorded());
            }
        }
    } else {
        ("unverified", None)
    };

    // 2. Parse.
    let id = Uuid::now_v7();
    let reference = new_reference();
    let parsed = parse_event(&req.body);
    let dedup = dedup_key(&req);
    let mut new = NewCallback {
        id,
        reference: reference.clone(),
        received_at,
        event_type: String::new(),
        event_known: false,
        callid: None,
        application_key: signed_by,
        event_timestamp: None,
        // The body moves into the record (forwarding reads it from there): no copy on the reply path.
        raw_body: std::mem::take(&mut req.body),
        body: None,
        parse_warnings: None,
        signature: signature_state,
        dedup_key: Some(dedup),
        remote_addr: req.remote_addr.clone(),
        path: req.path.clone(),
    };
    let event = match parsed {
        Ok(ev) => ev,
        Err(e) => return Err(reject_unparseable(state, new, e, &req).await),
    };
    new.event_type = event.kind.as_str().to_owned();
    new.event_known = !matches!(event.kind, EventKind::Unknown(_));
    new.callid = event.callid.clone();
    if event.application_key.is_some() {
        new.application_key = event.application_key.clone();
    }
    new.event_timestamp = event.timestamp;
    new.body = Some(event.raw.clone());
    if !event.warnings.is_empty() {
        new.parse_warnings = serde_json::to_value(&event.warnings).ok();
    }
    let label = event_label(&event.kind);
    let span = tracing::Span::current();
    span.record("event", label);
    span.record("reference", reference.as_str());
    if let Some(c) = &event.callid {
        span.record("callid", c.as_str());
    }

    // 3. Replays: a byte-identical signed request gets the stored reply and is never processed twice.
    let mut recorded = true;
    match bounded(state.store.claim_callback(&new)).await {
        Ok(Claim::New) => {}
        Ok(Claim::Duplicate(original)) => {
            return Ok(answer_duplicate(state, &new, &event, original, &req).await)
        }
        Err(e) => {
            // The caller must still get an answer: process without duplicate protection, and say so.
            recorded = false;
            state
                .metrics
                .inc("svamlgate_record_failures_total", &[("kind", "callback")]);
            tracing::error!(reference = %reference, error = %e, "could not record callback; answering anyway, spooling the record");
        }
    }

    // 4. Decide and gate.
    let mut outcome = CallbackOutcome {
        http_status: 200,
        reply_source: "none",
        ..Default::default()
    };
    let mut body = None;
    if let Some(target) = target_of(&event.kind) {
        let reply = decide_and_gate(state, &event, target, &new, &req, &mut outcome).await;
        body = Some(reply.clone());
        outcome.reply = Some(reply);
    } else if matches!(event.kind, EventKind::Unknown(_)) {
        tracing::warn!(reference = %reference, "unknown event type stored and acknowledged");
    } else {
        sources::observe_final(state, &event).await;
    }

    // 5. Record the outcome.
    outcome.latency_us = elapsed_us(req.started);
    if recorded {
        if let Err(e) = bounded(state.store.finish_callback(id, &outcome)).await {
            state
                .metrics
                .inc("svamlgate_record_failures_total", &[("kind", "outcome")]);
            tracing::error!(reference = %reference, error = %e, "could not record the reply; spooled");
            state.spool.put(Entry::Outcome {
                id,
                outcome: outcome.clone(),
            });
        }
    } else {
        state.spool.put(Entry::Callback {
            callback: Box::new(new.clone()),
            outcome: Some(outcome.clone()),
        });
    }
    let outcome_label = if new.event_known {
        outcome.reply_source
    } else {
        "unknown_event"
    };
    state.metrics.inc(
        "svamlgate_callbacks_total",
        &[("event", label), ("outcome", outcome_label)],
    );
    tracing::info!(
        reference = %reference,
        caller = %Masked(event.caller().unwrap_or("")),
        source = outcome.reply_source,
        latency_us = outcome.latency_us,
        "callback answered"
    );
    Ok(CallbackReply {
        status: 200,
        body,
        reference,
        event_type: new.event_type,
        callid: event.callid,
    })
}

/// Decides the reply of an ICE, ACE or PIE under its deadline and passes it through the gate;
/// fills in how (source, flow, fallback reason, report) and returns what goes out.
async fn decide_and_gate(
    state: &AppState,
    event: &ParsedEvent,
    target: Target,
    new: &NewCallback,
    req: &InboundCallback,
    outcome: &mut CallbackOutcome,
) -> Value {
    let id = new.id;
    let label = event_label(&event.kind);
    let deadline = state.config.deadline(label);
    let forward = sources::Forward {
        body: &new.raw_body,
        content_type: req.content_type.as_deref(),
        deadline_at: req.started + deadline,
    };
    let remaining = deadline.saturating_sub(req.started.elapsed());
    let decision = tokio::time::timeout(
        remaining,
        sources::decide(state, event, target, id, forward),
    )
    .await
    .unwrap_or_else(|_| {
        sources::Decision::failed(
            "deadline",
            "reply source did not answer before the deadline",
        )
    });
    outcome.flow_id = decision.flow_id;
    outcome.flow_version = decision.flow_version;
    outcome.flow_node = decision.flow_node.clone();
    outcome.route_id = decision.route_id;
    let reply = match decision.candidate {
        Ok(candidate) => {
            let mut verdict = state.gate.pass(target, candidate);
            outcome.validation = serde_json::to_value(&verdict.report).ok();
            let verdict_label = if verdict.passed { "passed" } else { "rejected" };
            state.metrics.inc(
                "svamlgate_gate_replies_total",
                &[("event", label), ("verdict", verdict_label)],
            );
            if verdict.passed {
                outcome.reply_source = decision.source;
            } else {
                for v in verdict.report.errors() {
                    state.metrics.inc(
                        "svamlgate_gate_violations_total",
                        &[("event", label), ("rule", v.code.as_str())],
                    );
                }
                outcome.reply_source = "fallback";
                outcome.fallback_reason = Some("invalid".into());
                let candidate = verdict.rejected.take().unwrap_or(Value::Null);
                let rejection =
                    Rejection::invalid(label, decision.source, candidate, &verdict.report);
                record_rejection(state, id, label, decision.source, rejection, req);
            }
            verdict.reply
        }
        Err(failure) => {
            outcome.reply_source = "fallback";
            outcome.fallback_reason = Some(failure.reason.to_owned());
            if let Some(raw) = &failure.raw_reply {
                let rejection = Rejection::unusable(label, decision.source, raw, &failure);
                record_rejection(state, id, label, decision.source, rejection, req);
            }
            tracing::warn!(reason = failure.reason, message = %failure.message, "fallback reply sent");
            state.gate.fallback(target).clone()
        }
    };
    if let Some(reason) = &outcome.fallback_reason {
        state.metrics.inc(
            "svamlgate_fallbacks_total",
            &[("event", label), ("reason", reason.as_str())],
        );
    }
    state.metrics.observe(
        "svamlgate_reply_duration_seconds",
        &[("event", label), ("source", outcome.reply_source)],
        req.started.elapsed(),
    );
    reply
}

async fn answer_duplicate(
    state: &AppState,
    new: &NewCallback,
    event: &ParsedEvent,
    original: Box<crate::db::store::StoredCallback>,
    req: &InboundCallback,
) -> CallbackReply {
    let mut original = *original;
    let label = event_label(&event.kind);
    state.metrics.inc("svamlgate_duplicates_total", &[]);
    // The original may still be in flight: wait for its reply, within this event's deadline.
    let deadline = state.config.deadline(label);
    while original.http_status.is_none() && req.started.elapsed() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        match state
            .store
            .original_by_dedup_key(new.dedup_key.as_deref().unwrap_or(""))
            .await
        {
            Ok(Some(o)) => original = o,
            _ => break,
        }
    }
    let (status, reply) = match (original.http_status, &original.reply) {
        (Some(s), reply) => (u16::try_from(s).unwrap_or(200), reply.clone()),
        (None, _) => (
            200,
            target_of(&event.kind).map(|t| state.gate.fallback(t).clone()),
        ),
    };
    let outcome = CallbackOutcome {
        http_status: status,
        reply: reply.clone(),
        reply_source: "duplicate",
        latency_us: elapsed_us(req.started),
        ..Default::default()
    };
    if let Err(e) = state
        .store
        .record_duplicate(new, original.id, &outcome)
        .await
    {
        state
            .metrics
            .inc("svamlgate_record_failures_total", &[("kind", "duplicate")]);
        tracing::error!(error = %e, "could not record duplicate; spooled");
        state.spool.put(Entry::Callback {
            callback: Box::new(new.clone()),
            outcome: Some(outcome.clone()),
        });
    }
    tracing::info!(reference = %new.reference, original = %original.reference, "duplicate callback answered with the stored reply");
    CallbackReply {
        status,
        body: reply,
        reference: new.reference.clone(),
        event_type: new.event_type.clone(),
        callid: new.callid.clone(),
    }
}

async fn reject_unparseable(
    state: &AppState,
    mut new: NewCallback,
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
    new.dedup_key = None;
    let mut record = err.record();
    record.method = Some(req.method.clone());
    record.path = Some(req.path.clone());
    record.remote_addr = req.remote_addr.clone();
    let outcome = CallbackOutcome {
        http_status: err.http_status(),
        reply: Some(serde_json::to_value(err.envelope()).unwrap_or(Value::Null)),
        reply_source: "error",
        latency_us: elapsed_us(req.started),
        ..Default::default()
    };
    record.callback_id = Some(new.id);
    let stored = match bounded(state.store.claim_callback(&new)).await {
        Ok(_) => bounded(state.store.finish_callback(new.id, &outcome)).await,
        Err(e) => Err(e),
    };
    if let Err(db) = stored {
        tracing::error!(error = %db, "could not record rejected callback; spooled");
        // The error row references the callback: spool both, in order.
        state.spool.put(Entry::Callback {
            callback: Box::new(new),
            outcome: Some(outcome),
        });
        state.spool.put(Entry::Error {
            error: Box::new(record),
        });
        return err.already_recorded();
    }
    state.errors.record(record);
    err.already_recorded()
}

/// A reply that did not go out, as stored in `rejected_replies`.
struct Rejection {
    /// The reply when it was JSON.
    reply: Option<Value>,
    /// The reply as text when it was not JSON.
    raw: Option<String>,
    /// The gate report, or the reason it could not be used.
    report: Value,
    /// Message of the 42202 error row.
    message: String,
}

impl Rejection {
    fn invalid(
        label: &str,
        source: &str,
        candidate: Value,
        report: &crate::svaml::Report,
    ) -> Rejection {
        Rejection {
            reply: Some(candidate),
            raw: None,
            report: serde_json::to_value(report).unwrap_or(Value::Null),
            message: format!("The {label} reply from {source} was not valid SVAML; the fallback was sent instead"),
        }
    }

    fn unusable(
        label: &str,
        source: &str,
        raw: &str,
        failure: &sources::SourceFailure,
    ) -> Rejection {
        let reply: Option<Value> = serde_json::from_str(raw).ok();
        Rejection {
            raw: reply.is_none().then(|| raw.chars().take(65_536).collect()),
            reply,
            report: json!({"valid": false, "reason": failure.reason, "message": failure.message}),
            message: format!(
                "The {label} reply from {source} could not be used; the fallback was sent instead"
            ),
        }
    }
}

/// Stores a rejected reply (and its 42202 error row, which it references) off the reply path.
fn record_rejection(
    state: &AppState,
    callback_id: Uuid,
    label: &str,
    source: &str,
    rejection: Rejection,
    req: &InboundCallback,
) {
    let err = ApiError::new(code::INVALID_CALLBACK_RESPONSE, rejection.message.clone())
        .with_detail(json!({"report": rejection.report}));
    let mut record = err.record();
    record.method = Some(req.method.clone());
    record.path = Some(req.path.clone());
    record.callback_id = Some(callback_id);
    tracing::warn!(reference = %err.reference, source, "reply rejected; fallback sent");
    let store = state.store.clone();
    let sink = state.errors.clone();
    let (event, source) = (label.to_owned(), source.to_owned());
    tokio::spawn(async move {
        // The error row must exist before the rejected_replies row that references it.
        if let Err(e) = store.record_error(&record).await {
            tracing::error!(error = %e, "could not record the rejection; queueing its error row");
            sink.record(record);
            return;
        }
        let r = &rejection;
        if let Err(e) = store
            .record_rejected_reply(
                callback_id,
                &err.reference,
                &event,
                &source,
                r.reply.as_ref(),
                r.raw.as_deref(),
                &r.report,
            )
            .await
        {
            tracing::error!(error = %e, "could not record rejected reply");
        }
    });
}
