//! What an exchange with Sinch comes to, decided without doing anything: the error in an answer,
//! the decision recorded for an attempt, the metric label of an attempt, how a request ended
//! ([`outcome`]: the double-call rule for callouts lives here) and the record of that end
//! ([`final_record`]). [`super::send`] does the I/O around these.

use serde_json::Value;

use super::client::{Failure, RawAnswer};
use super::retry::Next;
use super::Outcome;
use crate::catalog::{self, SinchError};
use crate::db::outbound::FinalRecord;
use crate::outcome::{AttemptDecision, RequestOutcome};

/// Sinch's error in an answer (any status from 300 on), read leniently.
pub fn sinch_error(raw: &RawAnswer) -> Option<SinchError> {
    raw.status
        .filter(|s| *s >= 300)
        .map(|s| catalog::parse_sinch_error(s, &raw.body))
}

/// The decision recorded with an attempt.
pub fn decision(next: &Next) -> AttemptDecision {
    match next {
        Next::Done => AttemptDecision::Done,
        Next::RetryAfter(_) => AttemptDecision::Retry,
        Next::GiveUp(_) => AttemptDecision::GiveUp,
    }
}

/// The `result` label of an attempt: the HTTP status, else the failure.
pub fn attempt_result(raw: &RawAnswer) -> String {
    match (raw.status, &raw.failure) {
        (Some(s), _) => s.to_string(),
        (None, Some((f, _))) => f.as_str().to_owned(),
        (None, None) => Failure::Io.as_str().to_owned(),
    }
}

/// How a request ended, from its last answer (`error` is [`sinch_error`] of it). A callout whose
/// answer never came after it may have been sent (anything but a connection failure) is
/// [`Outcome::Unknown`]: Sinch may have placed the call.
pub fn outcome(raw: RawAnswer, error: Option<SinchError>, callout: bool) -> Outcome {
    match (raw.status, error, raw.failure) {
        (Some(s), _, _) if (200..300).contains(&s) => {
            let body: Option<Value> = serde_json::from_slice(&raw.body).ok();
            let callid = body
                .as_ref()
                .filter(|_| callout)
                .and_then(|b| b.get("callId").or_else(|| b.get("callid")))
                .and_then(Value::as_str)
                .map(str::to_owned);
            Outcome::Success {
                status: s,
                body,
                callid,
            }
        }
        (Some(_), Some(e), _) => Outcome::SinchError(e),
        (Some(s), None, _) => Outcome::SinchError(catalog::parse_sinch_error(s, &raw.body)),
        (None, _, Some((Failure::Connect, detail))) => Outcome::NoAnswer {
            failure: Failure::Connect,
            detail,
        },
        (None, _, Some((f, detail))) if callout => Outcome::Unknown {
            detail: format!("{}: {detail}", f.as_str()),
        },
        (None, _, Some((failure, detail))) => Outcome::NoAnswer { failure, detail },
        (None, _, None) => Outcome::NoAnswer {
            failure: Failure::Io,
            detail: "no answer".to_owned(),
        },
    }
}

/// What is known of a request's end besides its [`Outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending {
    /// The last HTTP status.
    pub http_status: Option<u16>,
    /// Attempts made.
    pub attempts: u32,
    /// Total time in µs.
    pub latency_us: i64,
    /// The last attempt's failure.
    pub failure: Option<Failure>,
}

/// The record of how a request ended.
pub fn final_record(outcome: &Outcome, end: Ending) -> FinalRecord {
    let mut fin = FinalRecord {
        outcome: outcome.kind(),
        http_status: end.http_status.and_then(|s| i16::try_from(s).ok()),
        attempts: i16::try_from(end.attempts).unwrap_or(i16::MAX),
        latency_us: end.latency_us,
        response_body: None,
        callid: None,
        error_code: None,
        error_status: None,
        error_message: None,
        error_reference: None,
        failure: end.failure,
    };
    match outcome {
        Outcome::Success { body, callid, .. } => {
            fin.response_body = body.clone();
            fin.callid = callid.clone();
        }
        Outcome::SinchError(e) => {
            fin.error_code = e.error_code.and_then(|c| i32::try_from(c).ok());
            fin.error_status = e.status.clone();
            fin.error_message = e.message.clone();
            fin.error_reference = e.reference.clone();
        }
        Outcome::NoAnswer { .. } | Outcome::Unknown { .. } => {}
    }
    fin
}

