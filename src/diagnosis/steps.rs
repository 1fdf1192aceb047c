//! The six steps, one function each, over typed [`Facts`].

use serde_json::Value;
use time::OffsetDateTime;

use super::facts::{
    Attempt, Callback, CalloutMethod, HttpMethod, LocalCheck, Request, RequestOutcome, Stored,
};
use super::{Facts, Status, Step, StepId, CALLBACK_GRACE_SECS};
use crate::events::EventKind;
use crate::outcome::{FallbackReason, SignatureState};
use crate::redact::mask_number;

/// Walks one step.
pub(super) fn walk(id: StepId, f: &Facts) -> Step {
    match id {
        StepId::Authenticated => authenticated(f),
        StepId::NumberFormat => number_format(f),
        StepId::Rang => rang(f),
        StepId::CallbackArrived => callback_arrived(f),
        StepId::SvamlValid => svaml_valid(f),
        StepId::CreditCapacity => credit_capacity(f),
    }
}

/// `the ttsCallout (ref)`, `the manage_call request (ref)` …
fn what(r: &Request) -> String {
    if r.is_callout() {
        format!(
            "the {} ({})",
            r.callout_method.as_ref().map_or("callout", Stored::as_str),
            r.reference
        )
    } else {
        format!("the {} request ({})", r.operation, r.reference)
    }
}

fn answer_text(a: &Attempt) -> String {
    let mut t = format!("HTTP {}", a.http_status.unwrap_or_default());
    if let Some(c) = a.error_code {
        t.push_str(&format!(" errorCode {c}"));
    }
    if let Some(c) = a.classified_code {
        if Some(c) != a.error_code {
            t.push_str(&format!(" (read as {c})"));
        }
    }
    if let Some(m) = &a.error_message {
        t.push_str(&format!(" \"{m}\""));
    }
    if let Some(r) = &a.error_reference {
        t.push_str(&format!(", Sinch reference {r}"));
    }
    t
}

/// The code an answer is read as: the catalog's reading, else Sinch's.
fn code_of(a: &Attempt) -> Option<i32> {
    a.classified_code.or(a.error_code)
}

fn is_auth_error(a: &Attempt) -> bool {
    matches!(code_of(a), Some(c) if (40100..40200).contains(&c) || c == 40301 || c == 40004)
        || a.http_status == Some(401)
}

fn fmt_time(t: OffsetDateTime) -> String {
    crate::timestamp::format(t)
}

/// The first callout of the call.
fn callout(f: &Facts) -> Option<&Request> {
    f.requests.iter().find(|r| r.is_callout())
}

/// The first callback of a kind that is not a replay.
fn first_event(f: &Facts, kind: EventKind) -> Option<&Callback> {
    f.callbacks.iter().find(|c| c.kind == kind && !c.duplicate)
}

fn authenticated(f: &Facts) -> Step {
    let id = StepId::Authenticated;
    if f.requests.is_empty() {
        return Step::new(
            id,
            Status::Unknown,
            vec!["svamlgate sent no request to Sinch for this call (an inbound call, or one placed elsewhere)".into()],
            "Nothing to check here for inbound calls; see the callback step.",
        );
    }
    if f.requests.iter().all(|r| r.attempts.is_empty()) {
        return Step::new(
            id,
            Status::Unknown,
            vec!["No request reached Sinch: every one was refused before sending".into()],
            "Fix what the local checks refused (see the steps below), then send again.",
        );
    }
    let last_answered = f
        .requests
        .iter()
        .rev()
        .flat_map(|r| r.attempts.iter().rev().map(move |a| (r, a)))
        .find(|(_, a)| a.http_status.is_some());
    match last_answered {
        None => Step::new(
            id,
            Status::Unknown,
            vec!["Sinch never answered (connection failures or timeouts)".into()],
            "Check that SINCH_API_BASE_URL is reachable from svamlgate (DNS, firewall, proxy).",
        ),
        Some((r, a)) if is_auth_error(a) => Step::new(
            id,
            Status::Fail,
            vec![format!(
                "Sinch answered {} to {} ({} request)",
                answer_text(a),
                what(r),
                a.auth_scheme
            )],
            match code_of(a) {
                Some(40101) | Some(40105) => "Check svamlgate's clock (NTP): the x-timestamp it signs must be current.",
                Some(40301) => "Sinch refused the authorization scheme: check SINCH_API_BASIC_AUTH (signed requests are the default).",
                _ => "Check that SINCH_APPLICATION_KEY and SINCH_APPLICATION_SECRET are the key and secret of this application in the Sinch dashboard.",
            },
        ),
        Some((r, a)) => Step::new(
            id,
            Status::Pass,
            vec![format!(
                "Sinch answered HTTP {} to {} ({} request): the authentication was accepted",
                a.http_status.unwrap_or_default(),
                what(r),
                a.auth_scheme
            )],
            "Nothing to do.",
        ),
    }
}

