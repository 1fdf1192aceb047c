//! Talking to Sinch's Calling API v1: callouts, call control and conference control.
//!
//! A request goes through three stages, each recorded in PostgreSQL ([`crate::db::outbound`]):
//!
//! 1. **Local checks** ([`checks`]): E.164 numbers (40005), the callout's shape (40001/40002),
//!    inline SVAML and manage-call bodies through the gate (40001 with the report). A refused
//!    request is recorded with `outcome = refused_locally` and never leaves ([`refuse`]).
//! 2. **Admission** (callouts only): calls in progress, counted from recorded callbacks (ICE or
//!    ACE opens a call, DICE closes it) and from callouts not yet ended, are capped at
//!    `SINCH_MAX_CALLS_IN_PROGRESS`: 429 42900. If the count cannot be made (database down) the
//!    callout goes out anyway: Sinch enforces its own limit, and svamlgate must not be the reason
//!    a call is not placed.
//! 3. **Sending** ([`SinchApi::send`], in `send.rs`): signed ([`signing`]), sent ([`client`]) one
//!    attempt at a time, retried per [`retry`], every attempt and Sinch's answer (errors parsed
//!    leniently with [`crate::catalog::parse_sinch_error`]) recorded; what an answer comes to
//!    (the outcome, the double-call rule, the records) is decided in [`classify`], without I/O.
//!
//! [`Performed::into_result`] turns the outcome into the admin API's answer: Sinch's JSON plus
//! svamlgate's `reference`, or the error envelope with Sinch's error in `details`.

pub mod bodies;
pub mod checks;
pub mod classify;
pub mod client;
pub mod retry;
mod send;
pub mod signing;

use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};
use uuid::Uuid;

#[cfg(test)]
use crate::catalog;
use crate::catalog::{code, SinchError};
use crate::config::ServeArgs;
use crate::db::outbound::{CallLimits, NewOutbound};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::outcome::{LocalCheck, RequestOutcome};
use crate::recording::outbound::OutboundWriter;

use checks::{CheckedCallout, LocalRefusal};
use client::Failure;
use retry::RetryPolicy;
use signing::Auth;

use crate::config::DEFAULT_BASE_URL;
use crate::outcome::{CalloutMethod, Operation};

/// The client's settings, built once from configuration. `Send + Sync`: the HTTP client itself
/// lives per thread ([`client`]).
#[derive(Debug, Clone)]
pub struct SinchApi {
    /// Why the client is off (bad outbound settings), if it is.
    disabled: Option<String>,
    base_url: String,
    base_path: String,
    auth: Option<Auth>,
    policy: RetryPolicy,
    timeout: Duration,
    connect_timeout: Duration,
    limits: CallLimits,
}

/// A request about to be checked, admitted and sent.
#[derive(Debug, Clone)]
pub struct Draft {
    /// svamlgate's reference (answered to the client, stored everywhere).
    pub reference: String,
    /// What it does.
    pub operation: Operation,
    /// API path (no host).
    pub path: String,
    /// JSON body (recorded).
    pub body: Option<Value>,
    /// The body's bytes as the client sent them: sent to Sinch as they are, so that nothing
    /// (key order, number formatting) changes on the way. Without them `body` is serialised.
    pub raw_body: Option<Vec<u8>>,
    /// Call id (from the path).
    pub callid: Option<String>,
    /// Conference id.
    pub conference_id: Option<String>,
    /// Call leg.
    pub call_leg: Option<String>,
    /// What the callout checks found.
    pub callout: Option<CheckedCallout>,
    /// Idempotency-Key of a callout.
    pub idempotency_key: Option<String>,
    /// This instance's calls in progress whose records may not be in PostgreSQL yet: counted
    /// against the cap unless PostgreSQL has them ([`Draft::with_local_open`]).
    pub local_open: Vec<String>,
}

