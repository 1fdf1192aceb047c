//! Sending a checked request: admission (callouts only: the calls-in-progress cap and the
//! Idempotency-Key), one attempt at a time with the retry decision of [`super::retry`], and the
//! records of the request, each attempt and the end ([`super::classify`] decides what they say).

use std::time::{Duration, Instant};

use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::checks::LocalRefusal;
use super::classify::{self, Ending};
use super::client::{self, Exchange, RawAnswer};
use super::retry::{self, Next};
use super::signing::Auth;
use super::{refuse, Draft, Operation, Outcome, Performed, SinchApi};
use crate::catalog::{code, SinchError};
use crate::db::outbound::{Admission, AttemptRecord, EarlierCallout, NewOutbound};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::outcome::{LocalCheck, RequestOutcome};
use crate::recording::outbound::OutboundWriter;
use crate::redact::Masked;

/// Where and how a request goes.
struct Target<'a> {
    url: String,
    signed_path: String,
    method: &'static str,
    body: Option<Vec<u8>>,
    auth: &'a Auth,
}

/// One attempt: what was sent, what came back, and what follows.
struct Tried {
    sent_at: OffsetDateTime,
    x_timestamp: Option<String>,
    raw: RawAnswer,
    error: Option<SinchError>,
    retry_after: Option<Duration>,
    next: Next,
}

impl SinchApi {
    /// Admits (callouts), sends with retries, and records a checked request.
    pub async fn send(
        &self,
        store: &OutboundWriter,
        metrics: &Metrics,
        draft: Draft,
    ) -> Result<Performed, ApiError> {
        let auth = match self.usable_auth() {
            Ok(auth) => auth,
            Err(refusal) => return Err(refuse(store, metrics, &draft, &refusal).await),
        };
        let id = Uuid::now_v7();
        let mut row = draft.record(id, LocalCheck::Passed, RequestOutcome::Pending);
        if draft.operation == Operation::Callout {
            if let Some(earlier) = self.admit(store, metrics, &draft, &mut row).await? {
                return replay(earlier);
            }
        } else {
            store.insert_request(&row).await;
        }
        let target = self.target(&draft, auth)?;
        let started = Instant::now();
        let mut attempt: u32 = 0;
        let (last, gave_up) = loop {
            attempt += 1;
            let tried = self.attempt(&target, &draft, attempt).await;
            tried.report(&draft, attempt, metrics);
            store.insert_attempt(&tried.record(id, attempt, auth)).await;
            match &tried.next {
                Next::RetryAfter(wait) => tokio::time::sleep(*wait).await,
                Next::GiveUp(why) => {
                    let why = why.clone();
                    break (tried, Some(why));
                }
                Next::Done => break (tried, None),
            }
        };
        let end = Ending {
            http_status: last.raw.status,
            attempts: attempt,
            latency_us: us(started.elapsed()),
            failure: last.raw.failure.as_ref().map(|f| f.0),
        };
        let outcome =
            classify::outcome(last.raw, last.error, draft.operation == Operation::Callout);
        metrics.inc(
            "svamlgate_sinch_api_requests_total",
            &[
                ("operation", draft.operation.as_str()),
                ("outcome", outcome.kind().as_str()),
            ],
        );
        store
            .finish_request(id, &classify::final_record(&outcome, end))
            .await;
        Ok(Performed {
            reference: draft.reference,
            operation: draft.operation,
            attempts: attempt,
            outcome,
            gave_up,
            warnings: draft.callout.map(|c| c.warnings).unwrap_or_default(),
            replayed: false,
        })
    }

    /// The credentials to sign with, or why the client cannot send.
    fn usable_auth(&self) -> Result<&Auth, LocalRefusal> {
        if let (None, Some(auth)) = (&self.disabled, &self.auth) {
            return Ok(auth);
        }
        let message = match &self.disabled {
            Some(why) => format!("The Sinch API client is disabled by its configuration: {why}"),
            None => {
                "Calling Sinch needs SINCH_APPLICATION_KEY and SINCH_APPLICATION_SECRET".to_owned()
            }
        };
        Err(LocalRefusal {
            code: code::CONFIGURATION_ERROR,
            message,
            check: LocalCheck::NotConfigured,
            details: None,
        })
    }

