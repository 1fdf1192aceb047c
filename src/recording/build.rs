//! The journal record of one callback, built step by step as the reply path learns its outcome:
//! what arrived ([`NewCallback::arrived`]), the event read from it ([`NewCallback::read`]), where
//! the reply came from ([`CallbackRecord::decided`]), the gate's report and verdict
//! ([`CallbackRecord::gated`], [`CallbackRecord::ruled`]), a candidate that did not go out
//! ([`CallbackRecord::reject`]), and what went out ([`CallbackRecord::sent`]). The reply path calls
//! these; it fills in no field itself. Replays and unparseable bodies have a constructor each.

use std::time::Instant;

use serde_json::json;
use serde_json::value::RawValue;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    CallStateChange, CallbackOutcome, CallbackRecord, NewCallback, RejectedReply, SinchReport,
    UpstreamExchange,
};
use crate::catalog::code;
use crate::error::{ApiError, ErrorRecord};
use crate::events::{EventKind, ParsedEvent};
use crate::outcome::{FallbackReason, GateVerdict, ReplySource, SignatureState};

/// Microseconds since `started`, as recorded.
pub fn latency_us(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX)
}

/// The bytes of a JSON reply as the record keeps them (no second serialization).
pub fn raw(bytes: &[u8]) -> Option<Box<RawValue>> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| RawValue::from_string(s.to_owned()).ok())
}

/// A callback as it arrived, before its body is read.
#[derive(Debug)]
pub struct Arrival {
    /// When it arrived.
    pub received_at: OffsetDateTime,
    /// What the signature check found.
    pub signature: SignatureState,
    /// The application key that signed it (or that report mode let through).
    pub signed_by: Option<String>,
    /// The duplicate-detection key, as stored (hex).
    pub dedup_key: String,
    /// Peer address.
    pub remote_addr: Option<String>,
    /// Request path.
    pub path: String,
    /// The body, moved into the record (forwarding reads it from there).
    pub body: Vec<u8>,
}

impl NewCallback {
    /// The record of what arrived, with a fresh id and reference; the event is read into it by
    /// [`NewCallback::read`].
    pub fn arrived(arrival: Arrival) -> NewCallback {
        // The reference is the id's text: the primary key finds it and keeps it unique, with no
        // index of its own (migrations/0020_reference_is_the_id.sql).
        let id = Uuid::now_v7();
        NewCallback {
            id,
            reference: id.to_string(),
            received_at: arrival.received_at,
            event_type: EventKind::Unknown(String::new()),
            event_known: false,
            callid: None,
            application_key: arrival.signed_by,
            event_timestamp: None,
            raw_body: arrival.body,
            body_is_json: false,
            parse_warnings: None,
            signature: arrival.signature,
            dedup_key: Some(arrival.dedup_key),
            remote_addr: arrival.remote_addr,
            path: arrival.path,
        }
    }

    /// Fills in what the event says of itself. The journal keeps the raw bytes; the shipper parses
    /// them again into the `body` column.
    pub fn read(&mut self, event: &ParsedEvent) {
        self.body_is_json = true;
        self.event_type = event.kind.clone();
        self.event_known = !matches!(event.kind, EventKind::Unknown(_));
        self.callid = event.callid.clone();
        if event.application_key.is_some() {
            self.application_key = event.application_key.clone();
        }
        self.event_timestamp = event.timestamp;
        if !event.warnings.is_empty() {
            self.parse_warnings = serde_json::to_value(&event.warnings).ok();
        }
    }
}

/// Where a decided reply came from, as recorded with the callback.
#[derive(Debug, Default)]
pub struct Provenance {
    /// Route selected.
    pub route_id: Option<i64>,
    /// Flow used.
    pub flow_id: Option<i64>,
    /// Flow version used.
    pub flow_version: Option<i32>,
    /// Flow node emitted.
    pub flow_node: Option<String>,
    /// The proxy-mode exchange.
    pub upstream: Option<UpstreamExchange>,
    /// The call-state change.
    pub call_state: Option<CallStateChange>,
}