impl Draft {
    fn new(operation: Operation, path: String) -> Draft {
        Draft {
            reference: crate::error::new_reference(),
            operation,
            path,
            body: None,
            raw_body: None,
            callid: None,
            conference_id: None,
            call_leg: None,
            callout: None,
            idempotency_key: None,
            local_open: Vec::new(),
        }
    }
    /// A callout (`checked` is `None` when the checks refused it).
    pub fn callout(body: Value, checked: Option<CheckedCallout>) -> Draft {
        let mut d = Draft::new(Operation::Callout, "/calling/v1/callouts".to_owned());
        d.conference_id = checked.as_ref().and_then(|c| c.conference_id.clone());
        d.body = Some(body);
        d.callout = checked;
        d
    }
    /// Sends these bytes (the client's body, which parsed to `body`) instead of re-serialising.
    pub fn with_raw_body(mut self, raw: Vec<u8>) -> Draft {
        self.raw_body = Some(raw);
        self
    }
    /// Names the callout with the client's Idempotency-Key.
    pub fn with_idempotency_key(mut self, key: Option<String>) -> Draft {
        self.idempotency_key = key;
        self
    }
    /// Counts these calls of this instance against the cap, those PostgreSQL does not have yet
    /// (all of them when PostgreSQL cannot be asked).
    pub fn with_local_open(mut self, callids: Vec<String>) -> Draft {
        self.local_open = callids;
        self
    }
    /// Call information.
    pub fn get_call(callid: &str) -> Draft {
        let mut d = Draft::new(Operation::GetCall, format!("/calling/v1/calls/id/{callid}"));
        d.callid = Some(callid.to_owned());
        d
    }
    /// Manage a call.
    pub fn manage_call(callid: &str, body: Value) -> Draft {
        let mut d = Draft::new(
            Operation::ManageCall,
            format!("/calling/v1/calls/id/{callid}"),
        );
        d.callid = Some(callid.to_owned());
        d.body = Some(body);
        d
    }
    /// Manage one leg of a call.
    pub fn manage_call_leg(callid: &str, leg: &str, body: Value) -> Draft {
        let mut d = Draft::new(
            Operation::ManageCallLeg,
            format!("/calling/v1/calls/id/{callid}/leg/{leg}"),
        );
        d.callid = Some(callid.to_owned());
        d.call_leg = Some(leg.to_owned());
        d.body = Some(body);
        d
    }
    /// Conference participants.
    pub fn get_conference(conference_id: &str) -> Draft {
        let mut d = Draft::new(
            Operation::GetConference,
            format!("/calling/v1/conferences/id/{conference_id}"),
        );
        d.conference_id = Some(conference_id.to_owned());
        d
    }
    /// Kick every participant.
    pub fn kick_all(conference_id: &str) -> Draft {
        let mut d = Draft::new(
            Operation::KickAll,
            format!("/calling/v1/conferences/id/{conference_id}"),
        );
        d.conference_id = Some(conference_id.to_owned());
        d
    }
    /// Mute, unmute, hold or resume one participant.
    pub fn manage_participant(conference_id: &str, callid: &str, body: Value) -> Draft {
        let mut d = Draft::new(
            Operation::ManageParticipant,
            format!("/calling/v1/conferences/id/{conference_id}/{callid}"),
        );
        d.conference_id = Some(conference_id.to_owned());
        d.callid = Some(callid.to_owned());
        d.body = Some(body);
        d
    }
    /// Kick one participant.
    pub fn kick_participant(conference_id: &str, callid: &str) -> Draft {
        let mut d = Draft::new(
            Operation::KickParticipant,
            format!("/calling/v1/conferences/id/{conference_id}/{callid}"),
        );
        d.conference_id = Some(conference_id.to_owned());
        d.callid = Some(callid.to_owned());
        d
    }

    fn record(&self, id: Uuid, local_check: LocalCheck, outcome: RequestOutcome) -> NewOutbound {
        NewOutbound {
            id,
            reference: self.reference.clone(),
            operation: self.operation,
            method: self.operation.method(),
            path: self.path.clone(),
            body: self.body.clone(),
            callid: self.callid.clone(),
            conference_id: self.conference_id.clone(),
            call_leg: self.call_leg.clone(),
            callout_method: self
                .callout
                .as_ref()
                .map(|c| c.method)
                .or_else(|| self.callout_method_from_body()),
            destination: self
                .callout
                .as_ref()
                .and_then(|c| c.destination.clone())
                .or_else(|| self.destination_from_body()),
            dice_expected: self.callout.as_ref().map(|c| c.dice_expected),
            local_check,
            local_report: None,
            outcome,
            idempotency_key: self.idempotency_key.clone(),
        }
    }