    /// Admits a callout: records it as pending (`Ok(None)`), finds the earlier callout its
    /// Idempotency-Key names (`Ok(Some)`), or refuses it at the cap. When PostgreSQL cannot count,
    /// the callout goes out unchecked (recorded as `cap_unchecked`), unless this instance alone
    /// has the cap's worth of calls in progress.
    async fn admit(
        &self,
        store: &OutboundWriter,
        metrics: &Metrics,
        draft: &Draft,
        row: &mut NewOutbound,
    ) -> Result<Option<EarlierCallout>, ApiError> {
        let admitted = store
            .admit_callout_with(row, &self.limits, &draft.local_open)
            .await;
        let cap = self.limits.max_in_progress as usize;
        let refused = |n: i64, how: &str| {
            metrics.inc(
                "svamlgate_sinch_api_requests_total",
                &[
                    ("operation", Operation::Callout.as_str()),
                    ("outcome", RequestOutcome::RefusedLocally.as_str()),
                ],
            );
            tracing::warn!(reference = %draft.reference, in_progress = n, "callout refused: calls-in-progress cap reached{how}");
            Err(self.cap_error(&draft.reference, n))
        };
        match admitted {
            Ok(Admission::Admitted(_)) => Ok(None),
            Ok(Admission::Duplicate(earlier)) => Ok(Some(earlier)),
            Ok(Admission::Full(n)) => refused(n, ""),
            Err(_) if draft.local_open.len() >= cap => {
                let n = i64::try_from(draft.local_open.len()).unwrap_or(i64::MAX);
                refused(n, " (counted here; PostgreSQL unreachable)")
            }
            Err(e) => {
                tracing::warn!(reference = %draft.reference, error = %e,
                    "could not count calls in progress; the callout goes out unchecked (Sinch enforces its own limit)");
                row.local_check = LocalCheck::CapUnchecked;
                store.insert_request(row).await;
                Ok(None)
            }
        }
    }

    fn target<'a>(&self, draft: &Draft, auth: &'a Auth) -> Result<Target<'a>, ApiError> {
        let body = match (&draft.raw_body, &draft.body) {
            (Some(raw), _) => Some(raw.clone()),
            (None, Some(b)) => Some(serde_json::to_vec(b).map_err(|e| ApiError::internal(&e))?),
            (None, None) => None,
        };
        Ok(Target {
            url: format!("{}{}", self.base_url, draft.path),
            signed_path: format!("{}{}", self.base_path, draft.path),
            method: draft.operation.method().as_str(),
            body,
            auth,
        })
    }

    /// Sends once and decides what follows.
    async fn attempt(&self, t: &Target<'_>, draft: &Draft, attempt: u32) -> Tried {
        let sent_at = OffsetDateTime::now_utc();
        let headers = t
            .auth
            .headers(t.method, &t.signed_path, t.body.as_deref(), sent_at);
        let raw = client::exchange(&Exchange {
            url: &t.url,
            method: t.method,
            auth: &headers,
            body: t.body.as_deref(),
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
        })
        .await;
        let retry_after = raw
            .retry_after
            .as_deref()
            .and_then(|v| retry::parse_retry_after(v, OffsetDateTime::now_utc()));
        let next = retry::next(
            &self.policy,
            draft.operation == Operation::Callout,
            attempt,
            raw.end(),
            retry_after,
            retry::jitter(),
        );
        Tried {
            sent_at,
            x_timestamp: headers.x_timestamp,
            error: classify::sinch_error(&raw),
            raw,
            retry_after,
            next,
        }
    }

    fn cap_error(&self, reference: &str, in_progress: i64) -> ApiError {
        let limit = self.limits.max_in_progress;
        ApiError::new(
            code::CAPACITY_EXCEEDED,
            format!(
                "Too many calls in progress: {in_progress} of SINCH_MAX_CALLS_IN_PROGRESS={limit} (Sinch's default \
                 account limit is 10 concurrent calls). Wait for a call to end, or ask your Sinch account manager to \
                 raise the account's limit and then raise SINCH_MAX_CALLS_IN_PROGRESS to match."
            ),
        )
        .with_reference(reference.to_owned())
        .with_details(json!({"inProgress": in_progress, "limit": limit}))
    }
}

