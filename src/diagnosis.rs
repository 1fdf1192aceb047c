//! Sinch's Voice troubleshooting checklist, answered per call from svamlgate's own records:
//! the outbound requests and Sinch's answers (`outbound_requests`, `outbound_attempts`), the
//! callbacks (`callbacks`, `rejected_replies`) and signature refusals (`refusals`).
//!
//! Each step is `pass`, `fail` or `unknown`, with the evidence read and the next thing to check:
//!
//! 1. `authenticated`: Sinch accepted svamlgate's signed request (no 401xx/40301).
//! 2. `number_format`: the numbers were E.164 (local check, or Sinch's 40005).
//! 3. `rang`: the callout was accepted, then ACE, or DICE with its `reason` and `result`.
//! 4. `callback_arrived`: a callback arrived for the call, and its signature state.
//! 5. `svaml_valid`: the SVAML returned was valid and Sinch did not reject it.
//! 6. `credit_capacity`: no 40200, 42900 or 42901 (from Sinch or the local cap).
//!
//! [`diagnose`] is pure (tested without a database); [`gather`] reads the facts.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::db::outbound::{CallLimits, CallbackFacts, OutboundStore};
use crate::events::EventKind;
use crate::outcome::{FallbackReason, SignatureState};
use crate::redact::mask_number;

/// The state of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = DiagnosisStatus)]
pub enum Status {
    /// The records show the step went right.
    Pass,
    /// The records show the step went wrong.
    Fail,
    /// The records do not tell.
    Unknown,
}

impl Status {
    /// `pass`, `fail`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Unknown => "unknown",
        }
    }
}

/// The ids of the steps, in Sinch's order.
pub const STEP_IDS: [&str; 6] = [
    "authenticated",
    "number_format",
    "rang",
    "callback_arrived",
    "svaml_valid",
    "credit_capacity",
];

/// The schema of a step id (one of [`STEP_IDS`]).
fn step_id_schema() -> utoipa::openapi::Object {
    crate::outcome::text_schema(STEP_IDS)
}

/// One step of the checklist.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DiagnosisStep)]
pub struct Step {
    /// Stable id.
    #[schema(schema_with = step_id_schema)]
    pub id: &'static str,
    /// What the step checks.
    #[schema(value_type = String)]
    pub title: &'static str,
    /// Verdict.
    pub status: Status,
    /// What was read (numbers masked).
    pub evidence: Vec<String>,
    /// What to check next.
    pub next: String,
}

/// The checklist for one call.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(
    description = "Sinch's troubleshooting checklist for one call, answered from the records."
)]
pub struct Diagnosis {
    /// The call id, when known (a callout refused before Sinch gave one has none).
    #[schema(required = true)]
    pub callid: Option<String>,
    /// The svamlgate reference asked for, when the diagnosis was asked by reference.
    #[schema(required = true)]
    pub reference: Option<String>,
    /// The id of the first failing step, if any.
    #[schema(required = true, value_type = Option<String>)]
    pub failing_step: Option<&'static str>,
    /// One sentence.
    pub summary: String,
    /// The steps, in Sinch's order.
    #[schema(min_items = 6, max_items = 6)]
    pub steps: Vec<Step>,
}

/// What the diagnosis reads.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Call id, if known.
    pub callid: Option<String>,
    /// Reference asked for, if the lookup was by reference.
    pub reference: Option<String>,
    /// Outbound requests of the call (JSON as listed by the admin API), oldest first.
    pub requests: Vec<Value>,
    /// Callbacks of the call, in arrival order.
    pub callbacks: Vec<CallbackFacts>,
    /// Replies of the call the gate stopped.
    pub rejected_replies: i64,
    /// Signature refusals after the callout, per reason (only read when no callback arrived).
    pub refusals: Vec<(String, i64)>,
    /// Calls in progress now, if it could be counted.
    pub in_progress: Option<i64>,
    /// The cap.
    pub limits: CallLimits,
    /// Now.
    pub now: OffsetDateTime,
}

/// How long after a callout a missing callback counts as a failure rather than "not yet".
pub const CALLBACK_GRACE_SECS: i64 = 120;

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn n(v: &Value, k: &str) -> Option<i64> {
    v.get(k).and_then(Value::as_i64)
}

