//! One-off: writes tests/fixtures/journal-previous-release/ with the journal code of the release
//! before the format version (commit 9f26096). Run once, then removed.

use std::time::Duration;

use svamlgate::db::flows::CallState;
use svamlgate::error::{ErrorRecord, RefusalRecord};
use svamlgate::flows::render::EventContext;
use svamlgate::outcome::{FallbackReason, GateVerdict, ReplySource, SignatureState};
use svamlgate::recording::{
    CallStateChange, CallbackOutcome, CallbackRecord, Journal, NewCallback, Record, RejectedReply,
    SinchReport, UpstreamExchange,
};
use uuid::Uuid;

fn raw(v: &str) -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string(v.to_owned()).unwrap()
}

fn callback(event: &str, callid: &str, body: &[u8]) -> NewCallback {
    NewCallback {
        id: Uuid::now_v7(),
        reference: Uuid::new_v4().simple().to_string(),
        received_at: time::OffsetDateTime::now_utc(),
        event_type: event.into(),
        event_known: true,
        callid: Some(callid.into()),
        application_key: Some("669E367E-6BBA-48AB-AF15-266871C28135".into()),
        event_timestamp: Some(time::OffsetDateTime::now_utc()),
        raw_body: body.to_vec(),
        body_is_json: true,
        parse_warnings: None,
        signature: SignatureState::Verified,
        dedup_key: Some(format!("{:064x}", rand_u128())),
        remote_addr: Some("127.0.0.1".into()),
        path: "/sinch/callback".into(),
    }
}

fn rand_u128() -> u128 {
    Uuid::new_v4().as_u128()
}

#[test]
#[ignore = "one-off fixture generator"]
fn generate() {
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/journal-previous-release");
    let work = std::env::temp_dir().join(format!("gen-journal-{}", Uuid::new_v4()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (journal, _) = Journal::open(&work).unwrap();
        let mut records = Vec::new();
        for i in 0..20 {
            let callid = format!("prev-release-{i}");
            let body = format!(
                r#"{{"event":"ice","callid":"{callid}","timestamp":"2026-12-01T10:00:00Z","version":1,"cli":"+15550100","to":{{"type":"number","endpoint":"+15550123"}},"originationType":"PSTN"}}"#
            );
            let mut r = CallbackRecord::new(
                callback("ice", &callid, body.as_bytes()),
                CallbackOutcome {
                    http_status: 200,
                    reply: Some(raw(r#"{"instructions":[{"name":"say","text":"hello","locale":"en-US"}],"action":{"name":"hangup"}}"#)),
                    validation: Some(raw(r#"{"valid":true,"findings":[]}"#)),
                    latency_us: 1234,
                    gate_verdict: Some(GateVerdict::Passed),
                    route_id: Some(1),
                    ..CallbackOutcome::answered(ReplySource::Default)
                },
            );
            r.call_state = Some(CallStateChange::Set {
                callid: callid.clone(),
                state: Box::new(CallState {
                    route_id: Some(1),
                    flow_id: None,
                    flow_version: None,
                    node: Some("start".into()),
                    context: EventContext {
                        caller: Some("+15550100".into()),
                        called: Some("+15550123".into()),
                        callid: Some(callid.clone()),
                        ..Default::default()
                    },
                }),
            });
            if i == 3 {
                let reference = Uuid::new_v4().simple().to_string();
                r.outcome.reply_source = ReplySource::Fallback;
                r.outcome.fallback_reason = Some(FallbackReason::Invalid);
                r.rejected = Some(RejectedReply {
                    id: Uuid::now_v7(),
                    reference: reference.clone(),
                    event_type: "ice".into(),
                    source: ReplySource::Upstream,
                    reply: Some(serde_json::json!({"action": {"name": "nonsense"}})),
                    raw_reply: None,
                    report: raw(r#"{"valid":false}"#),
                });
                r.errors.push(ErrorRecord {
                    reference,
                    error_code: 42202,
                    http_status: 200,
                    status: "200 OK".into(),
                    message: "the reply was refused by the gate".into(),
                    detail: None,
                    method: Some("POST".into()),
                    path: Some("/sinch/callback".into()),
                    remote_addr: None,
                    callback_id: Some(r.callback.id),
                    refusal: None,
                    occurred_at: Some(time::OffsetDateTime::now_utc()),
                });
                r.upstream = Some(UpstreamExchange {
                    url: "http://127.0.0.1:9/app".into(),
                    status: Some(200),
                    body: Some("{}".into()),
                    latency_us: 10,
                    failure: None,
                });
            }
            records.push(Record::Callback(Box::new(r)));
        }
        let dice = br#"{"event":"dice","callid":"prev-release-0","timestamp":"2026-12-01T10:00:05Z","reason":"CALLBACKERROR","result":"FAILED","version":1}"#;
        let mut d = CallbackRecord::new(
            callback("dice", "prev-release-0", dice),
            CallbackOutcome::answered(ReplySource::None),
        );
        d.call_state = Some(CallStateChange::Ended {
            callid: "prev-release-0".into(),
        });
        d.sinch_report = Some(SinchReport {
            kind: "callbackerror".into(),
            callid: "prev-release-0".into(),
            error_code: None,
            message: None,
            reason: Some("CALLBACKERROR".into()),
            result: Some("FAILED".into()),
        });
        records.push(Record::Callback(Box::new(d)));
        records.push(Record::Error(Box::new(ErrorRecord {
            reference: format!("prev-release-refusal-{}", Uuid::new_v4().simple()),
            error_code: 40108,
            http_status: 401,
            status: "401 Unauthorized".into(),
            message: "unknown application key".into(),
            detail: None,
            method: Some("POST".into()),
            path: Some("/sinch/callback".into()),
            remote_addr: Some("127.0.0.1".into()),
            callback_id: None,
            refusal: Some(RefusalRecord {
                reason: "unknown_key".into(),
                application_key: Some("nobody".into()),
                headers: serde_json::json!({"content-type": "application/json"}),
                body_sha256: "00".repeat(32),
                body_bytes: 2,
            }),
            occurred_at: Some(time::OffsetDateTime::now_utc()),
        })));
        for r in &records {
            journal.append(serde_json::to_vec(r).unwrap()).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        journal.release();
    });
    std::fs::create_dir_all(&out).unwrap();
    for e in std::fs::read_dir(&work).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "seg") && std::fs::metadata(&p).unwrap().len() > 0 {
            std::fs::copy(&p, out.join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::remove_dir_all(&work).unwrap();
}