/// A reply that did not go out, before it is attached to its callback's record.
#[derive(Debug)]
pub struct Rejection {
    /// The reply when it was JSON.
    reply: Option<Value>,
    /// The reply as text when it was not JSON.
    raw: Option<String>,
    /// The gate report (as recorded for the callback), or the reason it could not be used.
    report: Box<RawValue>,
    /// Message of the 42202 error row.
    message: String,
}

/// Longest text of an unusable, non-JSON reply that is kept.
const MAX_RAW_CHARS: usize = 65_536;

impl Rejection {
    /// A candidate the gate found invalid, with the gate's report.
    pub fn invalid(
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

    /// What a source answered that could not be used (`raw`), and why.
    pub fn unusable(
        label: &str,
        source: ReplySource,
        raw: &str,
        reason: FallbackReason,
        why: &str,
    ) -> Rejection {
        let reply: Option<Value> = serde_json::from_str(raw).ok();
        let report = json!({"valid": false, "reason": reason, "message": why});
        Rejection {
            raw: reply
                .is_none()
                .then(|| raw.chars().take(MAX_RAW_CHARS).collect()),
            reply,
            report: serde_json::value::to_raw_value(&report)
                .unwrap_or_else(|_| RawValue::NULL.to_owned()),
            message: format!(
                "The {label} reply from {source} could not be used; the fallback was sent instead"
            ),
        }
    }
}

impl CallbackRecord {
    /// The record of a callback about to be decided, with the signature failure report mode let
    /// through (if any) attached.
    pub fn deciding(callback: NewCallback, reported: Option<Box<ErrorRecord>>) -> CallbackRecord {
        let mut record =
            CallbackRecord::new(callback, CallbackOutcome::answered(ReplySource::None));
        if let Some(mut error) = reported {
            error.callback_id = Some(record.callback.id);
            record.errors.push(*error);
        }
        record
    }

    /// Records where the reply came from.
    pub fn decided(&mut self, p: Provenance) {
        let outcome = &mut self.outcome;
        outcome.flow_id = p.flow_id;
        outcome.flow_version = p.flow_version;
        outcome.flow_node = p.flow_node;
        outcome.route_id = p.route_id;
        self.upstream = p.upstream;
        self.call_state = p.call_state;
    }

    /// Records the gate's report on the candidate.
    pub fn gated(&mut self, report: Option<Box<RawValue>>) {
        self.outcome.validation = report;
    }

    /// Records the verdict: the source of what went out, the gate's verdict, why a fallback went out.
    pub fn ruled(
        &mut self,
        source: ReplySource,
        gate_verdict: Option<GateVerdict>,
        fallback_reason: Option<FallbackReason>,
    ) {
        self.outcome.reply_source = source;
        self.outcome.fallback_reason = fallback_reason;
        self.outcome.gate_verdict = gate_verdict;
    }

    /// Attaches a reply that did not go out, with its 42202 error row (whose reference it returns).
    pub fn reject(
        &mut self,
        event_label: &str,
        source: ReplySource,
        rejection: Rejection,
        method: &str,
    ) -> &str {
        let err = ApiError::new(code::INVALID_CALLBACK_RESPONSE, rejection.message)
            .with_detail(json!({"report": rejection.report}));
        let mut error = err.record();
        error.method = Some(method.to_owned());
        error.path = Some(self.callback.path.clone());
        error.callback_id = Some(self.callback.id);
        self.errors.push(error);
        let rejected = self.rejected.insert(RejectedReply {
            id: Uuid::now_v7(),
            reference: err.reference,
            event_type: event_label.into(),
            source,
            reply: rejection.reply,
            raw_reply: rejection.raw,
            report: rejection.report,
        });
        &rejected.reference
    }