fn number_format(f: &Facts) -> Step {
    let id = StepId::NumberFormat;
    let Some(c) = callout(f) else {
        let mut ev = vec!["No callout: svamlgate did not dial this call".to_owned()];
        if let Some(ice) = first_event(f, EventKind::Ice).filter(|c| c.body.is_some()) {
            ev.push(format!(
                "Inbound call from {} to {}",
                ice.fields
                    .cli
                    .as_deref()
                    .map(mask_number)
                    .unwrap_or_else(|| "?".into()),
                ice.fields
                    .to
                    .as_deref()
                    .map(mask_number)
                    .unwrap_or_else(|| "?".into())
            ));
        }
        return Step::new(id, Status::Unknown, ev, "Not applicable to inbound calls.");
    };
    if c.local_check.is(LocalCheck::InvalidNumber) {
        let field = c.local_report.field.as_deref().unwrap_or("a number");
        return Step::new(
            id,
            Status::Fail,
            vec![format!(
                "svamlgate refused {} before sending: {field} is not E.164 (40005)",
                what(c)
            )],
            "Send numbers with '+' and the country code, e.g. +14045005000.",
        );
    }
    if let Some(a) = c.attempts.iter().find(|a| code_of(a) == Some(40005)) {
        return Step::new(
            id,
            Status::Fail,
            vec![format!("Sinch answered {} to {}", answer_text(a), what(c))],
            "Send numbers with '+' and the country code.",
        );
    }
    if c.outcome.is(RequestOutcome::RefusedLocally) && !c.local_check.is(LocalCheck::CapReached) {
        return Step::new(
            id,
            Status::Unknown,
            vec![format!(
                "{} was refused before its numbers were checked ({})",
                what(c),
                c.local_check
            )],
            "Fix the callout body first.",
        );
    }
    let dest = c
        .destination
        .as_deref()
        .map(mask_number)
        .unwrap_or_else(|| "-".into());
    Step::new(
        id,
        Status::Pass,
        vec![format!(
            "Destination {dest} and the cli passed the E.164 check before sending"
        )],
        "If the wrong phone rings, check the number itself.",
    )
}

/// A DICE's reason and result (upper case) and its line of evidence.
fn dice_text(d: &Callback) -> (Option<String>, Option<String>, String) {
    let reason = d.fields.reason.as_deref().map(str::to_ascii_uppercase);
    let result = d.fields.result.as_deref().map(str::to_ascii_uppercase);
    let text = format!(
        "DICE at {}: reason {}, result {}",
        fmt_time(d.received_at),
        reason.as_deref().unwrap_or("-"),
        result.as_deref().unwrap_or("-")
    );
    (reason, result, text)
}

/// The `rang` step when the callout did not succeed: why the phone cannot have rung.
fn rang_unsent(c: &Request) -> Option<Step> {
    let id = StepId::Rang;
    let Stored::Known(outcome) = &c.outcome else {
        return Some(Step::new(
            id,
            Status::Unknown,
            vec![format!("{} is {}", what(c), c.outcome)],
            "Wait for the request to finish.",
        ));
    };
    Some(match outcome {
        RequestOutcome::Success => return None,
        RequestOutcome::RefusedLocally => Step::new(
            id,
            Status::Fail,
            vec![format!(
                "{} was never sent: refused by svamlgate ({})",
                what(c),
                c.local_check
            )],
            "See the step that names the local refusal.",
        ),
        RequestOutcome::SinchError => {
            let a = c.attempts.last().map(answer_text).unwrap_or_default();
            Step::new(
                id,
                Status::Fail,
                vec![format!("Sinch refused {}: {a}", what(c))],
                "The phone cannot ring: fix what Sinch's error names (see the other steps).",
            )
        }
        RequestOutcome::NoAnswer => Step::new(
            id,
            Status::Fail,
            vec![format!(
                "{} never reached Sinch ({})",
                what(c),
                c.failure.as_ref().map_or("?", Stored::as_str)
            )],
            "Check that SINCH_API_BASE_URL is reachable, then place the call again.",
        ),
        RequestOutcome::Unknown => Step::new(
            id,
            Status::Unknown,
            vec![format!(
                "Sinch never answered {}: it may or may not have placed the call",
                what(c)
            )],
            "Look for callbacks of a call to this destination; ask Sinch support with the reference.",
        ),
        RequestOutcome::Pending => Step::new(
            id,
            Status::Unknown,
            vec![format!("{} is {}", what(c), outcome)],
            "Wait for the request to finish.",
        ),
    })
}

