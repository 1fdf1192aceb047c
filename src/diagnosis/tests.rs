use std::time::Duration;

use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::*;
use crate::events::EventKind;
use crate::outcome::{AuthScheme, CalloutMethod, HttpMethod, Operation, SignatureState};

fn facts(requests: Vec<Request>, callbacks: Vec<Callback>) -> Facts {
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

fn cb(kind: EventKind, body: Value) -> Callback {
    Callback::new(
        OffsetDateTime::now_utc(),
        kind,
        Stored::Known(SignatureState::Verified),
        false,
        None,
        Some(body),
    )
}

/// An attempt Sinch answered with `status` (and `code`, read as itself).
fn answered(status: i16, code: Option<i32>) -> Attempt {
    Attempt {
        request_id: Uuid::nil(),
        attempt: 1,
        auth_scheme: Stored::Known(AuthScheme::Signed),
        http_status: Some(status),
        error_code: code,
        classified_code: code,
        error_message: None,
        error_reference: None,
    }
}

fn tts_callout(outcome: RequestOutcome, attempts: Vec<Attempt>) -> Request {
    Request {
        id: Uuid::nil(),
        reference: "ref-1".into(),
        created_at: OffsetDateTime::from_unix_timestamp(1_577_836_800).unwrap(),
        operation: Stored::Known(Operation::Callout),
        method: Stored::Known(HttpMethod::Post),
        body: Some(json!({"method": "ttsCallout", "ttsCallout": {"enableDice": true}})),
        callid: Some("c-1".into()),
        callout_method: Some(Stored::Known(CalloutMethod::Tts)),
        destination: Some("+14045005000".into()),
        dice_expected: Some(true),
        local_check: Stored::Known(LocalCheck::Passed),
        local_report: Default::default(),
        outcome: Stored::Known(outcome),
        failure: None,
        attempts,
    }
}

fn refused(check: LocalCheck, report: Value) -> Request {
    let mut r = tts_callout(RequestOutcome::RefusedLocally, vec![]);
    r.local_check = Stored::Known(check);
    r.local_report = serde_json::from_value(report).unwrap();
    r
}

fn status_of(d: &Diagnosis, id: StepId) -> Status {
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
            RequestOutcome::Success,
            vec![answered(200, None)],
        )],
        vec![
            cb(EventKind::Ace, json!({})),
            cb(
                EventKind::Dice,
                json!({"reason": "CALLEEHANGUP", "result": "ANSWERED"}),
            ),
        ],
    );
    let d = diagnose(&f);
    assert_eq!(d.failing_step, None, "{d:#?}");
    for st in [
        StepId::Authenticated,
        StepId::NumberFormat,
        StepId::Rang,
        StepId::CallbackArrived,
        StepId::CreditCapacity,
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
    let mut a = answered(402, Some(40200));
    a.error_reference = Some("sref".into());
    a.error_message = Some("Not enough credit".into());
    let f = facts(
        vec![tts_callout(RequestOutcome::SinchError, vec![a])],
        vec![],
    );
    let d = diagnose(&f);
    assert_eq!(status_of(&d, StepId::Authenticated), Status::Pass);
    assert_eq!(status_of(&d, StepId::Rang), Status::Fail);
    assert_eq!(status_of(&d, StepId::CreditCapacity), Status::Fail);
    assert_eq!(d.failing_step, Some(StepId::Rang));
    // The step's title is what it expects, quoted as what did not hold (not read as a finding).
    assert!(
        d.summary.starts_with(
            "Failing step: rang. Not so for this call: \"The phone rang: the callout was accepted"
        ),
        "{}",
        d.summary
    );
    let credit = d
        .steps
        .iter()
        .find(|s| s.id == StepId::CreditCapacity)
        .unwrap();
    assert!(credit.evidence[0].contains("sref"), "{credit:?}");
}