fn attempts(r: &Value) -> impl Iterator<Item = &Value> {
    r.get("attempts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// `the callout`, `the manage_call request` …
fn what(r: &Value) -> String {
    match s(r, "operation") {
        Some("callout") => format!(
            "the {} ({})",
            s(r, "calloutMethod").unwrap_or("callout"),
            s(r, "reference").unwrap_or("?")
        ),
        Some(op) => format!("the {op} request ({})", s(r, "reference").unwrap_or("?")),
        None => "a request".to_owned(),
    }
}

fn answer_text(a: &Value) -> String {
    let mut t = format!("HTTP {}", n(a, "httpStatus").unwrap_or_default());
    if let Some(c) = n(a, "errorCode") {
        t.push_str(&format!(" errorCode {c}"));
    }
    if let Some(c) = n(a, "classifiedCode") {
        if Some(c) != n(a, "errorCode") {
            t.push_str(&format!(" (read as {c})"));
        }
    }
    if let Some(m) = s(a, "errorMessage") {
        t.push_str(&format!(" \"{m}\""));
    }
    if let Some(r) = s(a, "errorReference") {
        t.push_str(&format!(", Sinch reference {r}"));
    }
    t
}

fn code_of(a: &Value) -> Option<i64> {
    n(a, "classifiedCode").or_else(|| n(a, "errorCode"))
}

fn is_auth_error(a: &Value) -> bool {
    matches!(code_of(a), Some(c) if (40100..40200).contains(&c) || c == 40301 || c == 40004)
        || matches!(n(a, "httpStatus"), Some(401))
}

fn step(
    id: &'static str,
    title: &'static str,
    status: Status,
    evidence: Vec<String>,
    next: impl Into<String>,
) -> Step {
    Step {
        id,
        title,
        status,
        evidence,
        next: next.into(),
    }
}

fn authenticated(f: &Facts) -> Step {
    const T: &str = "The request to Sinch was authenticated";
    let answered: Vec<(&Value, &Value)> = f
        .requests
        .iter()
        .flat_map(|r| attempts(r).map(move |a| (r, a)))
        .filter(|(_, a)| n(a, "httpStatus").is_some())
        .collect();
    let sent = f.requests.iter().any(|r| attempts(r).next().is_some());
    if f.requests.is_empty() {
        return step(
            "authenticated",
            T,
            Status::Unknown,
            vec!["svamlgate sent no request to Sinch for this call (an inbound call, or one placed elsewhere)".into()],
            "Nothing to check here for inbound calls; see the callback step.",
        );
    }
    if !sent {
        return step(
            "authenticated",
            T,
            Status::Unknown,
            vec!["No request reached Sinch: every one was refused before sending".into()],
            "Fix what the local checks refused (see the steps below), then send again.",
        );
    }
    match answered.last() {
        None => step(
            "authenticated",
            T,
            Status::Unknown,
            vec!["Sinch never answered (connection failures or timeouts)".into()],
            "Check that SINCH_API_BASE_URL is reachable from svamlgate (DNS, firewall, proxy).",
        ),
        Some((r, a)) if is_auth_error(a) => {
            let scheme = s(a, "authScheme").unwrap_or("signed");
            step(
                "authenticated",
                T,
                Status::Fail,
                vec![format!(
                    "Sinch answered {} to {} ({scheme} request)",
                    answer_text(a),
                    what(r)
                )],
                match code_of(a) {
                    Some(40101) | Some(40105) => "Check svamlgate's clock (NTP): the x-timestamp it signs must be current.".to_owned(),
                    Some(40301) => "Sinch refused the authorization scheme: check SINCH_API_BASIC_AUTH (signed requests are the default).".to_owned(),
                    _ => "Check that SINCH_APPLICATION_KEY and SINCH_APPLICATION_SECRET are the key and secret of this application in the Sinch dashboard.".to_owned(),
                },
            )
        }
        Some((r, a)) => step(
            "authenticated",
            T,
            Status::Pass,
            vec![format!(
                "Sinch answered HTTP {} to {} ({} request): the authentication was accepted",
                n(a, "httpStatus").unwrap_or_default(),
                what(r),
                s(a, "authScheme").unwrap_or("signed")
            )],
            "Nothing to do.",
        ),
    }
}

fn callout(f: &Facts) -> Option<&Value> {
    f.requests
        .iter()
        .find(|r| s(r, "operation") == Some("callout"))
}

fn first_event<'a>(f: &'a Facts, kind: &str) -> Option<&'a CallbackFacts> {
    f.callbacks
        .iter()
        .find(|c| c.event_type == kind && !c.duplicate)
}

