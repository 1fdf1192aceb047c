//! The refusal path: a request whose signature fails is recorded (in full or into its window's
//! summary, as [`crate::verification::limiter`] decides), counted, logged and answered with the
//! catalog envelope. The bound itself and the summary rows are the limiter's.

use actix_web::http::header::HeaderMap;
use serde_json::Value;
use time::OffsetDateTime;

use crate::app::AppState;
use crate::error::{ApiError, ErrorRecord, RefusalRecord};
use crate::recording::Record;
use crate::signature::{Explanation, Refusal, RefusalReason};
use crate::verification::limiter::{peer_of, record_summaries, Admission};

/// Headers as stored with a refusal: the signature part of authorization is removed.
pub(crate) fn headers_without_signature(headers: &HeaderMap) -> Value {
    let map: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| {
            let (k, v) = (k.as_str(), String::from_utf8_lossy(v.as_bytes()));
            let v = if k.eq_ignore_ascii_case("authorization") {
                match v.split_once(':') {
                    Some((before, _)) => format!("{before}:[signature removed]"),
                    None => "[removed]".to_owned(),
                }
            } else {
                v.into_owned()
            };
            (k.to_ascii_lowercase(), Value::String(v))
        })
        .collect();
    Value::Object(map)
}

/// A refused request, as much of it as was read.
#[derive(Debug, Clone, Copy)]
pub struct Refused<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Path as received.
    pub path: &'a str,
    /// Request headers (the signature is removed before they are stored).
    pub headers: &'a HeaderMap,
    /// Peer address.
    pub remote_addr: Option<&'a str>,
    /// The body, or `None` when the request was refused before it was read.
    pub body: Option<&'a [u8]>,
}

/// The `errors` + `refusals` record of a refusal.
pub fn refusal_record(
    err: &ApiError,
    req: &Refused<'_>,
    refusal: &Refusal,
    explanation: Option<Explanation>,
    answered: bool,
) -> ErrorRecord {
    let mut record = err.record();
    record.method = Some(req.method.to_owned());
    record.path = Some(req.path.to_owned());
    record.remote_addr = req.remote_addr.map(str::to_owned);
    let declared = req
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    record.refusal = Some(RefusalRecord {
        reason: refusal.reason,
        application_key: refusal.key.clone(),
        headers: headers_without_signature(req.headers),
        // Not read: no digest, and the length the request declared.
        body_sha256: req
            .body
            .map(crate::signature::body_digest)
            .unwrap_or_default(),
        body_bytes: req.body.map_or(declared, <[u8]>::len),
        explanation,
        answered,
        summary: None,
    });
    record
}

/// Records a refusal (in full, or into its window's summary), logs and counts it, and returns the
/// envelope to answer (always the plain catalog message: the explanation never goes back to the
/// requester). `explain` is called only for a refusal recorded in full.
/// A signature failure, refused or let through by report mode: it feeds the signature-failure
/// alert.
pub fn note_failure(state: &AppState, reference: &str, reason: RefusalReason) {
    state.alerts.note(
        crate::alerts::RuleKind::SignatureFailures,
        "",
        None,
        Some(reference),
        Some(reason.as_str()),
    );
}

/// An explained failure: counted by cause and kept for the admin API.
pub fn note_explanation(state: &AppState, reference: &str, explanation: Option<&Explanation>) {
    if let Some(e) = explanation {
        state.metrics.inc(
            "svamlgate_signature_explanations_total",
            &[("cause", e.cause.as_str())],
        );
        state.verification.note_explanation(reference, e.clone());
    }
}

pub async fn refuse(
    state: &AppState,
    req: &Refused<'_>,
    refusal: &Refusal,
    explain: impl FnOnce() -> Option<Explanation>,
) -> ApiError {
    let reason = refusal.reason;
    state.metrics.inc(
        "svamlgate_signature_refusals_total",
        &[("reason", reason.as_str())],
    );
    let err = ApiError::new(reason.error_code(), reason.message());
    // Every refusal feeds the signature-failure alert, also those only counted into a summary.
    note_failure(state, &err.reference, reason);
    let peer = peer_of(req.remote_addr);
    let now = OffsetDateTime::now_utc();
    let (admission, closed) = state.verification.limiter.admit(&peer, reason, now, || {
        refusal_record(&err, req, refusal, None, false)
    });
    record_summaries(&state.recorder, &state.metrics, closed).await;
    match admission {
        Admission::Full => {
            let explanation = explain();
            note_explanation(state, &err.reference, explanation.as_ref());
            let line = explanation.as_ref().map(Explanation::line);
            tracing::warn!(
                reference = %err.reference,
                reason = reason.as_str(),
                peer = %peer,
                explanation = line.as_deref().unwrap_or(""),
                "callback refused"
            );
            let record = refusal_record(&err, req, refusal, explanation, false);
            state.recorder.record(Record::Error(Box::new(record))).await;
        }
        Admission::Summarized => {
            state.metrics.inc(
                "svamlgate_refusals_summarized_total",
                &[("reason", reason.as_str())],
            );
        }
    }
    err.already_recorded()
}
