//! One callback, end to end, independent of HTTP: verify the signature, parse the event, detect replays,
//! decide the reply under the deadline, pass it through the gate, record everything.

use crate::alerts::RuleKind;
use std::sync::Arc;

use actix_web::http::header::HeaderMap;
use actix_web::web::Bytes;
use std::time::Instant;

use serde_json::value::RawValue;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::app::AppState;
use crate::catalog::code;
use crate::error::{new_reference, ApiError, ErrorRecord};
use crate::events::{parse_event, EventError, EventKind, ParsedEvent};
use crate::feedback;
use crate::flows::routes::GateMode;
use crate::outcome::{FallbackReason, GateVerdict, ReplySource, SignatureState};
use crate::recording::replay::{hex, Claim, Original};
use crate::recording::{CallbackOutcome, CallbackRecord, NewCallback, Record, RejectedReply};
use crate::redact::Masked;
use crate::refusals::{self, Refused};
use crate::signature::settings::SignatureMode;
use crate::signature::{self, CallbackRequest, Explanation, RefusalReason, Surroundings};
use crate::sources;
use crate::svaml::{CallContext, Target};

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
    pub event_type: String,
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

/// The bytes of a JSON reply as the record keeps them (no second serialization).
fn raw(bytes: &[u8]) -> Option<Box<RawValue>> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| RawValue::from_string(s.to_owned()).ok())
}

fn elapsed_us(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX)
}

/// What the signature check decided.
enum Checked {
    /// Signed by this key.
    Verified(String),
    /// The signature failed, but report mode answers anyway: the key it named (if configured) and
    /// the failure's error record, to attach to the callback's record.
    Reported(Option<String>, Box<ErrorRecord>),
    /// Refused: the envelope to answer with (already recorded).
    Refused(ApiError),
}

/// The headers and path parts the explanation of a refusal reads.
fn surroundings<'a>(state: &'a AppState, req: &'a InboundCallback) -> Surroundings<'a> {
    let h = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    Surroundings {
        received_path: &req.path,
        query: req.query.as_deref(),
        public_prefix: state.config.public_path_prefix.as_deref(),
        public_url_path: state.verification.public_url_path.as_deref(),
        forwarded_prefix: h("x-forwarded-prefix"),
        forwarded_uri: h("x-forwarded-uri"),
        original_uri: h("x-original-uri"),
        content_md5: h("content-md5"),
    }
}

/// Step 1: verifies the signature; in report mode a failure (but not a stale timestamp) is
/// recorded with its explanation and the callback goes on.
async fn check_signature(
    state: &AppState,
    req: &InboundCallback,
    received_at: OffsetDateTime,
) -> Checked {
    let signed_path = signature::signed_path(&req.path, state.config.public_path_prefix.as_deref());
    let creq = CallbackRequest {
        method: &req.method,
        path: &signed_path,
        content_type: req.content_type.as_deref(),
        x_timestamp: req.x_timestamp.as_deref(),
        authorization: req.authorization.as_deref(),
        body: &req.body,
    };
    let policy = &state.verify_policy;
    let refusal = match signature::verify(&state.keys, &creq, received_at, policy) {
        Ok(verified) => return Checked::Verified(verified.key),
        Err(refusal) => refusal,
    };
    let known_key = refusal
        .key
        .as_deref()
        .filter(|k| state.keys.keys().iter().any(|c| c.eq_ignore_ascii_case(k)));
    let explain = || {
        signature::explain(
            &state.keys,
            &creq,
            &surroundings(state, req),
            &refusal,
            received_at,
            policy,
        )
    };
    let refused = Refused {
        method: &req.method,
        path: &req.path,
        headers: &req.headers,
        remote_addr: req.remote_addr.as_deref(),
        body: Some(&req.body),
    };
    let freshness = matches!(
        refusal.reason,
        RefusalReason::TimestampTooOld | RefusalReason::TimestampInFuture
    );
    if freshness || state.verification.mode_for(known_key) == SignatureMode::Enforce {
        return Checked::Refused(refusals::refuse(state, &refused, &refusal, explain).await);
    }
    // Report mode: freshness still applies to whatever carries a parseable timestamp, so a
    // stale replay of a request is refused whatever its signature.
    if let Some(stale) = signature::freshness(req.x_timestamp.as_deref(), received_at, policy) {
        let stale = signature::refusal(stale, refusal.key.as_deref());
        let explain = || {
            signature::explain(
                &state.keys,
                &creq,
                &surroundings(state, req),
                &stale,
                received_at,
                policy,
            )
        };
        return Checked::Refused(refusals::refuse(state, &refused, &stale, explain).await);
    }
    let reason = refusal.reason;
    let explanation = explain();
    let err = ApiError::new(
        reason.error_code(),
        format!(
            "{} (report mode: the callback was answered normally)",
            reason.message()
        ),
    );
    state.metrics.inc(
        "svamlgate_signature_reported_total",
        &[("reason", reason.as_str())],
    );
    // A failure report mode lets through is still a signature failure for the alert.
    refusals::note_failure(state, &err.reference, reason);
    refusals::note_explanation(state, &err.reference, explanation.as_ref());
    state
        .verification
        .note_reported(&err.reference, reason, explanation.as_ref());
    let line = explanation.as_ref().map(Explanation::line);
    tracing::warn!(
        reference = %err.reference,
        reason = reason.as_str(),
        explanation = line.as_deref().unwrap_or(""),
        "signature failed; answered anyway (report mode)"
    );
    let record = refusals::refusal_record(&err, &refused, &refusal, explanation, true);
    Checked::Reported(known_key.map(str::to_owned), Box::new(record))
}