fn number_format(f: &Facts) -> Step {
    const T: &str = "The number was well formed (E.164: '+', country code, number)";
    let Some(c) = callout(f) else {
        let mut ev = vec!["No callout: svamlgate did not dial this call".to_owned()];
        if let Some(ice) = first_event(f, "ice").and_then(|c| c.body.as_ref()) {
            let to = ice
                .pointer("/to/endpoint")
                .and_then(Value::as_str)
                .map(mask_number);
            let cli = s(ice, "cli").map(mask_number);
            ev.push(format!(
                "Inbound call from {} to {}",
                cli.unwrap_or_else(|| "?".into()),
                to.unwrap_or_else(|| "?".into())
            ));
        }
        return step(
            "number_format",
            T,
            Status::Unknown,
            ev,
            "Not applicable to inbound calls.",
        );
    };
    let dest = s(c, "destination")
        .map(mask_number)
        .unwrap_or_else(|| "-".into());
    if s(c, "localCheck") == Some("invalid_number") {
        let field = c
            .pointer("/localReport/field")
            .and_then(Value::as_str)
            .unwrap_or("a number");
        return step(
            "number_format",
            T,
            Status::Fail,
            vec![format!(
                "svamlgate refused {} before sending: {field} is not E.164 (40005)",
                what(c)
            )],
            "Send numbers with '+' and the country code, e.g. +14045005000.",
        );
    }
    if let Some(a) = attempts(c).find(|a| code_of(a) == Some(40005)) {
        return step(
            "number_format",
            T,
            Status::Fail,
            vec![format!("Sinch answered {} to {}", answer_text(a), what(c))],
            "Send numbers with '+' and the country code.",
        );
    }
    if s(c, "outcome") == Some("refused_locally") && s(c, "localCheck") != Some("cap_reached") {
        return step(
            "number_format",
            T,
            Status::Unknown,
            vec![format!(
                "{} was refused before its numbers were checked ({})",
                what(c),
                s(c, "localCheck").unwrap_or("?")
            )],
            "Fix the callout body first.",
        );
    }
    step(
        "number_format",
        T,
        Status::Pass,
        vec![format!(
            "Destination {dest} and the cli passed the E.164 check before sending"
        )],
        "If the wrong phone rings, check the number itself.",
    )
}

fn dice_text(d: &CallbackFacts) -> (Option<String>, Option<String>, String) {
    let b = d.body.as_ref();
    let reason = b.and_then(|b| s(b, "reason")).map(str::to_ascii_uppercase);
    let result = b.and_then(|b| s(b, "result")).map(str::to_ascii_uppercase);
    let text = format!(
        "DICE at {}: reason {}, result {}",
        fmt_time(d.received_at),
        reason.as_deref().unwrap_or("-"),
        result.as_deref().unwrap_or("-")
    );
    (reason, result, text)
}

fn fmt_time(t: OffsetDateTime) -> String {
    crate::timestamp::format(t)
}