/// The `rang` step read from a DICE.
fn rang_by_dice(d: &Callback, mut ev: Vec<String>) -> Step {
    let id = StepId::Rang;
    let (reason, result, text) = dice_text(d);
    ev.push(text);
    match result.as_deref() {
        Some("ANSWERED") => Step::new(id, Status::Pass, ev, "Nothing to do."),
        Some("NOANSWER") => Step::new(id, Status::Fail, ev,
            "Nobody answered: call the number by hand from another phone; check it is the right number."),
        Some("BUSY") => Step::new(id, Status::Fail, ev, "The line was busy: try again later."),
        Some("FAILED") => Step::new(id, Status::Fail, ev,
            "The network could not reach the number: check the number, and that the destination is allowed for the account (40300)."),
        _ => match reason.as_deref() {
            Some("CANCEL") | Some("TIMEOUT") | Some("BLOCKED") | Some("GENERALERROR") => Step::new(id, Status::Fail, ev,
                "The call ended before it was answered: check the reason with Sinch's DICE reference."),
            _ => Step::new(id, Status::Unknown, ev, "Sinch did not say whether the call was answered."),
        },
    }
}

fn rang(f: &Facts) -> Step {
    let id = StepId::Rang;
    let mut ev = Vec::new();
    let c = callout(f);
    if let Some(c) = c {
        if let Some(unsent) = rang_unsent(c) {
            return unsent;
        }
        ev.push(format!(
            "Sinch accepted {} (callId {})",
            what(c),
            c.callid.as_deref().unwrap_or("?")
        ));
    } else if let Some(ice) = first_event(f, EventKind::Ice) {
        ev.push(format!(
            "Inbound call: ICE at {}",
            fmt_time(ice.received_at)
        ));
    }
    if let Some(ace) = first_event(f, EventKind::Ace) {
        ev.push(format!("Answered: ACE at {}", fmt_time(ace.received_at)));
        return Step::new(id, Status::Pass, ev, "Nothing to do.");
    }
    if let Some(d) = first_event(f, EventKind::Dice) {
        return rang_by_dice(d, ev);
    }
    if let Some(c) = c {
        let tracked = c.dice_expected == Some(true) || c.callout_flag("enableAce");
        ev.push("No ACE or DICE recorded for this call yet".into());
        let next = if tracked {
            "The call may still be ringing or in progress; if it ended, check the callback step."
        } else {
            "The callout asked for no ACE or DICE: set enableAce/enableDice, or ask Sinch with GET /admin/calls/{callid}/sinch."
        };
        return Step::new(id, Status::Unknown, ev, next);
    }
    if ev.is_empty() {
        ev.push("No callout and no callbacks recorded for this call".into());
    }
    Step::new(
        id,
        Status::Unknown,
        ev,
        "Nothing recorded tells whether the phone rang.",
    )
}

/// The `callback_arrived` step when callbacks arrived: which, and their signatures.
fn callbacks_seen(f: &Facts, firsts: &[&Callback]) -> Step {
    let kinds: Vec<&str> = firsts.iter().map(|c| c.kind.as_str()).collect();
    let unverified = firsts
        .iter()
        .filter(|c| !c.signature.is(SignatureState::Verified))
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
    Step::new(StepId::CallbackArrived, Status::Pass, ev, "Nothing to do.")
}