impl Tried {
    /// Logs the attempt and counts it.
    fn report(&self, draft: &Draft, attempt: u32, metrics: &Metrics) {
        let raw = &self.raw;
        let error = self.error.as_ref();
        let destination = draft
            .callout
            .as_ref()
            .and_then(|c| c.destination.as_deref())
            .unwrap_or_default();
        tracing::info!(
            reference = %draft.reference,
            operation = draft.operation.as_str(),
            path = %draft.path,
            destination = %Masked(destination),
            attempt,
            status = raw.status,
            failure = raw.failure.as_ref().map(|f| f.0.as_str()),
            error_code = error.and_then(|e| e.error_code),
            sinch_reference = error.and_then(|e| e.reference.as_deref()),
            latency_ms = raw.latency.as_millis() as u64,
            decision = classify::decision(&self.next).as_str(),
            "Sinch API attempt"
        );
        let operation = ("operation", draft.operation.as_str());
        let result = classify::attempt_result(raw);
        metrics.inc(
            "svamlgate_sinch_api_attempts_total",
            &[operation, ("result", result.as_str())],
        );
        metrics.observe(
            "svamlgate_sinch_api_duration_seconds",
            &[operation],
            raw.latency,
        );
    }

    /// The attempt's record.
    fn record(&self, request_id: Uuid, attempt: u32, auth: &Auth) -> AttemptRecord {
        let raw = &self.raw;
        let error = self.error.as_ref();
        AttemptRecord {
            request_id,
            attempt: i16::try_from(attempt).unwrap_or(i16::MAX),
            sent_at: self.sent_at,
            latency_us: us(raw.latency),
            auth_scheme: auth.scheme(),
            x_timestamp: self.x_timestamp.clone(),
            http_status: raw.status.and_then(|s| i16::try_from(s).ok()),
            response_body: (!raw.body.is_empty())
                .then(|| String::from_utf8_lossy(&raw.body).into_owned()),
            retry_after_ms: self.retry_after.map(ms),
            failure: raw.failure.as_ref().map(|f| f.0),
            failure_detail: raw.failure.as_ref().map(|f| f.1.clone()),
            error_code: error
                .and_then(|e| e.error_code)
                .and_then(|c| i32::try_from(c).ok()),
            error_status: error.and_then(|e| e.status.clone()),
            error_message: error.and_then(|e| e.message.clone()),
            error_reference: error.and_then(|e| e.reference.clone()),
            classified_code: error
                .and_then(|e| e.info)
                .and_then(|i| i32::try_from(i.code).ok()),
            code_mismatch: error.map(|e| e.code_mismatch),
            decision: classify::decision(&self.next),
        }
    }
}

/// The answer to a callout whose Idempotency-Key names an earlier one: the earlier answer when it
/// placed the call, 409 40900 while it is in flight or when its outcome is unknown.
fn replay(earlier: EarlierCallout) -> Result<Performed, ApiError> {
    let conflict = |why: &str| {
        Err(ApiError::new(
            code::CONFLICT,
            format!(
                "A callout with this Idempotency-Key {why} (reference {}); it is not sent again",
                earlier.reference
            ),
        )
        .with_details(json!({"earlierReference": earlier.reference, "outcome": earlier.outcome})))
    };
    match earlier.outcome {
        RequestOutcome::Success => Ok(Performed {
            reference: earlier.reference.clone(),
            operation: Operation::Callout,
            attempts: u32::try_from(earlier.attempts).unwrap_or(1).max(1),
            outcome: Outcome::Success {
                status: earlier
                    .http_status
                    .and_then(|s| u16::try_from(s).ok())
                    .unwrap_or(200),
                body: earlier.response_body.clone(),
                callid: earlier.callid.clone(),
            },
            gave_up: None,
            warnings: Vec::new(),
            replayed: true,
        }),
        RequestOutcome::Pending => conflict("is in flight: wait for its answer"),
        _ => conflict("was sent and its answer never came: it may have placed the call"),
    }
}

fn us(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