fn rang(f: &Facts) -> Step {
    const T: &str = "The phone rang: the callout was accepted, then answered (ACE) or ended (DICE)";
    let mut ev = Vec::new();
    let c = callout(f);
    if let Some(c) = c {
        match s(c, "outcome") {
            Some("success") => ev.push(format!(
                "Sinch accepted {} (callId {})",
                what(c),
                s(c, "callid").unwrap_or("?")
            )),
            Some("refused_locally") => {
                return step("rang", T, Status::Fail,
                    vec![format!("{} was never sent: refused by svamlgate ({})", what(c), s(c, "localCheck").unwrap_or("?"))],
                    "See the step that names the local refusal.")
            }
            Some("sinch_error") => {
                let a = attempts(c).last().map(answer_text).unwrap_or_default();
                return step("rang", T, Status::Fail,
                    vec![format!("Sinch refused {}: {a}", what(c))],
                    "The phone cannot ring: fix what Sinch's error names (see the other steps).")
            }
            Some("no_answer") => {
                return step("rang", T, Status::Fail,
                    vec![format!("{} never reached Sinch ({})", what(c), s(c, "failure").unwrap_or("?"))],
                    "Check that SINCH_API_BASE_URL is reachable, then place the call again.")
            }
            Some("unknown") => {
                return step("rang", T, Status::Unknown,
                    vec![format!("Sinch never answered {}: it may or may not have placed the call", what(c))],
                    "Look for callbacks of a call to this destination; ask Sinch support with the reference.")
            }
            other => {
                return step("rang", T, Status::Unknown,
                    vec![format!("{} is {}", what(c), other.unwrap_or("?"))],
                    "Wait for the request to finish.")
            }
        }
    } else if let Some(ice) = first_event(f, "ice") {
        ev.push(format!(
            "Inbound call: ICE at {}",
            fmt_time(ice.received_at)
        ));
    }
    if let Some(ace) = first_event(f, "ace") {
        ev.push(format!("Answered: ACE at {}", fmt_time(ace.received_at)));
        return step("rang", T, Status::Pass, ev, "Nothing to do.");
    }
    if let Some(d) = first_event(f, "dice") {
        let (reason, result, text) = dice_text(d);
        ev.push(text);
        return match result.as_deref() {
            Some("ANSWERED") => step("rang", T, Status::Pass, ev, "Nothing to do."),
            Some("NOANSWER") => step("rang", T, Status::Fail, ev,
                "Nobody answered: call the number by hand from another phone; check it is the right number."),
            Some("BUSY") => step("rang", T, Status::Fail, ev, "The line was busy: try again later."),
            Some("FAILED") => step("rang", T, Status::Fail, ev,
                "The network could not reach the number: check the number, and that the destination is allowed for the account (40300)."),
            _ => match reason.as_deref() {
                Some("CANCEL") | Some("TIMEOUT") | Some("BLOCKED") | Some("GENERALERROR") => step("rang", T, Status::Fail, ev,
                    "The call ended before it was answered: check the reason with Sinch's DICE reference."),
                _ => step("rang", T, Status::Unknown, ev, "Sinch did not say whether the call was answered."),
            },
        };
    }
    if c.is_some() {
        let tracked = c
            .and_then(|c| c.get("diceExpected"))
            .and_then(Value::as_bool)
            == Some(true)
            || c.and_then(|c| {
                c.pointer(&format!(
                    "/body/{}/enableAce",
                    s(c, "calloutMethod").unwrap_or("-")
                ))
            })
            .and_then(Value::as_bool)
                == Some(true);
        ev.push("No ACE or DICE recorded for this call yet".into());
        let next = if tracked {
            "The call may still be ringing or in progress; if it ended, check the callback step."
        } else {
            "The callout asked for no ACE or DICE: set enableAce/enableDice, or ask Sinch with GET /admin/calls/{callid}/sinch."
        };
        return step("rang", T, Status::Unknown, ev, next);
    }
    if ev.is_empty() {
        ev.push("No callout and no callbacks recorded for this call".into());
    }
    step(
        "rang",
        T,
        Status::Unknown,
        ev,
        "Nothing recorded tells whether the phone rang.",
    )
}

fn callback_arrived(f: &Facts) -> Step {
    const T: &str = "A callback arrived for the call, with a valid signature";
    let firsts: Vec<&CallbackFacts> = f.callbacks.iter().filter(|c| !c.duplicate).collect();
    if !firsts.is_empty() {
        let kinds: Vec<&str> = firsts.iter().map(|c| c.event_type.as_str()).collect();
        let unverified = firsts
            .iter()
            .filter(|c| c.signature != SignatureState::Verified.as_str())
            .count();
        let mut ev = vec![format!(
            "{} callback(s): {} (first at {})",
            firsts.len(),
            kinds.join(", "),
            firsts
                .first()
                .map(|c| fmt_time(c.received_at))
                .unwrap_or_default()
        )];
        let replays = f.callbacks.len() - firsts.len();
        if replays > 0 {
            ev.push(format!("{replays} replay(s) of callbacks already answered"));
        }
        if unverified > 0 {
            ev.push(format!(
                "{unverified} callback(s) were accepted unverified: signature checking is off (SVAMLGATE_VERIFY_SIGNATURES=false)"
            ));
        } else {
            ev.push("Every callback's signature was verified".into());
        }
        return step("callback_arrived", T, Status::Pass, ev, "Nothing to do.");
    }
    let Some(c) = callout(f).filter(|c| s(c, "outcome") == Some("success")) else {
        return step(
            "callback_arrived",
            T,
            Status::Unknown,
            vec!["No callback recorded, and no accepted callout to expect one from".into()],
            "Nothing to check until Sinch has accepted a call.",
        );
    };
    let method = s(c, "calloutMethod").unwrap_or("-");
    let asks = |k: &str| {
        c.pointer(&format!("/body/{method}/{k}"))
            .and_then(Value::as_bool)
            == Some(true)
    };
    let expects =
        method == "customCallout" || asks("enableAce") || asks("enableDice") || asks("enablePie");
    if !expects {
        return step(
            "callback_arrived",
            T,
            Status::Unknown,
            vec![format!("{} asked for no callbacks (enableAce, enableDice and enablePie not set)", what(c))],
            "Set enableAce or enableDice in the callout to have Sinch report the call to svamlgate.",
        );
    }
    let created = s(c, "createdAt").and_then(crate::timestamp::parse);
    let age = created.map(|t| (f.now - t).whole_seconds());
    let mut ev = vec![format!(
        "No callback recorded for callId {} since {} was accepted{}",
        s(c, "callid").unwrap_or("?"),
        what(c),
        created
            .map(|t| format!(" at {}", fmt_time(t)))
            .unwrap_or_default()
    )];
    for (reason, count) in &f.refusals {
        ev.push(format!(
            "{count} callback(s) were refused by signature checks since then ({reason})"
        ));
    }
    if age.is_some_and(|a| a < CALLBACK_GRACE_SECS) && f.refusals.is_empty() {
        return step(
            "callback_arrived",
            T,
            Status::Unknown,
            ev,
            "The call may not have been answered yet: check again in a minute.",
        );
    }
    step(
        "callback_arrived",
        T,
        Status::Fail,
        ev,
        if f.refusals.is_empty() {
            "Check the application's callback URL in the Sinch dashboard: it must reach svamlgate's callback path (SVAMLGATE_CALLBACK_PATH, behind SVAMLGATE_PUBLIC_PATH_PREFIX)."
        } else {
            "Callbacks arrive but are refused: check SINCH_APPLICATION_KEY/SECRET, SVAMLGATE_PUBLIC_PATH_PREFIX and the clock (GET /admin/errors/{reference} of a refusal)."
        },
    )
}

