//! Step 4 of a callback that expects SVAML (ICE, ACE, PIE): decide the candidate reply under the
//! event's deadline, pass it through the gate, rule on it ([`super::verdict::rule`]), record it all
//! and observe it (metrics, alerts, logs).

use serde_json::value::RawValue;
use serde_json::Value;

use super::verdict::{self, Candidate, Ruling, Sends};
use super::InboundCallback;
use crate::alerts::RuleKind;
use crate::app::AppState;
use crate::events::ParsedEvent;
use crate::gate::Verdict;
use crate::outcome::{FallbackReason, ReplySource};
use crate::recording::build::{Provenance, Rejection};
use crate::recording::CallbackRecord;
use crate::sources::{self, Decision, SourceFailure};
use crate::svaml::{CallContext, Report, Target};

/// Decides the reply of an ICE, ACE or PIE under its deadline and passes it through the gate;
/// fills the record in (source, flow, fallback reason, report, rejected candidate, upstream exchange,
/// call-state change) and returns what goes out.
pub(super) async fn decide_and_gate(
    state: &AppState,
    event: &ParsedEvent,
    target: Target,
    record: &mut CallbackRecord,
    req: &InboundCallback,
) -> Value {
    let label = event.kind.label();
    let mut decision = decide_in_time(state, event, target, &record.callback.raw_body, req).await;
    record.decided(provenance(&mut decision));
    let source = decision.source;
    let (checked, candidate) = match decision.candidate {
        Ok(candidate) => {
            let verdict = check(state, event, target, candidate, record);
            let passed = verdict.passed;
            let mode = decision.gate_mode;
            (Ok(verdict), Candidate::Gated { passed, mode })
        }
        Err(failure) => {
            let reason = failure.reason;
            (Err(failure), Candidate::Missing(reason))
        }
    };
    let ruling = verdict::rule(source, candidate);
    record.ruled(ruling.source, ruling.gate_verdict, ruling.fallback_reason);
    let reply = match checked {
        Ok(verdict) => {
            observe_verdict(state, label, &ruling, &verdict.report);
            send_gated(record, verdict, &ruling, label, source, &req.method)
        }
        Err(failure) => {
            let fallback = state.gate.fallback(target).clone();
            send_fallback(record, fallback, &failure, label, source, &req.method)
        }
    };
    observe_reply(state, event, record, req);
    reply
}

/// Asks the reply source for a candidate; past the event's deadline the decision is a failure.
async fn decide_in_time(
    state: &AppState,
    event: &ParsedEvent,
    target: Target,
    body: &[u8],
    req: &InboundCallback,
) -> Decision {
    let deadline = state.config.deadline(target);
    let forward = sources::Forward {
        body,
        content_type: req.content_type.as_deref(),
        deadline_at: req.started + deadline,
    };
    let remaining = deadline.saturating_sub(req.started.elapsed());
    tokio::time::timeout(remaining, sources::decide(state, event, target, forward))
        .await
        .unwrap_or_else(|_| {
            Decision::failed(
                FallbackReason::Deadline,
                "reply source did not answer before the deadline",
            )
        })
}

/// What the record keeps of where the decision came from (the exchange and state change move).
fn provenance(decision: &mut Decision) -> Provenance {
    Provenance {
        route_id: decision.route_id,
        flow_id: decision.flow_id,
        flow_version: decision.flow_version,
        flow_node: decision.flow_node.clone(),
        upstream: decision.upstream.take(),
        call_state: decision.call_state.take(),
    }
}

/// Passes the candidate through the gate within its call, records the report and observes its
/// warnings.
fn check(
    state: &AppState,
    event: &ParsedEvent,
    target: Target,
    candidate: Value,
    record: &mut CallbackRecord,
) -> Verdict {
    // The cookie budget holds for the whole call: this reply's cookies count with the last value
    // of each key set earlier on the call.
    let context = CallContext {
        cookies: event
            .callid
            .as_deref()
            .map(|c| state.calls.cookies(c))
            .unwrap_or_default(),
    };
    let verdict = state.gate.pass_in_call(target, candidate, &context);
    record.gated(serde_json::value::to_raw_value(&verdict.report).ok());
    observe_warnings(state, event.kind.label(), &verdict.report);
    verdict
}