fn callback_arrived(f: &Facts) -> Step {
    let id = StepId::CallbackArrived;
    let firsts: Vec<&Callback> = f.callbacks.iter().filter(|c| !c.duplicate).collect();
    if !firsts.is_empty() {
        return callbacks_seen(f, &firsts);
    }
    let Some(c) = callout(f).filter(|c| c.outcome.is(RequestOutcome::Success)) else {
        return Step::new(
            id,
            Status::Unknown,
            vec!["No callback recorded, and no accepted callout to expect one from".into()],
            "Nothing to check until Sinch has accepted a call.",
        );
    };
    let expects = c
        .callout_method
        .as_ref()
        .is_some_and(|m| m.is(CalloutMethod::Custom))
        || c.callout_flag("enableAce")
        || c.callout_flag("enableDice")
        || c.callout_flag("enablePie");
    if !expects {
        return Step::new(
            id,
            Status::Unknown,
            vec![format!("{} asked for no callbacks (enableAce, enableDice and enablePie not set)", what(c))],
            "Set enableAce or enableDice in the callout to have Sinch report the call to svamlgate.",
        );
    }
    let age = (f.now - c.created_at).whole_seconds();
    let mut ev = vec![format!(
        "No callback recorded for callId {} since {} was accepted at {}",
        c.callid.as_deref().unwrap_or("?"),
        what(c),
        fmt_time(c.created_at)
    )];
    for r in &f.refusals {
        ev.push(format!(
            "{} callback(s) were refused by signature checks since then ({})",
            r.n, r.reason
        ));
    }
    if age < CALLBACK_GRACE_SECS && f.refusals.is_empty() {
        return Step::new(
            id,
            Status::Unknown,
            ev,
            "The call may not have been answered yet: check again in a minute.",
        );
    }
    Step::new(
        id,
        Status::Fail,
        ev,
        if f.refusals.is_empty() {
            "Check the application's callback URL in the Sinch dashboard: it must reach svamlgate's callback path (SVAMLGATE_CALLBACK_PATH, behind SVAMLGATE_PUBLIC_PATH_PREFIX)."
        } else {
            "Callbacks arrive but are refused: check SINCH_APPLICATION_KEY/SECRET, SVAMLGATE_PUBLIC_PATH_PREFIX and the clock (GET /admin/errors/{reference} of a refusal)."
        },
    )
}