fn svaml_valid(f: &Facts) -> Step {
    const T: &str = "The SVAML returned was valid, and Sinch executed it";
    let mut fails = Vec::new();
    let mut ev = Vec::new();
    for r in &f.requests {
        if s(r, "localCheck") == Some("invalid_svaml") {
            fails.push(format!(
                "svamlgate refused {}: its SVAML did not pass the gate (see localReport)",
                what(r)
            ));
        }
        for a in attempts(r) {
            if matches!(code_of(a), Some(40001) | Some(42202))
                && s(r, "operation") != Some("callout")
            {
                fails.push(format!(
                    "Sinch refused the SVAML of {}: {}",
                    what(r),
                    answer_text(a)
                ));
            }
        }
    }
    if f.rejected_replies > 0 {
        fails.push(format!(
            "The gate stopped {} reply(ies) of the flow or app as invalid and sent the fallback instead",
            f.rejected_replies
        ));
    }
    let replies: Vec<&CallbackFacts> = f
        .callbacks
        .iter()
        .filter(|c| !c.duplicate && EventKind::parse(&c.event_type).expects_svaml())
        .collect();
    for c in &replies {
        if let Some(reason) = &c.fallback_reason {
            if reason != FallbackReason::Invalid.as_str() {
                ev.push(format!(
                    "{} at {}: the fallback was sent ({reason})",
                    c.event_type.to_uppercase(),
                    fmt_time(c.received_at)
                ));
            }
        }
    }
    // Whether Sinch rejected a reply is decided by one rule, the one that marks replies
    // (`feedback::report_of`): Notify callingerror 40001, DICE CALLBACKERROR or INVALIDSVAMLACTION.
    for c in f
        .callbacks
        .iter()
        .filter(|c| matches!(c.event_type.as_str(), "notify" | "dice"))
    {
        let Some(b) = &c.body else { continue };
        let parsed = serde_json::to_vec(b)
            .ok()
            .and_then(|bytes| crate::events::parse_event(&bytes).ok());
        match parsed.as_ref().and_then(crate::feedback::report_of) {
            Some(r) => fails.push(format!(
                "{} at {}: Sinch could not use a reply ({}{}{})",
                c.event_type.to_uppercase(),
                fmt_time(c.received_at),
                r.kind,
                r.error_code
                    .map(|e| format!(", errorCode {e}"))
                    .unwrap_or_default(),
                r.message
                    .as_deref()
                    .or(r.reason.as_deref())
                    .map(|m| format!(", {m}"))
                    .unwrap_or_default(),
            )),
            None if s(b, "type").is_some_and(|t| t.eq_ignore_ascii_case("callingerror")) => {
                ev.push(format!(
                    "Notify callingerror at {}: errorCode {}, {} (an error on Sinch's side, not a verdict on the reply)",
                    fmt_time(c.received_at),
                    b.get("errorCode")
                        .map(Value::to_string)
                        .unwrap_or_else(|| "-".into()),
                    s(b, "errorMsg").unwrap_or("-")
                ));
            }
            None => {}
        }
    }
    if !fails.is_empty() {
        fails.extend(ev);
        return step(
            "svaml_valid",
            T,
            Status::Fail,
            fails,
            "Read the validation reports (GET /admin/calls/{callid}: rejectedReplies, outboundRequests[].localReport) and fix the flow or app that produced the SVAML.",
        );
    }
    if replies.is_empty()
        && !f
            .requests
            .iter()
            .any(|r| s(r, "method") == Some("PATCH") && s(r, "outcome") == Some("success"))
    {
        return step(
            "svaml_valid",
            T,
            Status::Unknown,
            vec!["No SVAML was returned for this call (no ICE, ACE or PIE answered, no call managed)".into()],
            "Nothing to check until a callback that expects SVAML arrives.",
        );
    }
    ev.insert(
        0,
        format!(
            "{} SVAML reply(ies) sent, each passed the gate; no rejection reported by Sinch",
            replies.len()
        ),
    );
    step("svaml_valid", T, Status::Pass, ev, "Nothing to do.")
}

