//! Vocabulary columns go to PostgreSQL and come back as their types: a strict vocabulary refuses
//! text outside it with an error naming it (never a panic), `Stored<T>` keeps text written by
//! another version, and an unknown event keeps its name.

use serde_json::{json, Value};
use svamlgate::events::EventKind;
use svamlgate::outcome::{LocalCheck, ReplySource, RequestOutcome, Stored};

use crate::helpers::*;

#[actix_web::test]
async fn vocabulary_columns_read_back_as_their_types() {
    let app = spawn_app().await;
    let pool = &app.pool;

    let back: String = sqlx::query_scalar("SELECT $1::text")
        .bind(LocalCheck::CapUnchecked)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(back, "cap_unchecked");
    let read: RequestOutcome = sqlx::query_scalar("SELECT 'sinch_error'::text")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(read, RequestOutcome::SinchError);
    let err = sqlx::query_scalar::<_, RequestOutcome>("SELECT 'rerouted'::text")
        .fetch_one(pool)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown RequestOutcome \"rerouted\""),
        "{err}"
    );
    let kept: Stored<RequestOutcome> = sqlx::query_scalar("SELECT 'rerouted'::text")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(kept, Stored::Other("rerouted".into()));
    let kind: EventKind = sqlx::query_scalar("SELECT 'Surprise'::text")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(kind, EventKind::Unknown("Surprise".into()));

    // A callback recorded, then its reply source rewritten as another version might have written
    // it: the admin API still lists the row, with the text as stored.
    let ok = app.post_signed(&ice("vocab-1", "+15550100")).await;
    assert_eq!(ok.status, 200);
    app.settle().await;
    let stored: Option<Stored<ReplySource>> =
        sqlx::query_scalar("SELECT reply_source FROM callbacks WHERE callid = 'vocab-1'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert!(matches!(stored, Some(Stored::Known(_))), "{stored:?}");
    sqlx::query("UPDATE callbacks SET reply_source = 'teleported' WHERE callid = 'vocab-1'")
        .execute(pool)
        .await
        .unwrap();
    let r = app.admin_get("/admin/events?callid=vocab-1").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let items = r.json()["items"].clone();
    let item = items
        .as_array()
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or_else(|| json!({}));
    assert_eq!(item["replySource"], "teleported", "{items:#}");
    assert_eq!(item["eventType"], "ice", "{items:#}");
    app.stop().await;
}

