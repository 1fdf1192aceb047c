//! Step 1 of a callback: its signature. What to do with a failure is decided by a pure function
//! ([`classify`]); verifying, refusing and reporting are the thin I/O around it.

use time::OffsetDateTime;

use super::InboundCallback;
use crate::app::AppState;
use crate::error::{ApiError, ErrorRecord};
use crate::outcome::SignatureState;
use crate::refusals::{self, Refused};
use crate::signature::settings::SignatureMode;
use crate::signature::{self, CallbackRequest, Explanation, Refusal, RefusalReason, Surroundings};

/// What the signature check says of a callback that goes on.
pub(super) struct Signed {
    /// Verified, reported (failed, answered anyway) or unverified (checks off).
    pub state: SignatureState,
    /// The key that signed it, or the configured key a reported failure named.
    pub key: Option<String>,
    /// For a reported failure: its error record, to attach to the callback's record.
    pub reported: Option<Box<ErrorRecord>>,
}

/// Step 1: checks the signature when checks are on. `Err` is the refusal to answer with (already
/// recorded).
pub(super) async fn check(
    state: &AppState,
    req: &InboundCallback,
    received_at: OffsetDateTime,
) -> Result<Signed, ApiError> {
    if !state.config.verify_signatures {
        return Ok(Signed {
            state: SignatureState::Unverified,
            key: None,
            reported: None,
        });
    }
    match check_signature(state, req, received_at).await {
        Checked::Verified(key) => Ok(Signed {
            state: SignatureState::Verified,
            key: Some(key),
            reported: None,
        }),
        Checked::Reported(key, record) => Ok(Signed {
            state: SignatureState::Reported,
            key,
            reported: Some(record),
        }),
        Checked::Refused(err) => Err(err),
    }
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

/// What to do with a failed signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// Refuse it, for the reason verification gave.
    Refuse,
    /// Refuse it for a stale timestamp, whatever else failed (report mode still applies freshness).
    RefuseStale(RefusalReason),
    /// Answer it anyway, and record, count and show the failure (report mode).
    Report,
}

/// Decides what a failed signature leads to: a stale or future timestamp, and any failure of a key
/// in enforce mode, is refused; in report mode a request whose timestamp is out of the window
/// (`stale`, from [`signature::freshness`]) is refused as stale, anything else is reported.
pub(super) fn classify(
    reason: RefusalReason,
    mode: SignatureMode,
    stale: Option<RefusalReason>,
) -> Failure {
    let freshness = matches!(
        reason,
        RefusalReason::TimestampTooOld | RefusalReason::TimestampInFuture
    );
    if freshness || mode == SignatureMode::Enforce {
        return Failure::Refuse;
    }
    match stale {
        Some(stale) => Failure::RefuseStale(stale),
        None => Failure::Report,
    }
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

/// Verifies the signature; a failure is refused or, in report mode (but not for a stale
/// timestamp), recorded with its explanation while the callback goes on.
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
    let stale = signature::freshness(req.x_timestamp.as_deref(), received_at, policy);
    let failure = classify(
        refusal.reason,
        state.verification.mode_for(known_key),
        stale,
    );
    let around = surroundings(state, req);
    let explain = |refusal: &Refusal| {
        signature::explain(&state.keys, &creq, &around, refusal, received_at, policy)
    };
    let refused = Refused {
        method: &req.method,
        path: &req.path,
        headers: &req.headers,
        remote_addr: req.remote_addr.as_deref(),
        body: Some(&req.body),
    };
    match failure {
        Failure::Refuse => Checked::Refused(
            refusals::refuse(state, &refused, &refusal, || explain(&refusal)).await,
        ),
        Failure::RefuseStale(reason) => {
            let stale = signature::refusal(reason, refusal.key.as_deref());
            Checked::Refused(refusals::refuse(state, &refused, &stale, || explain(&stale)).await)
        }
        Failure::Report => {
            let record = report(state, &refused, &refusal, explain(&refusal));
            Checked::Reported(known_key.map(str::to_owned), Box::new(record))
        }
    }
}

/// Report mode: counts, notes (alert, admin API) and logs a signature failure that is answered
/// anyway, and returns its error record.
fn report(
    state: &AppState,
    refused: &Refused<'_>,
    refusal: &Refusal,
    explanation: Option<Explanation>,
) -> ErrorRecord {
    let reason = refusal.reason;
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
    refusals::refusal_record(&err, refused, refusal, explanation, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use RefusalReason::{
        AuthorizationMissing, SignatureMismatch, TimestampInFuture, TimestampTooOld, UnknownKey,
    };
    use SignatureMode::{Enforce, Report};

    #[test]
    fn what_a_failed_signature_leads_to() {
        // (reason, mode of its key, freshness of the timestamp) → what happens
        let table = [
            (SignatureMismatch, Enforce, None, Failure::Refuse),
            (
                SignatureMismatch,
                Enforce,
                Some(TimestampTooOld),
                Failure::Refuse,
            ),
            (UnknownKey, Enforce, None, Failure::Refuse),
            (SignatureMismatch, Report, None, Failure::Report),
            (AuthorizationMissing, Report, None, Failure::Report),
            (UnknownKey, Report, None, Failure::Report),
            // A stale timestamp is refused in report mode too, as stale.
            (
                SignatureMismatch,
                Report,
                Some(TimestampTooOld),
                Failure::RefuseStale(TimestampTooOld),
            ),
            (
                AuthorizationMissing,
                Report,
                Some(TimestampInFuture),
                Failure::RefuseStale(TimestampInFuture),
            ),
            // Verification itself found the timestamp out of the window: refused as it is.
            (
                TimestampTooOld,
                Report,
                Some(TimestampTooOld),
                Failure::Refuse,
            ),
            (TimestampInFuture, Report, None, Failure::Refuse),
            (TimestampTooOld, Enforce, None, Failure::Refuse),
        ];
        for (reason, mode, stale, expected) in table {
            assert_eq!(
                classify(reason, mode, stale),
                expected,
                "{reason:?} {mode:?} {stale:?}"
            );
        }
    }
}