fn credit_capacity(f: &Facts) -> Step {
    const T: &str = "Credit and capacity were sufficient (40200, 42900, 42901)";
    let count = match f.in_progress {
        Some(c) => format!(
            "{c} call(s) in progress now, of SINCH_MAX_CALLS_IN_PROGRESS={}",
            f.limits.max_in_progress
        ),
        None => "Calls in progress could not be counted".to_owned(),
    };
    for r in &f.requests {
        if s(r, "localCheck") == Some("cap_reached") {
            let at = r
                .pointer("/localReport/inProgress")
                .and_then(Value::as_i64)
                .unwrap_or_default();
            return step("credit_capacity", T, Status::Fail,
                vec![format!("svamlgate refused {} with 42900: {at} call(s) were in progress", what(r)), count],
                "Wait for calls to end, or have your Sinch account manager raise the concurrent-call limit (default 10) and then raise SINCH_MAX_CALLS_IN_PROGRESS.");
        }
        for a in attempts(r) {
            match code_of(a) {
                Some(40200) => return step("credit_capacity", T, Status::Fail,
                    vec![format!("Sinch answered {} to {}", answer_text(a), what(r))],
                    "Add credit to the Sinch account (dashboard), then place the call again."),
                Some(42900) | Some(42901) => return step("credit_capacity", T, Status::Fail,
                    vec![format!("Sinch answered {} to {}", answer_text(a), what(r)), count],
                    "Too many calls or requests at once: spread them out; contact your Sinch account manager to make more than 10 calls concurrently."),
                _ => {}
            }
        }
    }
    if let Some(d) = first_event(f, "dice") {
        let (reason, _, text) = dice_text(d);
        if reason.as_deref() == Some("NOCREDITPARTNER") {
            return step(
                "credit_capacity",
                T,
                Status::Fail,
                vec![text],
                "Add credit to the Sinch account (dashboard).",
            );
        }
    }
    let accepted = f
        .requests
        .iter()
        .find(|r| s(r, "outcome") == Some("success"));
    match accepted {
        Some(r) => step(
            "credit_capacity",
            T,
            Status::Pass,
            vec![
                format!(
                    "Sinch accepted {}: credit and capacity sufficed then",
                    what(r)
                ),
                count,
            ],
            "Nothing to do.",
        ),
        None if first_event(f, "ice").is_some() || first_event(f, "ace").is_some() => step(
            "credit_capacity",
            T,
            Status::Pass,
            vec![
                "Sinch connected the call and sent its callbacks".into(),
                count,
            ],
            "Nothing to do.",
        ),
        None => step(
            "credit_capacity",
            T,
            Status::Unknown,
            vec![count],
            "No answer from Sinch tells about credit; check the balance in the Sinch dashboard.",
        ),
    }
}

/// Walks the checklist over the facts.
pub fn diagnose(f: &Facts) -> Diagnosis {
    let steps = vec![
        authenticated(f),
        number_format(f),
        rang(f),
        callback_arrived(f),
        svaml_valid(f),
        credit_capacity(f),
    ];
    let failing = steps.iter().find(|s| s.status == Status::Fail);
    let summary = match failing {
        Some(s) => format!("Failing step: {} ({}). Next: {}", s.id, s.title, s.next),
        None if steps.iter().all(|s| s.status == Status::Pass) => {
            "Every step passed: the records show nothing wrong.".to_owned()
        }
        None => "No step failed; the steps marked unknown are not shown by the records.".to_owned(),
    };
    Diagnosis {
        callid: f.callid.clone(),
        reference: f.reference.clone(),
        failing_step: failing.map(|s| s.id),
        summary,
        steps,
    }
}

/// Reads the facts of a call id, or of a svamlgate reference (a callout refused before Sinch
/// gave it a call id). `None` when neither is known.
pub async fn gather(
    store: &OutboundStore,
    id: &str,
    limits: CallLimits,
) -> Result<Option<Facts>, sqlx::Error> {
    gather_counting(store, id, limits, true).await
}