/// The admin reads built from typed rows show each column as stored, every time in RFC 3339 UTC
/// (`Z`) with the stored precision: a refusal with its summary (`GET /admin/errors/{reference}`),
/// a rejected reply and an outbound request with its attempts (`GET /admin/calls/{callid}`), a
/// Sinch error (`GET /admin/sinch-errors`). Rows written here as another instance would have
/// written them, then compared value by value with what the API answers.
#[actix_web::test]
async fn admin_reads_show_the_stored_values_with_utc_times() {
    let app = spawn_app().await;
    let pool = &app.pool;
    let ok = app.post_signed(&ice("reads-1", "+15550100")).await;
    assert_eq!(ok.status, 200);
    app.settle().await;
    let callback_id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM callbacks WHERE callid = 'reads-1'")
            .fetch_one(pool)
            .await
            .unwrap();
    let setup = [
        "INSERT INTO errors (reference, occurred_at, error_code, http_status, status, message, method, path, \
         remote_addr) VALUES ('reads-err', '2026-01-31 12:00:01.5+00', 40102, 401, '401 Unauthorized', \
         'signature mismatch', 'POST', '/sinch/callback', '10.0.0.9')",
        "INSERT INTO refusals (reference, received_at, reason, error_code, application_key, remote_addr, method, \
         path, headers, body_sha256, body_bytes, answered, summary_count, first_at, last_at, peer) VALUES \
         ('reads-err', '2026-01-31 12:00:01.5+00', 'signature_mismatch', 40102, 'k', '10.0.0.9', 'POST', \
         '/sinch/callback', '{\"content-type\": \"application/json\"}', 'ab12', 42, false, 7, \
         '2026-01-31 11:59:00.25+02', '2026-01-31 12:00:01.123456+00', '10.0.0.9')",
        "INSERT INTO errors (reference, error_code, http_status, status, message) VALUES \
         ('reads-rej', 40001, 400, '400 BadRequest', 'refused')",
        "INSERT INTO outbound_requests (id, reference, created_at, finished_at, operation, method, path, body, \
         callid, callout_method, destination, dice_expected, local_check, outcome, http_status, attempts, \
         latency_us, error_code, error_status, error_message, error_reference) VALUES \
         ('018f0000-0000-7000-8000-000000000001', 'reads-out', '2026-01-31 12:00:02+00', \
         '2026-01-31 12:00:03.000001+00', 'callout', 'POST', '/calling/v1/callouts', '{\"method\": \"ttsCallout\"}', \
         'reads-1', 'ttsCallout', '+15550100', true, 'passed', 'sinch_error', 503, 1, 1000001, 50300, \
         '503 ServiceUnavailable', 'busy', 'sref-reads')",
        "INSERT INTO outbound_attempts (id, request_id, attempt, sent_at, latency_us, auth_scheme, http_status, \
         response_body, failure, error_code, error_status, error_message, error_reference, classified_code, \
         code_mismatch, decision) VALUES ('018f0000-0000-7000-8000-000000000002', \
         '018f0000-0000-7000-8000-000000000001', 1, '2026-01-31 12:00:02.1+00', 900000, 'basic', 503, \
         '{\"errorCode\": 50300}', 'too_large', 50300, '503 ServiceUnavailable', 'busy', 'sref-reads', 50300, \
         false, 'give_up')",
    ];
    for sql in setup {
        sqlx::query(sql).execute(pool).await.unwrap();
    }
    sqlx::query(
        "INSERT INTO rejected_replies (id, callback_id, reference, created_at, event_type, source, reply, \
         raw_reply, report) VALUES ('018f0000-0000-7000-8000-000000000003', $1, 'reads-rej', \
         '2026-01-31 12:00:00.000123+00', 'ice', 'upstream', '{\"action\": {\"name\": \"hangup\"}}', NULL, \
         (SELECT c.validation FROM callbacks c WHERE id = $1))",
    )
    .bind(callback_id)
    .execute(pool)
    .await
    .unwrap();
    // The gate's report of the ICE's reply stands for the rejected reply's report.
    let report: Value = sqlx::query_scalar("SELECT c.validation FROM callbacks c WHERE id = $1")
        .bind(callback_id)
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(report.is_object(), "{report}");
    let doc = Documented::fetch(&app).await;

    let r = app.admin_get("/admin/errors/reads-err").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let error = r.json();
    doc.check("GET", "/admin/errors/{reference}", 200, &error);
    assert_eq!(error["occurredAt"], "2026-01-31T12:00:01.5Z", "{error:#}");
    assert_eq!(
        error["refusal"],
        json!({"reason": "signature_mismatch", "applicationKey": "k",
            "headers": {"content-type": "application/json"}, "bodySha256": "ab12", "bodyBytes": 42,
            "explanation": null, "answered": false,
            "summary": {"count": 7, "firstAt": "2026-01-31T09:59:00.25Z",
                "lastAt": "2026-01-31T12:00:01.123456Z", "peer": "10.0.0.9"}}),
        "{error:#}"
    );
    let r = app.admin_get("/admin/errors/reads-rej").await;
    assert_eq!(r.json()["refusal"], Value::Null, "not a refusal");

    let r = app.admin_get("/admin/calls/reads-1").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let call = r.json();
    doc.check("GET", "/admin/calls/{callid}", 200, &call);
    assert_eq!(
        call["rejectedReplies"],
        json!([{"callbackId": callback_id, "reference": "reads-rej", "eventType": "ice",
            "source": "upstream", "reply": {"action": {"name": "hangup"}}, "rawReply": null,
            "report": report, "createdAt": "2026-01-31T12:00:00.000123Z"}]),
        "{call:#}"
    );
    let attempt = json!({"attempt": 1, "sentAt": "2026-01-31T12:00:02.1Z", "latencyUs": 900000,
        "authScheme": "basic", "httpStatus": 503, "retryAfterMs": null, "failure": "too_large",
        "failureDetail": null, "errorCode": 50300, "errorStatus": "503 ServiceUnavailable",
        "errorMessage": "busy", "errorReference": "sref-reads", "classifiedCode": 50300,
        "codeMismatch": false, "decision": "give_up", "responseBody": "{\"errorCode\": 50300}"});
    assert_eq!(
        call["outboundRequests"],
        json!([{"reference": "reads-out", "createdAt": "2026-01-31T12:00:02Z",
            "finishedAt": "2026-01-31T12:00:03.000001Z", "operation": "callout", "method": "POST",
            "path": "/calling/v1/callouts", "body": {"method": "ttsCallout"}, "callid": "reads-1",
            "conferenceId": null, "callLeg": null, "calloutMethod": "ttsCallout",
            "destination": "+15550100", "diceExpected": true, "localCheck": "passed",
            "localReport": null, "outcome": "sinch_error", "httpStatus": 503, "attemptCount": 1,
            "latencyUs": 1000001, "response": null, "errorCode": 50300,
            "errorStatus": "503 ServiceUnavailable", "errorMessage": "busy",
            "errorReference": "sref-reads", "failure": null, "attempts": [attempt]}]),
        "{call:#}"
    );

    let r = app
        .admin_get("/admin/sinch-errors?reference=sref-reads")
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let page = r.json();
    doc.check("GET", "/admin/sinch-errors", 200, &page);
    assert_eq!(
        page["items"],
        json!([{"sentAt": "2026-01-31T12:00:02.1Z", "reference": "reads-out", "operation": "callout",
            "method": "POST", "path": "/calling/v1/callouts", "callid": "reads-1", "attempt": 1,
            "httpStatus": 503, "errorCode": 50300, "classifiedCode": 50300,
            "status": "503 ServiceUnavailable", "message": "busy", "sinchReference": "sref-reads",
            "codeMismatch": false, "decision": "give_up"}]),
        "{page:#}"
    );
    app.stop().await;
}