/// Handles one callback. `Err` is an error envelope to answer with (already queued for recording).
pub async fn handle(state: &AppState, mut req: InboundCallback) -> Result<CallbackReply, ApiError> {
    let received_at = OffsetDateTime::now_utc();
    let _in_flight = state.recorder.status.enter();

    // 1. Signature.
    let mut reported = None;
    let (signature_state, signed_by) = if state.config.verify_signatures {
        match check_signature(state, &req, received_at).await {
            Checked::Verified(key) => (SignatureState::Verified, Some(key)),
            Checked::Reported(key, record) => {
                reported = Some(record);
                (SignatureState::Reported, key)
            }
            Checked::Refused(err) => return Err(err),
        }
    } else {
        (SignatureState::Unverified, None)
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
        body_is_json: false,
        parse_warnings: None,
        signature: signature_state,
        dedup_key: Some(hex(&dedup)),
        remote_addr: req.remote_addr.clone(),
        path: req.path.clone(),
    };
    let event = match parsed {
        Ok(ev) => ev,
        Err(e) => return Err(reject_unparseable(state, new, e, &req).await),
    };
    // The journal keeps the raw bytes; the shipper parses them again into the `body` column.
    new.body_is_json = true;
    new.event_type = event.kind.as_str().to_owned();
    new.event_known = !matches!(event.kind, EventKind::Unknown(_));
    new.callid = event.callid.clone();
    if event.application_key.is_some() {
        new.application_key = event.application_key.clone();
    }
    new.event_timestamp = event.timestamp;
    if !event.warnings.is_empty() {
        new.parse_warnings = serde_json::to_value(&event.warnings).ok();
    }
    let label = event.kind.label();
    let span = tracing::Span::current();
    span.record("event", label);
    span.record("reference", reference.as_str());
    if let Some(c) = &event.callid {
        span.record("callid", c.as_str());
    }

    let canary = crate::canary::is_canary(event.callid.as_deref());

    // 3. Replays: a byte-identical signed request gets the stored reply and is never processed twice.
    let original = match state.replays.claim(&dedup, id, &reference) {
        Claim::New(original) => original,
        Claim::Duplicate(original) => {
            return Ok(answer_duplicate(state, new, &event, original, &req).await)
        }
    };

    // 4. Decide and gate.
    let mut record = CallbackRecord::new(new, CallbackOutcome::answered(ReplySource::None));
    if let Some(mut error) = reported {
        error.callback_id = Some(record.callback.id);
        record.errors.push(*error);
    }
    let mut body = None;
    let mut shadow = None;
    if let Some(target) = event.kind.reply_target() {
        let reply = decide_and_gate(state, &event, target, &mut record, &req).await;
        if record.outcome.route_id.is_some() {
            shadow = crate::live::shadow::job(
                &state.live.routes(),
                &event,
                &record.outcome,
                &reference,
                received_at,
                &reply,
            );
        }
        // Serialized once: the record keeps the text, the answer and the replay index its bytes.
        let text = serde_json::value::to_raw_value(&reply).ok();
        body = text
            .as_ref()
            .map(|t| Bytes::copy_from_slice(t.get().as_bytes()));
        record.outcome.reply = text;
        if let Some(c) = event.callid.as_ref().filter(|_| !canary) {
            let passed = record.outcome.gate_passed();
            let source = record.outcome.reply_source;
            let cookies = crate::svaml::cookies_set(&reply);
            state
                .calls
                .note_reply(c, &reference, target, source, passed, cookies);
        }
    } else if matches!(event.kind, EventKind::Unknown(_)) {
        tracing::warn!(reference = %reference, "unknown event type stored and acknowledged");
    } else {
        record.sinch_report = feedback::report_of(&event);
        if let Some(report) = &record.sinch_report {
            feedback::observe(&state.calls, &state.metrics, &state.alerts, report);
        }
        record.call_state = sources::observe_final(&event);
    }
    if let Some(change) = record.call_state.as_ref().filter(|_| !canary) {
        state.calls.apply(change, record.callback.received_at);
    }

    // 5. Record, then answer: the reply is released once its record is durable in the journal.
    record.outcome.latency_us = elapsed_us(req.started);
    let outcome_label = if record.callback.event_known {
        record.outcome.reply_source.as_str()
    } else {
        "unknown_event"
    };
    let latency_us = record.outcome.latency_us;
    let event_type = record.callback.event_type.clone();
    state
        .recorder
        .record(Record::Callback(Box::new(record)))
        .await;
    original.answered(200, body.clone());
    // A shadowed route: the candidate is evaluated off the reply path, after the reply is released.
    if let Some(job) = shadow {
        state.shadow.offer(job);
    }
    // The canary is counted apart from real calls (and recorded with a reserved call id).
    state.metrics.inc(
        if canary {
            "svamlgate_canary_callbacks_total"
        } else {
            "svamlgate_callbacks_total"
        },
        &[("event", label), ("outcome", outcome_label)],
    );
    tracing::info!(
        reference = %reference,
        caller = %Masked(event.caller().unwrap_or("")),
        source = outcome_label,
        latency_us,
        "callback answered"
    );
    Ok(CallbackReply {
        status: 200,
        body,
        reference,
        event_type,
        callid: event.callid,
    })
}