/// [`gather`], counting the calls in progress only when `count_in_progress` (the count scans the
/// last hours of callbacks; the console passes a recent count of its own instead).
pub async fn gather_counting(
    store: &OutboundStore,
    id: &str,
    limits: CallLimits,
    count_in_progress: bool,
) -> Result<Option<Facts>, sqlx::Error> {
    let mut requests = store.requests_for_call(id).await?;
    let mut callbacks = store.callbacks_for_call(id).await?;
    let mut callid = Some(id.to_owned());
    let mut reference = None;
    if requests.is_empty() && callbacks.is_empty() {
        let Some(r) = store.request_by_reference(id).await? else {
            return Ok(None);
        };
        reference = Some(id.to_owned());
        callid = s(&r, "callid").map(str::to_owned);
        match &callid {
            Some(c) => {
                requests = store.requests_for_call(c).await?;
                callbacks = store.callbacks_for_call(c).await?;
            }
            None => requests = vec![r],
        }
    }
    let rejected_replies = match &callid {
        Some(c) => store.rejected_replies_for_call(c).await?,
        None => 0,
    };
    let now = OffsetDateTime::now_utc();
    let refusals = match requests
        .iter()
        .find(|r| s(r, "operation") == Some("callout") && s(r, "outcome") == Some("success"))
        .and_then(|r| s(r, "createdAt"))
        .and_then(crate::timestamp::parse)
    {
        Some(from) if callbacks.is_empty() => store.refusals_between(from, now).await?,
        _ => Vec::new(),
    };
    let in_progress = if count_in_progress {
        store.count_in_progress(&limits).await.ok()
    } else {
        None
    };
    Ok(Some(Facts {
        callid,
        reference,
        requests,
        callbacks,
        rejected_replies,
        refusals,
        in_progress,
        limits,
        now,
    }))
}