/// The console's per-minute counts read their vocabularies typed: the table's empty text as
/// `None`, a value another version wrote as `Stored::Other` (never a failed read, so the page
/// still renders), a known one as itself.
#[actix_web::test]
async fn the_console_counts_read_their_vocabularies_typed() {
    use svamlgate::console::queries;
    use svamlgate::outcome::{FallbackReason, GateVerdict, RefusalReason};
    use svamlgate::svaml::Severity;

    let app = spawn_app().await;
    let pool = &app.pool;
    let setup = [
        "INSERT INTO console_minutes (minute, event_type, reply_source, fallback_reason, gate_verdict, callbacks) \
         VALUES (date_trunc('minute', now()), 'ice', 'fallback', 'invalid', 'rejected', 3), \
         (date_trunc('minute', now()), 'ace', 'teleported', 'overload', 'held', 2), \
         (date_trunc('minute', now()), '', 'error', '', '', 1)",
        "INSERT INTO console_rule_minutes (minute, code, severity, source, gate_verdict, findings) \
         VALUES (date_trunc('minute', now()), 'SVAML003', 'warning', 'svamlgate', 'passed', 4), \
         (date_trunc('minute', now()), 'SVAML999', 'info', 'svamlgate', '', 5)",
        "INSERT INTO errors (reference, error_code, http_status, status, message) VALUES \
         ('count-1', 40102, 401, '401 Unauthorized', 'refused'), \
         ('count-2', 40102, 401, '401 Unauthorized', 'refused')",
        "INSERT INTO refusals (reference, received_at, reason, error_code, application_key, remote_addr, method, \
         path, headers, body_sha256, body_bytes, answered, summary_count, first_at, last_at, peer) VALUES \
         ('count-1', now(), 'signature_mismatch', 40102, 'k', '10.0.0.9', 'POST', '/sinch/callback', '{}', \
         'ab12', 42, false, 1, now(), now(), '10.0.0.9'), \
         ('count-2', now(), 'moon_phase', 40102, 'k', '10.0.0.9', 'POST', '/sinch/callback', '{}', \
         'ab12', 42, false, 1, now(), now(), '10.0.0.9')",
    ];
    for sql in setup {
        sqlx::query(sql).execute(pool).await.unwrap();
    }
    let since = time::OffsetDateTime::now_utc() - time::Duration::hours(1);

    let counts = queries::counts(pool, since).await.unwrap();
    assert_eq!(counts.len(), 3, "{counts:#?}");
    let refused = counts.iter().find(|c| c.n == 3).unwrap();
    assert_eq!(refused.event_type, EventKind::Ice);
    assert_eq!(
        refused.reply_source,
        Some(Stored::Known(ReplySource::Fallback))
    );
    assert_eq!(
        refused.fallback_reason,
        Some(Stored::Known(FallbackReason::Invalid))
    );
    assert_eq!(
        refused.gate_verdict,
        Some(Stored::Known(GateVerdict::Rejected))
    );
    let other = counts.iter().find(|c| c.n == 2).unwrap();
    assert_eq!(other.reply_source, Some(Stored::Other("teleported".into())));
    assert_eq!(
        other.fallback_reason,
        Some(Stored::Other("overload".into()))
    );
    assert_eq!(other.gate_verdict, Some(Stored::Other("held".into())));
    let unparsed = counts.iter().find(|c| c.n == 1).unwrap();
    assert_eq!(unparsed.event_type, EventKind::Unknown(String::new()));
    assert_eq!(unparsed.fallback_reason, None);
    assert_eq!(unparsed.gate_verdict, None);

    let rules = queries::rules(pool, since).await.unwrap();
    assert_eq!(rules.len(), 2, "{rules:#?}");
    let info = rules.iter().find(|r| r.code == "SVAML999").unwrap();
    assert_eq!(info.severity, Stored::Other("info".into()));
    assert_eq!(info.gate_verdict, None);
    let warning = rules.iter().find(|r| r.code == "SVAML003").unwrap();
    assert_eq!(warning.severity, Stored::Known(Severity::Warning));
    assert_eq!(
        warning.gate_verdict,
        Some(Stored::Known(GateVerdict::Passed))
    );

    let mut refusals = queries::refusals(pool, since).await.unwrap();
    refusals.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    assert_eq!(
        refusals,
        vec![
            (Stored::Other("moon_phase".into()), 1),
            (Stored::Known(RefusalReason::SignatureMismatch), 1),
        ]
    );
    app.stop().await;
}
