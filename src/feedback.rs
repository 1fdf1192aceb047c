//! Sinch's verdicts on the replies it got. Sinch reports a reply it could not use through Notify
//! `type: callingerror` with `errorCode` 40001 ("Illegal SVAML"), and through DICE
//! `reason: CALLBACKERROR` (or `INVALIDSVAMLACTION`). Each such report is linked to the reply svamlgate last sent on that call:
//! that reply is marked rejected by Sinch (`callbacks.rejected_by_sinch`, shipped with the report's
//! record), logged at error and counted in `svamlgate_sinch_rejected_replies_total{event,source}`.
//! When the gate had passed that reply, it is a gate miss (`GET /admin/gate/misses`, view
//! `gate_misses`): the most valuable signal the gate can get, because it names a rule to add.

use crate::alerts::Alerts;
use crate::calls::Calls;
use crate::events::{DiceReason, Event, NotifyType, ParsedEvent};
use crate::metrics::Metrics;
use crate::recording::SinchReport;

/// The Notify `errorCode` of a reply Sinch could not use.
pub const ILLEGAL_SVAML: i64 = 40001;

/// DICE reasons that say Sinch could not use the reply: `CALLBACKERROR`, and `INVALIDSVAMLACTION`
/// (listed in the Calling API's call-information reasons).
fn rejects_reply(reason: &DiceReason) -> bool {
    *reason == DiceReason::CallbackError || reason.as_str() == "INVALIDSVAMLACTION"
}

/// Sinch's report that it could not use a reply, if this event is one.
pub fn report_of(event: &ParsedEvent) -> Option<SinchReport> {
    let callid = event.callid.clone()?;
    match &event.body {
        Event::Notify(n) if n.r#type == Some(NotifyType::CallingError) => {
            // A callingerror without a code is taken as the reply's (the legacy docs list only
            // 40001 and 50000; 50000 is Sinch's own internal error, not a verdict on the reply).
            if n.error_code.is_some_and(|c| c != ILLEGAL_SVAML) {
                return None;
            }
            Some(SinchReport {
                kind: "callingerror".into(),
                callid,
                error_code: n.error_code,
                message: n.error_msg.clone(),
                reason: None,
                result: None,
            })
        }
        Event::Dice(d) if d.reason.as_ref().is_some_and(rejects_reply) => Some(SinchReport {
            kind: "callbackerror".into(),
            callid,
            error_code: None,
            message: None,
            reason: d.reason.as_ref().map(|r| r.as_str().to_owned()),
            result: d.result.as_ref().map(|r| r.as_str().to_owned()),
        }),
        _ => None,
    }
}

/// Logs and counts a report against the reply this instance last sent on the call (found in
/// `calls`), and notes a gate miss for alerting.
pub fn observe(calls: &Calls, metrics: &Metrics, alerts: &Alerts, report: &SinchReport) {
    let last = calls.last_reply(&report.callid);
    let (event, source, passed) = match &last {
        Some(l) => (l.event.as_str(), l.source.as_str(), l.gate_passed),
        None => ("unknown", "unknown", false),
    };
    metrics.inc(
        "svamlgate_sinch_rejected_replies_total",
        &[("event", event), ("source", source)],
    );
    if passed {
        alerts.note(
            crate::alerts::RuleKind::GateMiss,
            "",
            Some(&report.callid),
            last.as_ref().map(|l| l.reference.as_str()),
            Some(&report.kind),
        );
    }
    tracing::error!(
        kind = %report.kind,
        error_code = report.error_code,
        sinch_message = report.message.as_deref().unwrap_or(""),
        rejected_reply = %last.as_ref().map(|l| l.reference.as_str()).unwrap_or("unknown"),
        event,
        source,
        gate_miss = passed,
        "Sinch could not use a reply svamlgate sent"
    );
}