/// Warnings do not stop a reply; they are recorded (in the report) and counted. A certain dead
/// branch (a key leading to no menu) is also an error for the operator, though the reply goes out.
fn observe_warnings(state: &AppState, label: &str, report: &Report) {
    for w in report.warnings() {
        state.metrics.inc(
            "svamlgate_gate_warnings_total",
            &[("event", label), ("rule", w.code.as_str())],
        );
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
}

/// Counts the gate's verdict, and the rules an invalid candidate broke.
fn observe_verdict(state: &AppState, label: &str, ruling: &Ruling, report: &Report) {
    if let Some(gate_verdict) = ruling.gate_verdict {
        state.metrics.inc(
            "svamlgate_gate_replies_total",
            &[("event", label), ("verdict", gate_verdict.as_str())],
        );
    }
    if ruling.sends != Sends::Candidate {
        for v in report.errors() {
            state.metrics.inc(
                "svamlgate_gate_violations_total",
                &[("event", label), ("rule", v.code.as_str())],
            );
        }
    }
}

/// What goes out of a gated candidate: the candidate, the invalid candidate as it is (observe
/// mode), or the fallback, recording the candidate as rejected.
fn send_gated(
    record: &mut CallbackRecord,
    mut verdict: Verdict,
    ruling: &Ruling,
    label: &str,
    source: ReplySource,
    method: &str,
) -> Value {
    match ruling.sends {
        Sends::Candidate => verdict.reply,
        Sends::InvalidAsIs => {
            // Observe mode: the reply goes out as it is; what the gate would have done is kept
            // (report, rule counters, verdict "observed").
            tracing::warn!(
                source = source.as_str(),
                errors = verdict.report.error_count,
                "invalid reply sent as it is (observe mode)"
            );
            verdict.rejected.take().unwrap_or(Value::Null)
        }
        Sends::Fallback => {
            let candidate = verdict.rejected.take().unwrap_or(Value::Null);
            let report = record
                .outcome
                .validation
                .clone()
                .unwrap_or_else(|| RawValue::NULL.to_owned());
            let rejection = Rejection::invalid(label, source, candidate, report);
            reject(record, label, source, rejection, method);
            verdict.reply
        }
    }
}

/// What goes out when the source produced no usable candidate: the fallback, recording what the
/// source answered (if anything) as rejected.
fn send_fallback(
    record: &mut CallbackRecord,
    fallback: Value,
    failure: &SourceFailure,
    label: &str,
    source: ReplySource,
    method: &str,
) -> Value {
    if let Some(raw) = failure.raw_reply.as_deref() {
        let rejection = Rejection::unusable(label, source, raw, failure.reason, &failure.message);
        reject(record, label, source, rejection, method);
    }
    tracing::warn!(reason = failure.reason.as_str(), message = %failure.message, "fallback reply sent");
    fallback
}

/// Puts a rejected reply and its 42202 error row into the callback's record.
fn reject(
    record: &mut CallbackRecord,
    label: &str,
    source: ReplySource,
    rejection: Rejection,
    method: &str,
) {
    let reference = record.reject(label, source, rejection, method);
    tracing::warn!(reference = %reference, source = source.as_str(), "reply rejected; fallback sent");
}

/// Counts and alerts on a fallback and on an upstream failure, and times the reply.
fn observe_reply(
    state: &AppState,
    event: &ParsedEvent,
    record: &CallbackRecord,
    req: &InboundCallback,
) {
    let label = event.kind.label();
    let reference = Some(record.callback.reference.as_str());
    if let Some(reason) = record.outcome.fallback_reason {
        state.metrics.inc(
            "svamlgate_fallbacks_total",
            &[("event", label), ("reason", reason.as_str())],
        );
        state.alerts.note(
            RuleKind::Fallback,
            reason.as_str(),
            event.callid.as_deref(),
            reference,
            Some(label),
        );
    }
    if let Some(failure) = record.upstream.as_ref().and_then(|u| u.failure.as_deref()) {
        state.alerts.note(
            RuleKind::Upstream,
            "",
            event.callid.as_deref(),
            reference,
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
}