/// Decides the reply of an ICE, ACE or PIE under its deadline and passes it through the gate;
/// fills the record in (source, flow, fallback reason, report, rejected candidate, upstream exchange,
/// call-state change) and returns what goes out.
async fn decide_and_gate(
    state: &AppState,
    event: &ParsedEvent,
    target: Target,
    record: &mut CallbackRecord,
    req: &InboundCallback,
) -> Value {
    let label = event.kind.label();
    let deadline = state.config.deadline(target);
    let forward = sources::Forward {
        body: &record.callback.raw_body,
        content_type: req.content_type.as_deref(),
        deadline_at: req.started + deadline,
    };
    let remaining = deadline.saturating_sub(req.started.elapsed());
    let decision = tokio::time::timeout(remaining, sources::decide(state, event, target, forward))
        .await
        .unwrap_or_else(|_| {
            sources::Decision::failed(
                FallbackReason::Deadline,
                "reply source did not answer before the deadline",
            )
        });
    let outcome = &mut record.outcome;
    outcome.flow_id = decision.flow_id;
    outcome.flow_version = decision.flow_version;
    outcome.flow_node = decision.flow_node.clone();
    outcome.route_id = decision.route_id;
    record.upstream = decision.upstream;
    record.call_state = decision.call_state;
    let reply = match decision.candidate {
        Ok(candidate) => {
            // The cookie budget holds for the whole call: this reply's cookies count with the
            // last value of each key set earlier on the call.
            let context = CallContext {
                cookies: event
                    .callid
                    .as_deref()
                    .map(|c| state.calls.cookies(c))
                    .unwrap_or_default(),
            };
            let mut verdict = state.gate.pass_in_call(target, candidate, &context);
            outcome.validation = serde_json::value::to_raw_value(&verdict.report).ok();
            // Warnings do not stop a reply; they are recorded (in the report) and counted.
            for w in verdict.report.warnings() {
                state.metrics.inc(
                    "svamlgate_gate_warnings_total",
                    &[("event", label), ("rule", w.code.as_str())],
                );
                // A certain dead branch (a key leading to no menu): an error for the operator,
                // though the reply still goes out.
                if crate::svaml::lint::is_dead_branch(&w.code) {
                    state.metrics.inc(
                        "svamlgate_gate_dead_branches_total",
                        &[("event", label), ("rule", w.code.as_str())],
                    );
                    tracing::error!(
                        event = label,
                        rule = w.code.as_str(),
                        pointer = w.pointer.as_str(),
                        "reply sent with a dead branch: {}",
                        crate::redact::mask_numbers_in(&w.message)
                    );
                }
            }
            let gate_verdict = match (verdict.passed, decision.gate_mode) {
                (true, _) => GateVerdict::Passed,
                (false, GateMode::Observe) => GateVerdict::Observed,
                (false, GateMode::Enforce) => GateVerdict::Rejected,
            };
            outcome.gate_verdict = Some(gate_verdict);
            state.metrics.inc(
                "svamlgate_gate_replies_total",
                &[("event", label), ("verdict", gate_verdict.as_str())],
            );
            if verdict.passed {
                outcome.reply_source = decision.source;
                verdict.reply
            } else {
                for v in verdict.report.errors() {
                    state.metrics.inc(
                        "svamlgate_gate_violations_total",
                        &[("event", label), ("rule", v.code.as_str())],
                    );
                }
                let candidate = verdict.rejected.take().unwrap_or(Value::Null);
                if decision.gate_mode == GateMode::Observe {
                    // Observe mode: the reply goes out as it is; what the gate would have done
                    // is kept (report, rule counters, verdict "observed").
                    outcome.reply_source = decision.source;
                    tracing::warn!(
                        source = decision.source.as_str(),
                        errors = verdict.report.error_count,
                        "invalid reply sent as it is (observe mode)"
                    );
                    candidate
                } else {
                    outcome.reply_source = ReplySource::Fallback;
                    outcome.fallback_reason = Some(FallbackReason::Invalid);
                    let report = outcome
                        .validation
                        .clone()
                        .unwrap_or_else(|| RawValue::NULL.to_owned());
                    let rejection = Rejection::invalid(label, decision.source, candidate, report);
                    attach_rejection(record, label, decision.source, rejection, req);
                    verdict.reply
                }
            }
        }
        Err(failure) => {
            outcome.reply_source = ReplySource::Fallback;
            outcome.fallback_reason = Some(failure.reason);
            if let Some(raw) = &failure.raw_reply {
                let rejection = Rejection::unusable(label, decision.source, raw, &failure);
                attach_rejection(record, label, decision.source, rejection, req);
            }
            tracing::warn!(reason = failure.reason.as_str(), message = %failure.message, "fallback reply sent");
            state.gate.fallback(target).clone()
        }
    };
    if let Some(reason) = record.outcome.fallback_reason {
        state.metrics.inc(
            "svamlgate_fallbacks_total",
            &[("event", label), ("reason", reason.as_str())],
        );
        state.alerts.note(
            RuleKind::Fallback,
            reason.as_str(),
            event.callid.as_deref(),
            Some(&record.callback.reference),
            Some(label),
        );
    }
    if let Some(failure) = record.upstream.as_ref().and_then(|u| u.failure.as_deref()) {
        state.alerts.note(
            RuleKind::Upstream,
            "",
            event.callid.as_deref(),
            Some(&record.callback.reference),
            Some(failure),
        );
    }
    state.metrics.observe(
        "svamlgate_reply_duration_seconds",
        &[
            ("event", label),
            ("source", record.outcome.reply_source.as_str()),
        ],
        req.started.elapsed(),
    );
    reply
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
    let mut record = CallbackRecord::new(
        new,
        CallbackOutcome {
            http_status: status,
            reply: reply.as_deref().and_then(raw),
            latency_us: elapsed_us(req.started),
            ..CallbackOutcome::answered(ReplySource::Duplicate)
        },
    );
    record.duplicate_of = Some(original.id);
    state
        .recorder
        .record(Record::Callback(Box::new(record)))
        .await;
    reply_out
}