    /// Records what Sinch reported of an earlier reply and the call-state change an event without
    /// a reply caused.
    pub fn observed(
        &mut self,
        sinch_report: Option<SinchReport>,
        call_state: Option<CallStateChange>,
    ) {
        self.sinch_report = sinch_report;
        self.call_state = call_state;
    }

    /// Records the reply that goes out, as sent.
    pub fn sent(&mut self, reply: Option<Box<RawValue>>) {
        self.outcome.reply = reply;
    }

    /// Records the handling time, just before the record is journaled.
    pub fn took(&mut self, started: Instant) {
        self.outcome.latency_us = latency_us(started);
    }

    /// The `outcome` label of the callback metric: the reply source, or `unknown_event`.
    pub fn outcome_label(&self) -> &'static str {
        if self.callback.event_known {
            self.outcome.reply_source.as_str()
        } else {
            "unknown_event"
        }
    }

    /// The record of a replay answered with its original's reply (`status`, `reply`).
    pub fn duplicate(
        callback: NewCallback,
        original: Uuid,
        status: u16,
        reply: Option<&[u8]>,
        started: Instant,
    ) -> CallbackRecord {
        let mut record = CallbackRecord::new(
            callback,
            CallbackOutcome {
                http_status: status,
                reply: reply.and_then(raw),
                latency_us: latency_us(started),
                ..CallbackOutcome::answered(ReplySource::Duplicate)
            },
        );
        record.duplicate_of = Some(original);
        record
    }