    fn callout_method_from_body(&self) -> Option<CalloutMethod> {
        CalloutMethod::parse(self.body.as_ref()?.get("method")?.as_str()?)
    }

    fn destination_from_body(&self) -> Option<String> {
        let b = self.body.as_ref()?;
        let m = b.get("method")?.as_str()?;
        b.get(m)?
            .get("destination")?
            .get("endpoint")?
            .as_str()
            .map(str::to_owned)
    }
}

/// How a request ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Sinch answered 2xx.
    Success {
        /// HTTP status.
        status: u16,
        /// JSON answer, if any.
        body: Option<Value>,
        /// Call id of a callout.
        callid: Option<String>,
    },
    /// Sinch answered with an error.
    SinchError(SinchError),
    /// No answer, after retries where allowed.
    NoAnswer {
        /// Why.
        failure: Failure,
        /// The client library's message.
        detail: String,
    },
    /// A callout whose answer never came: Sinch may have placed the call.
    Unknown {
        /// Why.
        detail: String,
    },
}

/// The result of [`SinchApi::send`].
#[derive(Debug, Clone)]
pub struct Performed {
    /// svamlgate's reference.
    pub reference: String,
    /// What was done.
    pub operation: Operation,
    /// Attempts made.
    pub attempts: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// Why retrying stopped early, if it did.
    pub gave_up: Option<String>,
    /// Warnings of the local checks.
    pub warnings: Vec<String>,
    /// The answer of an earlier callout with the same Idempotency-Key, replayed.
    pub replayed: bool,
}

impl Performed {
    /// The admin API's answer: Sinch's JSON object plus `reference`, `sinchStatus`, `attempts`
    /// (and `warnings` when there are any); or the error envelope, Sinch's own error under
    /// `details.sinch`.
    pub fn into_result(self) -> Result<Value, ApiError> {
        let Performed {
            reference,
            attempts,
            outcome,
            gave_up,
            warnings,
            replayed,
            ..
        } = self;
        let error = match outcome {
            Outcome::Success { status, body, .. } => {
                let mut out = answer_object(body);
                out.insert("reference".into(), json!(reference));
                out.insert("sinchStatus".into(), json!(status));
                out.insert("attempts".into(), json!(attempts));
                if !warnings.is_empty() {
                    out.insert("warnings".into(), json!(warnings));
                }
                if replayed {
                    out.insert("replayed".into(), json!(true));
                }
                return Ok(Value::Object(out));
            }
            Outcome::SinchError(e) => sinch_refusal(&e, gave_up.as_deref(), attempts),
            Outcome::NoAnswer { failure, detail } => ApiError::new(
                code::TEMPORARY_DOWN,
                format!(
                    "No answer from Sinch ({}: {detail}) after {attempts} attempt(s); try again later",
                    failure.as_str()
                ),
            )
            .with_details(json!({"failure": failure.as_str(), "attempts": attempts})),
            Outcome::Unknown { detail } => ApiError::new(
                code::TEMPORARY_DOWN,
                format!(
                    "Sinch did not answer the callout ({detail}). It may or may not have placed the call, \
                     so svamlgate did not send it again: a second attempt could place a second call. \
                     Watch for the call's callbacks before placing it again."
                ),
            )
            .with_details(json!({"failure": "unknown_outcome", "attempts": attempts})),
        };
        Err(error.with_reference(reference))
    }
}

/// Sinch's JSON answer as an object: an object as it is, another value under `answer`, nothing
/// as an empty object.
fn answer_object(body: Option<Value>) -> serde_json::Map<String, Value> {
    match body {
        Some(Value::Object(m)) => m,
        Some(other) => {
            let mut m = serde_json::Map::new();
            m.insert("answer".into(), other);
            m
        }
        None => serde_json::Map::new(),
    }
}