#[test]
fn auth_and_number_failures() {
    let mut a = answered(401, None);
    a.classified_code = Some(40102);
    let f = facts(
        vec![tts_callout(RequestOutcome::SinchError, vec![a])],
        vec![],
    );
    let d = diagnose(&f);
    assert_eq!(d.failing_step, Some(StepId::Authenticated));
    let r = refused(
        LocalCheck::InvalidNumber,
        json!({"field": "ttsCallout.destination.endpoint"}),
    );
    let d = diagnose(&facts(vec![r], vec![]));
    assert_eq!(status_of(&d, StepId::Authenticated), Status::Unknown);
    assert_eq!(d.failing_step, Some(StepId::NumberFormat));
    assert!(d.steps[1].evidence[0].contains("ttsCallout.destination.endpoint"));
}

#[test]
fn no_answer_dice_and_missing_callbacks() {
    let f = facts(
        vec![tts_callout(
            RequestOutcome::Success,
            vec![answered(200, None)],
        )],
        vec![cb(
            EventKind::Dice,
            json!({"reason": "TIMEOUT", "result": "NOANSWER"}),
        )],
    );
    let d = diagnose(&f);
    assert_eq!(d.failing_step, Some(StepId::Rang));
    assert!(d.steps[2].evidence.iter().any(|e| e.contains("NOANSWER")));
    // Accepted long ago, callbacks asked for, none came.
    let f = facts(
        vec![tts_callout(
            RequestOutcome::Success,
            vec![answered(200, None)],
        )],
        vec![],
    );
    let d = diagnose(&f);
    assert_eq!(status_of(&d, StepId::Rang), Status::Unknown);
    assert_eq!(d.failing_step, Some(StepId::CallbackArrived));
}

#[test]
fn svaml_and_capacity() {
    let mut f = facts(
        vec![],
        vec![
            cb(
                EventKind::Ice,
                json!({"cli": "+46700000001", "to": {"endpoint": "+46700000002"}}),
            ),
            cb(
                EventKind::Dice,
                json!({"reason": "CALLBACKERROR", "result": "FAILED"}),
            ),
        ],
    );
    f.rejected_replies = 1;
    let d = diagnose(&f);
    assert_eq!(status_of(&d, StepId::Authenticated), Status::Unknown);
    assert_eq!(status_of(&d, StepId::SvamlValid), Status::Fail);
    assert!(!format!("{d:?}").contains("46700000001"));
    let capped = refused(
        LocalCheck::CapReached,
        json!({"inProgress": 10, "limit": 10}),
    );
    let d = diagnose(&facts(vec![capped], vec![]));
    assert_eq!(status_of(&d, StepId::CreditCapacity), Status::Fail);
    assert!(d.steps[5].next.contains("SINCH_MAX_CALLS_IN_PROGRESS"));
    assert!(d.steps[5].evidence[0].contains("10 call(s) were in progress"));
    let text = render_text(&serde_json::to_value(&d).unwrap());
    assert!(text.contains("[FAIL   ]"), "{text}");
}

/// Text another version wrote, outside the vocabularies, is shown as stored.
#[test]
fn unknown_stored_values_are_shown_as_stored() {
    let mut r = tts_callout(RequestOutcome::Success, vec![]);
    r.outcome = Stored::read("rerouted");
    let d = diagnose(&facts(vec![r], vec![]));
    assert_eq!(status_of(&d, StepId::Rang), Status::Unknown);
    assert!(
        d.steps[2].evidence[0].ends_with("is rerouted"),
        "{:?}",
        d.steps[2]
    );
}

/// The step ids serialize as the OpenAPI document lists them, and the CLI text reads the
/// answer back.
#[test]
fn step_ids_and_text() {
    for (id, text) in StepId::ALL.iter().zip(STEP_IDS) {
        assert_eq!(serde_json::to_value(id).unwrap(), text);
    }
    let d = diagnose(&facts(vec![], vec![]));
    let text = render_text(&serde_json::to_value(&d).unwrap());
    assert!(
        text.starts_with("Diagnosis of c-1\n\n[UNKNOWN] The request to Sinch was authenticated\n")
    );
    assert!(text.ends_with(&format!("\n{}\n", d.summary)), "{text}");
}