/// The diagnosis as text, for `svamlgate diagnose`.
pub fn render_text(d: &Value) -> String {
    let mut out = String::new();
    let id = d
        .get("callid")
        .and_then(Value::as_str)
        .or_else(|| d.get("reference").and_then(Value::as_str))
        .unwrap_or("?");
    out.push_str(&format!("Diagnosis of {id}\n"));
    for st in d
        .get("steps")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mark = match s(st, "status") {
            Some("pass") => "PASS   ",
            Some("fail") => "FAIL   ",
            _ => "UNKNOWN",
        };
        out.push_str(&format!("\n[{mark}] {}\n", s(st, "title").unwrap_or("?")));
        for e in st
            .get("evidence")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.push_str(&format!("          - {}\n", e.as_str().unwrap_or_default()));
        }
        if s(st, "status") != Some("pass") {
            out.push_str(&format!(
                "          next: {}\n",
                s(st, "next").unwrap_or_default()
            ));
        }
    }
    out.push_str(&format!("\n{}\n", s(d, "summary").unwrap_or_default()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn facts(requests: Vec<Value>, callbacks: Vec<CallbackFacts>) -> Facts {
        Facts {
            callid: Some("c-1".into()),
            reference: None,
            requests,
            callbacks,
            rejected_replies: 0,
            refusals: vec![],
            in_progress: Some(1),
            limits: CallLimits {
                max_in_progress: 10,
                max_age: Duration::from_secs(14_400),
                untracked: Duration::from_secs(600),
            },
            now: OffsetDateTime::now_utc(),
        }
    }

    fn cb(kind: &str, body: Value) -> CallbackFacts {
        CallbackFacts {
            reference: "r".into(),
            received_at: OffsetDateTime::now_utc(),
            event_type: kind.into(),
            signature: "verified".into(),
            duplicate: false,
            http_status: Some(200),
            reply_source: None,
            fallback_reason: None,
            validation: None,
            body: Some(body),
        }
    }

    fn tts_callout(outcome: &str, attempts: Vec<Value>) -> Value {
        json!({"reference": "ref-1", "operation": "callout", "calloutMethod": "ttsCallout", "method": "POST",
               "destination": "+14045005000", "localCheck": "passed", "outcome": outcome, "callid": "c-1",
               "createdAt": "2020-01-01T00:00:00+00:00", "diceExpected": true,
               "body": {"method": "ttsCallout", "ttsCallout": {"enableDice": true}},
               "attempts": attempts})
    }

    fn status_of(d: &Diagnosis, id: &str) -> Status {
        d.steps
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.status)
            .unwrap()
    }

    #[test]
    fn answered_callout_passes_everything() {
        let f = facts(
            vec![tts_callout(
                "success",
                vec![json!({"attempt": 1, "httpStatus": 200, "authScheme": "signed"})],
            )],
            vec![
                cb("ace", json!({})),
                cb(
                    "dice",
                    json!({"reason": "CALLEEHANGUP", "result": "ANSWERED"}),
                ),
            ],
        );
        let d = diagnose(&f);
        assert_eq!(d.failing_step, None, "{d:#?}");
        for st in [
            "authenticated",
            "number_format",
            "rang",
            "callback_arrived",
            "credit_capacity",
        ] {
            assert_eq!(status_of(&d, st), Status::Pass, "{st}: {d:#?}");
        }
        assert!(
            !serde_json::to_string(&d).unwrap().contains("4045005000"),
            "numbers masked"
        );
    }

    #[test]
    fn credit_error_fails_rang_and_credit() {
        let f = facts(
            vec![tts_callout(
                "sinch_error",
                vec![json!({"attempt": 1, "httpStatus": 402, "errorCode": 40200,
                "classifiedCode": 40200, "errorReference": "sref", "errorMessage": "Not enough credit"})],
            )],
            vec![],
        );
        let d = diagnose(&f);
        assert_eq!(status_of(&d, "authenticated"), Status::Pass);
        assert_eq!(status_of(&d, "rang"), Status::Fail);
        assert_eq!(status_of(&d, "credit_capacity"), Status::Fail);
        assert_eq!(d.failing_step, Some("rang"));
        let credit = d.steps.iter().find(|s| s.id == "credit_capacity").unwrap();
        assert!(credit.evidence[0].contains("sref"), "{credit:?}");
    }

    #[test]
    fn auth_and_number_failures() {
        let f = facts(
            vec![tts_callout(
                "sinch_error",
                vec![
                    json!({"attempt": 1, "httpStatus": 401, "errorCode": "40102", "classifiedCode": 40102}),
                ],
            )],
            vec![],
        );
        let d = diagnose(&f);
        assert_eq!(d.failing_step, Some("authenticated"));
        let mut refused = tts_callout("refused_locally", vec![]);
        refused["localCheck"] = json!("invalid_number");
        refused["localReport"] = json!({"field": "ttsCallout.destination.endpoint"});
        let d = diagnose(&facts(vec![refused], vec![]));
        assert_eq!(status_of(&d, "authenticated"), Status::Unknown);
        assert_eq!(d.failing_step, Some("number_format"));
    }

    #[test]
    fn no_answer_dice_and_missing_callbacks() {
        let f = facts(
            vec![tts_callout(
                "success",
                vec![json!({"attempt": 1, "httpStatus": 200})],
            )],
            vec![cb(
                "dice",
                json!({"reason": "TIMEOUT", "result": "NOANSWER"}),
            )],
        );
        let d = diagnose(&f);
        assert_eq!(d.failing_step, Some("rang"));
        assert!(d.steps[2].evidence.iter().any(|e| e.contains("NOANSWER")));
        // Accepted long ago, callbacks asked for, none came.
        let f = facts(
            vec![tts_callout(
                "success",
                vec![json!({"attempt": 1, "httpStatus": 200})],
            )],
            vec![],
        );
        let d = diagnose(&f);
        assert_eq!(status_of(&d, "rang"), Status::Unknown);
        assert_eq!(d.failing_step, Some("callback_arrived"));
    }

    #[test]
    fn svaml_and_capacity() {
        let mut f = facts(
            vec![],
            vec![
                cb(
                    "ice",
                    json!({"cli": "+46700000001", "to": {"endpoint": "+46700000002"}}),
                ),
                cb(
                    "dice",
                    json!({"reason": "CALLBACKERROR", "result": "FAILED"}),
                ),
            ],
        );
        f.rejected_replies = 1;
        let d = diagnose(&f);
        assert_eq!(status_of(&d, "authenticated"), Status::Unknown);
        assert_eq!(status_of(&d, "svaml_valid"), Status::Fail);
        assert!(!format!("{d:?}").contains("46700000001"));
        let mut capped = tts_callout("refused_locally", vec![]);
        capped["localCheck"] = json!("cap_reached");
        capped["localReport"] = json!({"inProgress": 10, "limit": 10});
        let d = diagnose(&facts(vec![capped], vec![]));
        assert_eq!(status_of(&d, "credit_capacity"), Status::Fail);
        assert!(d.steps[5].next.contains("SINCH_MAX_CALLS_IN_PROGRESS"));
        let text = render_text(&serde_json::to_value(&d).unwrap());
        assert!(text.contains("[FAIL   ]"), "{text}");
    }
}