impl Outcome {
    /// The recorded outcome.
    pub fn kind(&self) -> RequestOutcome {
        match self {
            Outcome::Success { .. } => RequestOutcome::Success,
            Outcome::SinchError(_) => RequestOutcome::SinchError,
            Outcome::NoAnswer { .. } => RequestOutcome::NoAnswer,
            Outcome::Unknown { .. } => RequestOutcome::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn answer(status: Option<u16>, body: &str, failure: Option<Failure>) -> RawAnswer {
        RawAnswer {
            status,
            body: body.as_bytes().to_vec(),
            retry_after: None,
            failure: failure.map(|f| (f, "detail".to_owned())),
            latency: Duration::from_millis(5),
        }
    }

    fn classify(raw: RawAnswer, callout: bool) -> Outcome {
        let error = sinch_error(&raw);
        outcome(raw, error, callout)
    }

    #[test]
    fn outcomes_of_last_answers() {
        use Failure::*;
        use RequestOutcome as R;
        // (status, body, failure, callout) → recorded outcome.
        type Row = (
            Option<u16>,
            &'static str,
            Option<Failure>,
            bool,
            RequestOutcome,
        );
        let table: &[Row] = &[
            (Some(200), r#"{"callId":"c"}"#, None, true, R::Success),
            (Some(204), "", None, false, R::Success),
            (Some(200), "", Some(TooLarge), true, R::Success),
            (
                Some(400),
                r#"{"errorCode":40001}"#,
                None,
                true,
                R::SinchError,
            ),
            (Some(503), "down", None, false, R::SinchError),
            (Some(302), "", None, false, R::SinchError),
            (Some(101), "", None, false, R::SinchError),
            (None, "", Some(Connect), true, R::NoAnswer),
            (None, "", Some(Connect), false, R::NoAnswer),
            // The double-call rule: after sending, a callout's fate is unknown.
            (None, "", Some(Timeout), true, R::Unknown),
            (None, "", Some(Io), true, R::Unknown),
            (None, "", Some(TooLarge), true, R::Unknown),
            (None, "", Some(Timeout), false, R::NoAnswer),
            (None, "", Some(Io), false, R::NoAnswer),
            (None, "", None, true, R::NoAnswer),
        ];
        for (status, body, failure, callout, want) in table {
            let got = classify(answer(*status, body, *failure), *callout);
            assert_eq!(
                got.kind(),
                *want,
                "{status:?} {body:?} {failure:?} callout={callout}"
            );
        }
    }

    #[test]
    fn a_callouts_call_id_is_read_from_its_answer() {
        let callid = |body: &str, callout| match classify(answer(Some(200), body, None), callout) {
            Outcome::Success { callid, .. } => callid,
            other => panic!("{other:?}"),
        };
        assert_eq!(callid(r#"{"callId":"c-1"}"#, true).as_deref(), Some("c-1"));
        assert_eq!(callid(r#"{"callid":"c-2"}"#, true).as_deref(), Some("c-2"));
        assert_eq!(callid(r#"{"callId":"c-1"}"#, false), None);
        assert_eq!(callid(r#"{"callId":7}"#, true), None);
        assert_eq!(callid("not json", true), None);
    }

    #[test]
    fn decisions_and_labels() {
        assert_eq!(decision(&Next::Done), AttemptDecision::Done);
        assert_eq!(
            decision(&Next::RetryAfter(Duration::from_secs(1))),
            AttemptDecision::Retry
        );
        assert_eq!(
            decision(&Next::GiveUp("budget".into())),
            AttemptDecision::GiveUp
        );
        assert_eq!(attempt_result(&answer(Some(429), "", None)), "429");
        assert_eq!(
            attempt_result(&answer(None, "", Some(Failure::Timeout))),
            "timeout"
        );
        assert_eq!(attempt_result(&answer(None, "", None)), "io");
    }

    #[test]
    fn final_records_carry_what_the_outcome_holds() {
        let end = Ending {
            http_status: Some(400),
            attempts: 2,
            latency_us: 1_500,
            failure: None,
        };
        let error = classify(
            answer(
                Some(400),
                r#"{"errorCode":40001,"status":"400 Bad","message":"m","reference":"s-1"}"#,
                None,
            ),
            true,
        );
        let fin = final_record(&error, end);
        assert_eq!(fin.outcome, RequestOutcome::SinchError);
        assert_eq!(
            (fin.http_status, fin.attempts, fin.latency_us),
            (Some(400), 2, 1_500)
        );
        assert_eq!(fin.error_code, Some(40001));
        assert_eq!(fin.error_reference.as_deref(), Some("s-1"));
        assert_eq!((fin.response_body, fin.callid), (None, None));

        let ok = classify(answer(Some(200), r#"{"callId":"c-9"}"#, None), true);
        let fin = final_record(
            &ok,
            Ending {
                http_status: Some(200),
                ..end
            },
        );
        assert_eq!(fin.outcome, RequestOutcome::Success);
        assert_eq!(fin.callid.as_deref(), Some("c-9"));
        assert_eq!(
            fin.response_body,
            Some(serde_json::json!({"callId": "c-9"}))
        );
        assert_eq!(fin.error_code, None);

        let lost = classify(answer(None, "", Some(Failure::Timeout)), true);
        let fin = final_record(
            &lost,
            Ending {
                http_status: None,
                failure: Some(Failure::Timeout),
                ..end
            },
        );
        assert_eq!(fin.outcome, RequestOutcome::Unknown);
        assert_eq!(fin.failure, Some(Failure::Timeout));
        assert_eq!(fin.http_status, None);
    }
}