/// The envelope of an error answer from Sinch: the catalog code it reads as (50000 when none), a
/// message, and Sinch's own error under `details.sinch`.
fn sinch_refusal(e: &SinchError, gave_up: Option<&str>, attempts: u32) -> ApiError {
    let code = e.info.map(|i| i.code).unwrap_or(code::INTERNAL_ERROR);
    let details = json!({
        "sinch": {
            "httpStatus": e.http_status,
            "errorCode": e.error_code,
            "status": e.status,
            "message": e.message,
            "reference": e.reference,
            "classifiedCode": e.info.map(|i| i.code),
            "codeMismatch": e.code_mismatch,
            "remedy": e.info.map(|i| i.remedy),
        },
        "attempts": attempts,
    });
    ApiError::new(code, sinch_refusal_message(e, gave_up)).with_details(details)
}

/// "Sinch refused the request: HTTP <status>", then what it reads as in the catalog, Sinch's
/// message and reference, and why retrying stopped, each when known.
fn sinch_refusal_message(e: &SinchError, gave_up: Option<&str>) -> String {
    let mut message = format!("Sinch refused the request: HTTP {}", e.http_status);
    if let Some(info) = e.info {
        message.push_str(&format!(", read as {}", info.status_line()));
    }
    if let Some(m) = &e.message {
        message.push_str(&format!(": {m}"));
    }
    if let Some(r) = &e.reference {
        message.push_str(&format!(" (Sinch reference {r})"));
    }
    if let Some(g) = gave_up {
        message.push_str(&format!("; {g}"));
    }
    message
}

/// Records a request refused by the local checks and returns its envelope (same reference).
pub async fn refuse(
    store: &OutboundWriter,
    metrics: &Metrics,
    draft: &Draft,
    refusal: &LocalRefusal,
) -> ApiError {
    metrics.inc(
        "svamlgate_sinch_api_requests_total",
        &[
            ("operation", draft.operation.as_str()),
            ("outcome", RequestOutcome::RefusedLocally.as_str()),
        ],
    );
    let mut row = draft.record(
        Uuid::now_v7(),
        refusal.check,
        RequestOutcome::RefusedLocally,
    );
    row.local_report = refusal.details.clone();
    store.insert_request(&row).await;
    tracing::info!(
        reference = %draft.reference,
        operation = draft.operation.as_str(),
        check = refusal.check.as_str(),
        code = refusal.code,
        "Sinch API request refused before sending"
    );
    let e = ApiError::new(refusal.code, refusal.message.clone())
        .with_reference(draft.reference.clone());
    match &refusal.details {
        Some(d) => e.with_details(d.clone()),
        None => e,
    }
}

impl SinchApi {
    /// Builds the client settings. Without SINCH_APPLICATION_KEY/SECRET it is built anyway and
    /// answers every request with 503 50301.
    pub fn from_config(config: &ServeArgs) -> anyhow::Result<SinchApi> {
        let a = &config.sinch_api;
        let uri: awc::http::Uri = a.sinch_api_base_url.trim().parse().with_context(|| {
            format!("SINCH_API_BASE_URL {:?} is not a URL", a.sinch_api_base_url)
        })?;
        let scheme = uri.scheme_str().unwrap_or_default();
        let authority = uri.authority().map(|x| x.as_str()).unwrap_or_default();
        if !matches!(scheme, "http" | "https") || authority.is_empty() || uri.query().is_some() {
            anyhow::bail!(
                "SINCH_API_BASE_URL must be an http(s) URL without a query, e.g. {DEFAULT_BASE_URL}"
            );
        }
        let base_path = uri.path().trim_end_matches('/').to_owned();
        let auth = match (&config.application_key, &config.application_secret) {
            (Some(k), Some(s)) => Some(
                Auth::new(k, s.expose(), a.sinch_api_basic_auth)
                    .context("SINCH_APPLICATION_SECRET is invalid")?,
            ),
            _ => None,
        };
        if a.sinch_api_connect_timeout_ms >= a.sinch_api_timeout_ms {
            tracing::warn!(
                "SINCH_API_CONNECT_TIMEOUT_MS is not below SINCH_API_TIMEOUT_MS: a slow connection then \
                 looks like a timeout after sending, and callouts are not retried"
            );
        }
        Ok(SinchApi {
            disabled: None,
            base_url: format!("{scheme}://{authority}{base_path}"),
            base_path,
            auth,
            policy: RetryPolicy {
                max_attempts: a.sinch_api_max_attempts.max(1),
                base: Duration::from_millis(a.sinch_api_retry_base_ms),
                max_delay: Duration::from_millis(a.sinch_api_retry_max_ms),
            },
            timeout: Duration::from_millis(a.sinch_api_timeout_ms.max(1)),
            connect_timeout: Duration::from_millis(a.sinch_api_connect_timeout_ms.max(1)),
            limits: CallLimits {
                max_in_progress: a.sinch_max_calls_in_progress,
                max_age: Duration::from_secs(a.sinch_call_max_age_secs),
                untracked: Duration::from_secs(a.sinch_untracked_call_secs),
            },
        })
    }