/// What svamlgate's gate and Sinch's answers said about the SVAML of the outbound requests.
fn outbound_svaml_failures(f: &Facts) -> Vec<String> {
    let mut fails = Vec::new();
    for r in &f.requests {
        if r.local_check.is(LocalCheck::InvalidSvaml) {
            fails.push(format!(
                "svamlgate refused {}: its SVAML did not pass the gate (see localReport)",
                what(r)
            ));
        }
        for a in &r.attempts {
            if matches!(code_of(a), Some(40001) | Some(42202)) && !r.is_callout() {
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
    fails
}

/// Whether Sinch rejected a reply is decided by one rule, the one that marks replies
/// (`feedback::report_of`): Notify callingerror 40001, DICE CALLBACKERROR or INVALIDSVAMLACTION.
/// Pushes each rejection to `fails`, and a callingerror that is not one to `ev`.
fn sinch_verdicts(f: &Facts, fails: &mut Vec<String>, ev: &mut Vec<String>) {
    for c in f
        .callbacks
        .iter()
        .filter(|c| matches!(c.kind, EventKind::Notify | EventKind::Dice))
    {
        let Some(b) = &c.body else { continue };
        let parsed = serde_json::to_vec(b)
            .ok()
            .and_then(|bytes| crate::events::parse_event(&bytes).ok());
        match parsed.as_ref().and_then(crate::feedback::report_of) {
            Some(r) => fails.push(format!(
                "{} at {}: Sinch could not use a reply ({}{}{})",
                c.kind.as_str().to_uppercase(),
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
            None if c
                .fields
                .kind
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("callingerror")) =>
            {
                ev.push(format!(
                    "Notify callingerror at {}: errorCode {}, {} (an error on Sinch's side, not a verdict on the reply)",
                    fmt_time(c.received_at),
                    c.fields
                        .error_code
                        .as_ref()
                        .map(Value::to_string)
                        .unwrap_or_else(|| "-".into()),
                    c.fields.error_msg.as_deref().unwrap_or("-")
                ));
            }
            None => {}
        }
    }
}

fn svaml_valid(f: &Facts) -> Step {
    let id = StepId::SvamlValid;
    let mut fails = outbound_svaml_failures(f);
    let mut ev = Vec::new();
    let replies: Vec<&Callback> = f
        .callbacks
        .iter()
        .filter(|c| !c.duplicate && c.kind.expects_svaml())
        .collect();
    for c in &replies {
        match &c.fallback_reason {
            Some(reason) if !reason.is(FallbackReason::Invalid) => ev.push(format!(
                "{} at {}: the fallback was sent ({reason})",
                c.kind.as_str().to_uppercase(),
                fmt_time(c.received_at)
            )),
            _ => {}
        }
    }
    sinch_verdicts(f, &mut fails, &mut ev);
    if !fails.is_empty() {
        fails.extend(ev);
        return Step::new(
            id,
            Status::Fail,
            fails,
            "Read the validation reports (GET /admin/calls/{callid}: rejectedReplies, outboundRequests[].localReport) and fix the flow or app that produced the SVAML.",
        );
    }
    let managed = f
        .requests
        .iter()
        .any(|r| r.method.is(HttpMethod::Patch) && r.outcome.is(RequestOutcome::Success));
    if replies.is_empty() && !managed {
        return Step::new(
            id,
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
    Step::new(id, Status::Pass, ev, "Nothing to do.")
}

/// The `credit_capacity` step from what svamlgate's cap and Sinch answered, if they tell.
fn capacity_refused(f: &Facts, count: &str) -> Option<Step> {
    let id = StepId::CreditCapacity;
    for r in &f.requests {
        if r.local_check.is(LocalCheck::CapReached) {
            let at = r.local_report.in_progress.unwrap_or_default();
            return Some(Step::new(id, Status::Fail,
                vec![format!("svamlgate refused {} with 42900: {at} call(s) were in progress", what(r)), count.to_owned()],
                "Wait for calls to end, or have your Sinch account manager raise the concurrent-call limit (default 10) and then raise SINCH_MAX_CALLS_IN_PROGRESS."));
        }
        for a in &r.attempts {
            match code_of(a) {
                Some(40200) => return Some(Step::new(id, Status::Fail,
                    vec![format!("Sinch answered {} to {}", answer_text(a), what(r))],
                    "Add credit to the Sinch account (dashboard), then place the call again.")),
                Some(42900) | Some(42901) => return Some(Step::new(id, Status::Fail,
                    vec![format!("Sinch answered {} to {}", answer_text(a), what(r)), count.to_owned()],
                    "Too many calls or requests at once: spread them out; contact your Sinch account manager to make more than 10 calls concurrently.")),
                _ => {}
            }
        }
    }
    None
}

fn credit_capacity(f: &Facts) -> Step {
    let id = StepId::CreditCapacity;
    let count = match f.in_progress {
        Some(c) => format!(
            "{c} call(s) in progress now, of SINCH_MAX_CALLS_IN_PROGRESS={}",
            f.limits.max_in_progress
        ),
        None => "Calls in progress could not be counted".to_owned(),
    };
    if let Some(refused) = capacity_refused(f, &count) {
        return refused;
    }
    if let Some(d) = first_event(f, EventKind::Dice) {
        let (reason, _, text) = dice_text(d);
        if reason.as_deref() == Some("NOCREDITPARTNER") {
            return Step::new(
                id,
                Status::Fail,
                vec![text],
                "Add credit to the Sinch account (dashboard).",
            );
        }
    }
    let accepted = f
        .requests
        .iter()
        .find(|r| r.outcome.is(RequestOutcome::Success));
    match accepted {
        Some(r) => Step::new(
            id,
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
        None if first_event(f, EventKind::Ice).is_some()
            || first_event(f, EventKind::Ace).is_some() =>
        {
            Step::new(
                id,
                Status::Pass,
                vec![
                    "Sinch connected the call and sent its callbacks".into(),
                    count,
                ],
                "Nothing to do.",
            )
        }
        None => Step::new(
            id,
            Status::Unknown,
            vec![count],
            "No answer from Sinch tells about credit; check the balance in the Sinch dashboard.",
        ),
    }
}