    /// The record of a callback whose body is not an event, answered with `err` (the body is
    /// kept, without a duplicate-detection key).
    pub fn unparseable(
        mut callback: NewCallback,
        err: &ApiError,
        method: &str,
        started: Instant,
    ) -> CallbackRecord {
        callback.dedup_key = None;
        let mut error = err.record();
        error.method = Some(method.to_owned());
        error.path = Some(callback.path.clone());
        error.remote_addr = callback.remote_addr.clone();
        error.callback_id = Some(callback.id);
        let mut record = CallbackRecord::new(
            callback,
            CallbackOutcome {
                http_status: err.http_status(),
                reply: serde_json::value::to_raw_value(&err.envelope()).ok(),
                latency_us: latency_us(started),
                ..CallbackOutcome::answered(ReplySource::Error)
            },
        );
        record.errors.push(error);
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::parse_event;

    fn arrival(body: &[u8]) -> Arrival {
        Arrival {
            received_at: OffsetDateTime::UNIX_EPOCH,
            signature: SignatureState::Verified,
            signed_by: Some("signing-key".into()),
            dedup_key: "ab".repeat(32),
            remote_addr: Some("127.0.0.1".into()),
            path: "/sinch/callback".into(),
            body: body.to_vec(),
        }
    }

    #[test]
    fn an_event_fills_in_what_it_says_of_itself() {
        let body = br#"{"event":"ice","callid":"c-1","applicationKey":"app-key","timestamp":"2024-01-02T03:04:05Z","cli":12}"#;
        let mut new = NewCallback::arrived(arrival(body));
        // The reference is the id's text (migrations/0020_reference_is_the_id.sql).
        assert_eq!(new.reference, new.id.to_string());
        assert_eq!((new.event_type.as_str(), new.event_known), ("", false));
        assert!(!new.body_is_json);
        let event = parse_event(&new.raw_body).expect("an ICE");
        new.read(&event);
        assert_eq!(new.event_type, EventKind::Ice);
        assert!(new.event_known && new.body_is_json);
        assert_eq!(new.callid.as_deref(), Some("c-1"));
        assert_eq!(new.application_key.as_deref(), Some("app-key"));
        assert!(new.event_timestamp.is_some());
        assert!(new.parse_warnings.is_some(), "cli as a number warns");
        assert_eq!(new.raw_body, body);

        // Without an applicationKey in the event, the signing key stays.
        let mut new = NewCallback::arrived(arrival(br#"{"event":"future"}"#));
        new.read(&parse_event(&new.raw_body).expect("an unknown event"));
        assert_eq!(new.application_key.as_deref(), Some("signing-key"));
        assert!(!new.event_known);
        assert_eq!(new.parse_warnings, None);
    }

    #[test]
    fn a_rejected_candidate_comes_with_its_error_row() {
        let new = NewCallback::arrived(arrival(b"{}"));
        let id = new.id;
        let mut record = CallbackRecord::deciding(new, None);
        let report = RawValue::from_string(r#"{"valid":false}"#.into()).expect("json");
        let rejection = Rejection::invalid("ICE", ReplySource::Flow, json!({"a": 1}), report);
        let reference = record
            .reject("ICE", ReplySource::Flow, rejection, "POST")
            .to_owned();
        let error = &record.errors[0];
        assert_eq!(error.reference, reference);
        assert_eq!(error.error_code, code::INVALID_CALLBACK_RESPONSE);
        assert_eq!(error.callback_id, Some(id));
        assert_eq!(error.path.as_deref(), Some("/sinch/callback"));
        assert!(error.message.contains("from flow was not valid SVAML"));
        let rejected = record.rejected.as_ref().expect("rejected");
        assert_eq!(rejected.reply, Some(json!({"a": 1})));
        assert_eq!(rejected.report.get(), r#"{"valid":false}"#);
    }

    #[test]
    fn an_unusable_answer_keeps_its_text_only_when_not_json() {
        let r = Rejection::unusable(
            "ICE",
            ReplySource::Upstream,
            "<html>",
            FallbackReason::UpstreamError,
            "not json",
        );
        assert_eq!((r.reply, r.raw.as_deref()), (None, Some("<html>")));
        assert!(r.report.get().contains(r#""reason":"upstream_error""#));
        let r = Rejection::unusable(
            "ICE",
            ReplySource::Upstream,
            "[1]",
            FallbackReason::UpstreamError,
            "an array",
        );
        assert_eq!((r.reply, r.raw), (Some(json!([1])), None));
        let long = "x".repeat(MAX_RAW_CHARS + 10);
        let r = Rejection::unusable(
            "ICE",
            ReplySource::Upstream,
            &long,
            FallbackReason::Deadline,
            "",
        );
        assert_eq!(r.raw.map(|t| t.len()), Some(MAX_RAW_CHARS));
    }

    #[test]
    fn a_reported_signature_failure_is_attached_to_its_callback() {
        let new = NewCallback::arrived(arrival(b"{}"));
        let id = new.id;
        let reported = ApiError::new(code::INVALID_CALLBACK_RESPONSE, "x").record();
        let record = CallbackRecord::deciding(new, Some(Box::new(reported)));
        assert_eq!(record.errors.len(), 1);
        assert_eq!(record.errors[0].callback_id, Some(id));
        assert_eq!(record.outcome.reply_source, ReplySource::None);
    }

    #[test]
    fn an_unparseable_body_is_kept_without_a_dedup_key() {
        let new = NewCallback::arrived(arrival(b"not json"));
        let id = new.id;
        let err = ApiError::new(code::INVALID_REQUEST, "bad");
        let record = CallbackRecord::unparseable(new, &err, "POST", Instant::now());
        assert_eq!(record.callback.dedup_key, None);
        assert_eq!(record.callback.raw_body, b"not json");
        assert_eq!(record.outcome.reply_source, ReplySource::Error);
        assert_eq!(record.outcome.http_status, err.http_status());
        let error = &record.errors[0];
        assert_eq!(error.callback_id, Some(id));
        assert_eq!(
            (error.method.as_deref(), error.remote_addr.as_deref()),
            (Some("POST"), Some("127.0.0.1"))
        );
        assert_eq!(record.outcome_label(), "unknown_event");
    }
}