    /// As [`SinchApi::from_config`], but a bad outbound setting does not stop svamlgate: callbacks
    /// must be served whatever the outbound client's settings are. The error is logged, and every
    /// outbound request is answered 503 50301 with the reason.
    pub fn from_config_or_disabled(config: &ServeArgs) -> SinchApi {
        match SinchApi::from_config(config) {
            Ok(api) => api,
            Err(e) => {
                let reason = format!("{e:#}");
                tracing::error!(error = %reason, "the Sinch API client is disabled; callbacks are not affected");
                let mut fallback = config.clone();
                fallback.sinch_api.sinch_api_base_url = DEFAULT_BASE_URL.to_owned();
                fallback.application_key = None;
                fallback.application_secret = None;
                let mut api = SinchApi::from_config(&fallback).unwrap_or_else(|_| SinchApi {
                    disabled: None,
                    base_url: DEFAULT_BASE_URL.to_owned(),
                    base_path: String::new(),
                    auth: None,
                    policy: RetryPolicy {
                        max_attempts: 1,
                        base: Duration::from_millis(500),
                        max_delay: Duration::from_secs(8),
                    },
                    timeout: Duration::from_secs(10),
                    connect_timeout: Duration::from_secs(3),
                    limits: CallLimits {
                        max_in_progress: 10,
                        max_age: Duration::from_secs(14_400),
                        untracked: Duration::from_secs(600),
                    },
                });
                api.disabled = Some(reason);
                api
            }
        }
    }

    /// Base URL requests go to (the tests check how it is read from configuration).
    #[cfg(test)]
    fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The calls-in-progress limits.
    pub fn limits(&self) -> CallLimits {
        self.limits
    }