fn request_error(err: &ApiError, req: &InboundCallback) -> ErrorRecord {
    let mut record = err.record();
    record.method = Some(req.method.clone());
    record.path = Some(req.path.clone());
    record.remote_addr = req.remote_addr.clone();
    record
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
    let mut error = request_error(&err, req);
    error.callback_id = Some(new.id);
    let mut record = CallbackRecord::new(
        new,
        CallbackOutcome {
            http_status: err.http_status(),
            reply: serde_json::value::to_raw_value(&err.envelope()).ok(),
            latency_us: elapsed_us(req.started),
            ..CallbackOutcome::answered(ReplySource::Error)
        },
    );
    record.errors.push(error);
    state
        .recorder
        .record(Record::Callback(Box::new(record)))
        .await;
    err.already_recorded()
}

/// A reply that did not go out, before it is attached to its callback's record.
struct Rejection {
    /// The reply when it was JSON.
    reply: Option<Value>,
    /// The reply as text when it was not JSON.
    raw: Option<String>,
    /// The gate report (as recorded for the callback), or the reason it could not be used.
    report: Box<RawValue>,
    /// Message of the 42202 error row.
    message: String,
}

impl Rejection {
    fn invalid(
        label: &str,
        source: ReplySource,
        candidate: Value,
        report: Box<RawValue>,
    ) -> Rejection {
        Rejection {
            reply: Some(candidate),
            raw: None,
            report,
            message: format!("The {label} reply from {source} was not valid SVAML; the fallback was sent instead"),
        }
    }