    /// Whether key and secret are configured.
    pub fn configured(&self) -> bool {
        self.auth.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn performed(outcome: Outcome) -> Performed {
        Performed {
            reference: "ref-1".into(),
            operation: Operation::Callout,
            attempts: 2,
            outcome,
            gave_up: None,
            warnings: vec![],
            replayed: false,
        }
    }

    #[test]
    fn success_is_sinchs_answer_plus_reference() {
        let v = performed(Outcome::Success {
            status: 200,
            body: Some(json!({"callId": "c-1"})),
            callid: Some("c-1".into()),
        })
        .into_result()
        .unwrap();
        assert_eq!(
            v,
            json!({"callId": "c-1", "reference": "ref-1", "sinchStatus": 200, "attempts": 2})
        );
        let v = performed(Outcome::Success {
            status: 204,
            body: None,
            callid: None,
        })
        .into_result()
        .unwrap();
        assert_eq!(v["sinchStatus"], 204);
    }

    #[test]
    fn sinch_errors_become_catalog_envelopes() {
        // The seed's 50300 example carries 50500: the envelope says what the table means.
        let e = catalog::parse_sinch_error(
            503,
            br#"{"status":"503 TemporaryDown","errorCode":50500,"message":"Service temporarily unavailable","reference":"s-9"}"#,
        );
        let err = performed(Outcome::SinchError(e)).into_result().unwrap_err();
        let env = err.envelope();
        assert_eq!(
            (env.error_code, env.status.as_str()),
            (50300, "503 TemporaryDown")
        );
        assert_eq!(env.reference, "ref-1");
        let d = env.details.unwrap();
        assert_eq!(d["sinch"]["errorCode"], 50500);
        assert_eq!(d["sinch"]["reference"], "s-9");
        assert_eq!(d["sinch"]["codeMismatch"], true);
        assert!(env.message.contains("s-9"));
        // Not in the catalog at all: 500 50000.
        let e = catalog::parse_sinch_error(418, b"teapot");
        let env = performed(Outcome::SinchError(e))
            .into_result()
            .unwrap_err()
            .envelope();
        assert_eq!(env.error_code, 50000);
        let env = performed(Outcome::Unknown {
            detail: "timeout".into(),
        })
        .into_result()
        .unwrap_err()
        .envelope();
        assert_eq!(env.error_code, 50300);
        assert!(env.message.contains("second call"));
    }

    #[test]
    fn sinch_refusal_messages_say_what_is_known() {
        let classified = catalog::parse_sinch_error(
            400,
            br#"{"errorCode":40001,"message":"Invalid number","reference":"s-1"}"#,
        );
        let line = classified.info.map(|i| i.status_line()).unwrap_or_default();
        let bare = SinchError {
            message: None,
            reference: None,
            info: None,
            ..catalog::parse_sinch_error(418, b"")
        };
        let cases = [
            (
                &bare,
                None,
                "Sinch refused the request: HTTP 418".to_owned(),
            ),
            (
                &bare,
                Some("retry budget spent"),
                "Sinch refused the request: HTTP 418; retry budget spent".to_owned(),
            ),
            (
                &classified,
                None,
                format!(
                    "Sinch refused the request: HTTP 400, read as {line}: Invalid number \
                     (Sinch reference s-1)"
                ),
            ),
        ];
        for (e, gave_up, want) in cases {
            assert_eq!(sinch_refusal_message(e, gave_up), want);
        }
        assert!(!line.is_empty());
    }

    #[test]
    fn drafts_build_paths() {
        assert_eq!(Draft::get_call("c1").path, "/calling/v1/calls/id/c1");
        assert_eq!(
            Draft::manage_call_leg("c1", "callee", json!({})).path,
            "/calling/v1/calls/id/c1/leg/callee"
        );
        let d = Draft::manage_participant("room", "c2", json!({"command": "mute"}));
        assert_eq!(d.path, "/calling/v1/conferences/id/room/c2");
        assert_eq!(d.operation.method().as_str(), "PATCH");
        assert_eq!(
            Draft::kick_all("room").operation.method().as_str(),
            "DELETE"
        );
        let d = Draft::callout(
            json!({"method": "ttsCallout", "ttsCallout": {"destination": {"endpoint": "123"}}}),
            None,
        );
        let r = d.record(
            Uuid::nil(),
            LocalCheck::InvalidNumber,
            RequestOutcome::RefusedLocally,
        );
        assert_eq!(r.callout_method, Some(CalloutMethod::Tts));
        assert_eq!(r.destination.as_deref(), Some("123"));
    }

    #[test]
    fn base_urls() {
        let mut c = ServeArgs::for_tests();
        c.sinch_api.sinch_api_base_url = "https://calling-euc1.api.sinch.com/".into();
        let api = SinchApi::from_config(&c).unwrap();
        assert_eq!(api.base_url(), "https://calling-euc1.api.sinch.com");
        assert!(!api.configured());
        c.sinch_api.sinch_api_base_url = "http://127.0.0.1:4000/prefix/".into();
        let api = SinchApi::from_config(&c).unwrap();
        assert_eq!(api.base_url(), "http://127.0.0.1:4000/prefix");
        assert_eq!(api.base_path, "/prefix");
        for bad in ["calling.api.sinch.com", "ftp://x", "https://x/?a=1", ""] {
            c.sinch_api.sinch_api_base_url = bad.into();
            assert!(SinchApi::from_config(&c).is_err(), "{bad}");
            let off = SinchApi::from_config_or_disabled(&c);
            assert!(off
                .disabled
                .as_deref()
                .is_some_and(|d| d.contains("SINCH_API_BASE_URL")));
        }
    }
}