    fn unusable(
        label: &str,
        source: ReplySource,
        raw: &str,
        failure: &sources::SourceFailure,
    ) -> Rejection {
        let reply: Option<Value> = serde_json::from_str(raw).ok();
        let report = json!({"valid": false, "reason": failure.reason, "message": failure.message});
        Rejection {
            raw: reply.is_none().then(|| raw.chars().take(65_536).collect()),
            reply,
            report: serde_json::value::to_raw_value(&report)
                .unwrap_or_else(|_| RawValue::NULL.to_owned()),
            message: format!(
                "The {label} reply from {source} could not be used; the fallback was sent instead"
            ),
        }
    }
}

/// Puts a rejected reply and its 42202 error row into the callback's record.
fn attach_rejection(
    record: &mut CallbackRecord,
    label: &str,
    source: ReplySource,
    rejection: Rejection,
    req: &InboundCallback,
) {
    let err = ApiError::new(code::INVALID_CALLBACK_RESPONSE, rejection.message.clone())
        .with_detail(json!({"report": rejection.report}));
    let mut error = err.record();
    error.method = Some(req.method.clone());
    error.path = Some(req.path.clone());
    error.callback_id = Some(record.callback.id);
    tracing::warn!(reference = %err.reference, source = source.as_str(), "reply rejected; fallback sent");
    record.rejected = Some(RejectedReply {
        id: Uuid::now_v7(),
        reference: err.reference.clone(),
        event_type: label.to_owned(),
        source,
        reply: rejection.reply,
        raw_reply: rejection.raw,
        report: rejection.report,
    });
    record.errors.push(error);
}
