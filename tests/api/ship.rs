//! The shipper's SQL against real PostgreSQL: what COPY writes is what the journal held, byte for
//! byte, and a batch shipped again changes nothing.

use serde_json::{json, value::RawValue, Value};
use sqlx::Row;
use svamlgate::db::store::Store;
use svamlgate::error::{ErrorRecord, RefusalRecord};
use svamlgate::flows::render::EventContext;
use svamlgate::flows::state::CallState;
use svamlgate::outcome::{GateVerdict, ReplySource, SignatureState};
use svamlgate::recording::{CallStateChange, CallbackOutcome, CallbackRecord, NewCallback, Record};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::helpers::fresh_database;

fn callback(raw: &[u8], is_json: bool, callid: &str, at: OffsetDateTime) -> CallbackRecord {
    let c = NewCallback {
        id: Uuid::now_v7(),
        reference: Uuid::now_v7().to_string(),
        received_at: at,
        event_type: "ice".into(),
        event_known: true,
        callid: Some(callid.into()),
        application_key: Some("key\\with\tescapes".into()),
        event_timestamp: Some(at),
        raw_body: raw.to_vec(),
        body_is_json: is_json,
        parse_warnings: Some(json!([{"pointer": "/custom", "message": "line\nbreak"}])),
        signature: SignatureState::Verified,
        dedup_key: Some("k".repeat(64)),
        remote_addr: Some("127.0.0.1:5000".into()),
        path: "/sinch/callback".into(),
    };
    let reply: Box<RawValue> =
        RawValue::from_string(r#"{"action":{"name":"say","text":"a\tb \\ c"}}"#.into()).unwrap();
    let outcome = CallbackOutcome {
        reply: Some(reply),
        validation: Some(RawValue::from_string(r#"{"valid":true}"#.into()).unwrap()),
        latency_us: 850,
        flow_id: Some(1),
        flow_version: Some(2),
        flow_node: Some("welcome".into()),
        route_id: Some(3),
        gate_verdict: Some(GateVerdict::Passed),
        ..CallbackOutcome::answered(ReplySource::Flow)
    };
    CallbackRecord::new(c, outcome)
}

fn state(node: &str) -> Box<CallState> {
    Box::new(CallState {
        route_id: Some(3),
        flow_id: Some(1),
        flow_version: Some(2),
        node: Some(node.into()),
        context: EventContext {
            caller: Some("+46708168731".into()),
            ..EventContext::default()
        },
    })
}

fn error(reference: &str, callback_id: Option<Uuid>, refusal: bool) -> ErrorRecord {
    ErrorRecord {
        reference: reference.into(),
        error_code: 40108,
        http_status: 401,
        status: "401 Unauthorized".into(),
        message: "tab\there, newline\nthere, backslash \\ too".into(),
        detail: Some(json!({"why": "a\tb"})),
        method: Some("POST".into()),
        path: Some("/sinch/callback".into()),
        remote_addr: None,
        callback_id,
        refusal: refusal.then(|| RefusalRecord {
            reason: "signature_mismatch".into(),
            application_key: Some("key".into()),
            headers: json!({"x-timestamp": "2026-01-01T00:00:00Z"}),
            body_sha256: "0".repeat(64),
            body_bytes: 12,
            explanation: None,
            answered: true,
            summary: Some(svamlgate::error::RefusalSummary {
                peer: "127.0.0.1".into(),
                count: 7,
                first_at: OffsetDateTime::UNIX_EPOCH,
                last_at: OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(59),
                window_secs: 60,
            }),
        }),
        occurred_at: Some(OffsetDateTime::now_utc()),
    }
}

/// Every column of the tables the shipper COPYs into is written by it (COPYed or derived in its
/// `INSERT … SELECT`) or named as set later, and nothing it writes is missing from the table: a
/// column added by a migration and forgotten in the shipper fails here (ARCHITECTURE.md, "Add a
/// column"). Column names and values come from one declaration (`recording::ship::Staged`), so a value
/// cannot land in another column.
#[actix_web::test]
async fn every_column_of_callbacks_is_shipped_or_set_later() {
    use std::collections::BTreeSet;
    use svamlgate::recording::ship::{
        CALLBACKS, CALLBACK_COLUMNS_SET_LATER, CALL_STATES, ERRORS, ERROR_COLUMNS_SET_LATER,
        REFUSALS,
    };
    let url = fresh_database().await;
    let pool = sqlx::PgPool::connect(&url).await.expect("pool");
    let columns = |table: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1",
            )
            .bind(table)
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .collect::<BTreeSet<String>>()
        }
    };
    let set = |written: Vec<&str>, later: &[&str]| -> BTreeSet<String> {
        let all: Vec<&str> = written.iter().chain(later).copied().collect();
        let unique: BTreeSet<String> = all.iter().map(|c| (*c).to_owned()).collect();
        assert_eq!(unique.len(), all.len(), "a column written twice: {all:?}");
        unique
    };
    let callbacks = columns("callbacks").await;
    assert!(callbacks.len() > 20, "{callbacks:?}");
    assert!(
        !callbacks.contains("body"),
        "body is a function of the row (0013)"
    );
    assert_eq!(
        callbacks,
        set(
            CALLBACKS.target_columns().collect(),
            &CALLBACK_COLUMNS_SET_LATER
        ),
        "columns of callbacks vs what the shipper writes"
    );
    assert_eq!(
        columns("errors").await,
        set(ERRORS.target_columns().collect(), &ERROR_COLUMNS_SET_LATER)
    );
    assert_eq!(
        columns("refusals").await,
        set(REFUSALS.target_columns().collect(), &[])
    );
    assert_eq!(
        columns("call_state").await,
        set(CALL_STATES.target_columns().collect(), &[])
    );
}

#[actix_web::test]
async fn a_batch_shipped_twice_writes_each_row_once_with_every_value_intact() {
    let url = fresh_database().await;
    let pool = sqlx::PgPool::connect(&url).await.expect("pool");
    let store = Store::new(pool.clone());
    let t0 = time::macros::datetime!(2026-03-04 05:06:07.123456789 UTC);
    let later = t0 + time::Duration::seconds(1);

    // A call that ended, shipped in an earlier batch.
    let mut earlier = callback(br#"{"event":"ice"}"#, true, "ended-call", t0);
    earlier.call_state = Some(CallStateChange::Set {
        callid: "ended-call".into(),
        state: state("welcome"),
    });
    store
        .ship(&[&Record::Callback(Box::new(earlier))])
        .await
        .expect("first batch");

    // JSON with a byte-order mark, non-ASCII text and a tab in the call id.
    let json_body =
        "\u{feff}{\"event\":\"ice\",\"callid\":\"c\\t1\",\"custom\":\"Grüße \\\\ \\\"q\\\"\",\
         \"cli\":\"46708168731\",\"to\":{\"type\":\"number\",\"endpoint\":\"+15550100\"}}";
    let mut a = callback(json_body.as_bytes(), true, "c\t1", t0);
    a.call_state = Some(CallStateChange::Set {
        callid: "c\t1".into(),
        state: state("welcome"),
    });
    a.errors.push(error(
        &Uuid::now_v7().to_string(),
        Some(a.callback.id),
        false,
    ));
    // Bytes that are not JSON (nor UTF-8): kept as they came, body NULL.
    let raw_b: &[u8] = b"\x00\xff\t\n\\N\r\xc3(";
    let mut b = callback(raw_b, false, "c\t1", later);
    b.call_state = Some(CallStateChange::Set {
        callid: "c\t1".into(),
        state: state("menu"),
    });
    // JSON PostgreSQL's jsonb cannot hold: the row is kept, body NULL.
    let mut c = callback(
        br#"{"event":"ice","custom":"nul\u0000"}"#,
        true,
        "c3",
        later,
    );
    c.call_state = Some(CallStateChange::Ended {
        callid: "ended-call".into(),
    });
    let refusal_ref = Uuid::now_v7().to_string();
    let (a_id, b_id, c_id) = (a.callback.id, b.callback.id, c.callback.id);
    let batch = [
        Record::Callback(Box::new(a)),
        Record::Callback(Box::new(b)),
        Record::Callback(Box::new(c)),
        Record::Error(Box::new(error(&refusal_ref, None, true))),
    ];
    let refs: Vec<&Record> = batch.iter().collect();
    store.ship(&refs).await.expect("batch");
    store.ship(&refs).await.expect("the same batch again");

    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
                .get::<i64, _>(0)
        }
    };
    assert_eq!(count("SELECT count(*) FROM callbacks").await, 4);
    assert_eq!(count("SELECT count(*) FROM errors").await, 2);
    assert_eq!(count("SELECT count(*) FROM refusals").await, 1);

    let row = sqlx::query(
        "SELECT raw_body, c.body, body_json, called, caller, callid, application_key, received_at, reply, \
         parse_warnings, validation, flow_version, gate_verdict, http_status, latency_us FROM callbacks c WHERE id = $1",
    )
    .bind(a_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(row.get::<Vec<u8>, _>("raw_body"), json_body.as_bytes());
    let body: Value = row.get("body");
    assert_eq!(body["custom"], "Grüße \\ \"q\"");
    assert_eq!(body["callid"], "c\t1");
    assert!(row.get::<bool, _>("body_json"));
    assert_eq!(
        row.get::<Option<String>, _>("called"),
        Some("+15550100".into())
    );
    assert_eq!(
        row.get::<Option<String>, _>("caller"),
        Some("46708168731".into())
    );
    assert_eq!(row.get::<String, _>("callid"), "c\t1");
    assert_eq!(
        row.get::<String, _>("application_key"),
        "key\\with\tescapes"
    );
    assert_eq!(
        row.get::<OffsetDateTime, _>("received_at"),
        time::macros::datetime!(2026-03-04 05:06:07.123456 UTC),
        "microseconds, truncated as a bound parameter is"
    );
    assert_eq!(
        row.get::<Value, _>("reply"),
        json!({"action": {"name": "say", "text": "a\tb \\ c"}})
    );
    assert_eq!(
        row.get::<Value, _>("parse_warnings"),
        json!([{"pointer": "/custom", "message": "line\nbreak"}])
    );
    assert_eq!(row.get::<Value, _>("validation"), json!({"valid": true}));
    assert_eq!(row.get::<i32, _>("flow_version"), 2);
    assert_eq!(row.get::<String, _>("gate_verdict"), "passed");
    assert_eq!(row.get::<i16, _>("http_status"), 200);
    assert_eq!(row.get::<i64, _>("latency_us"), 850);

    for (id, raw) in [
        (b_id, raw_b.to_vec()),
        (c_id, br#"{"event":"ice","custom":"nul\u0000"}"#.to_vec()),
    ] {
        let row = sqlx::query(
            "SELECT raw_body, callbacks.body, body_json, called FROM callbacks WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(row.get::<Vec<u8>, _>("raw_body"), raw);
        assert!(row.get::<Option<Value>, _>("body").is_none());
        assert!(!row.get::<bool, _>("body_json"));
        assert!(row.get::<Option<String>, _>("called").is_none());
    }

    let e = sqlx::query("SELECT message, detail, callback_id FROM errors WHERE callback_id = $1")
        .bind(a_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        e.get::<String, _>("message"),
        "tab\there, newline\nthere, backslash \\ too"
    );
    assert_eq!(e.get::<Value, _>("detail"), json!({"why": "a\tb"}));
    let r = sqlx::query("SELECT reason, headers, body_bytes FROM refusals WHERE reference = $1")
        .bind(&refusal_ref)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(r.get::<String, _>("reason"), "signature_mismatch");
    assert_eq!(
        r.get::<Value, _>("headers"),
        json!({"x-timestamp": "2026-01-01T00:00:00Z"})
    );
    assert_eq!(r.get::<i32, _>("body_bytes"), 12);
    let summary: (bool, Option<i64>, Option<String>, Option<OffsetDateTime>) = sqlx::query_as(
        "SELECT answered, summary_count, peer, last_at FROM refusals WHERE reference = $1",
    )
    .bind(&refusal_ref)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        summary,
        (
            true,
            Some(7),
            Some("127.0.0.1".to_owned()),
            Some(OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(59))
        )
    );

    // The last change of the batch wins; the ended call is gone.
    let states: Vec<(String, Option<String>, Value)> =
        sqlx::query_as("SELECT callid, node, context FROM call_state ORDER BY callid")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(states.len(), 1, "{states:?}");
    assert_eq!(states[0].0, "c\t1");
    assert_eq!(states[0].1.as_deref(), Some("menu"));
    assert_eq!(states[0].2["caller"], "+46708168731");
}

/// A catch-up of `CATCHUP_ROWS` (150,000 by default) journaled IVR callbacks (each with a
/// call-state change), shipped by the real shipper from a real journal into a fresh database:
/// once with every batch in one transaction, once over two connections (`recording::ship::PARALLEL_AT`).
/// Prints rows/s of each; asserts only that every row arrived once. A measurement, not a check:
/// `cargo test --test api catch_up -- --ignored --nocapture` (docs/benchmarks.md).
#[actix_web::test]
#[ignore = "a measurement: about a minute per mode"]
async fn catch_up_rows_per_second() {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use svamlgate::recording::journal::Journal;
    use svamlgate::recording::shipper::{self, ShipperConfig};
    use svamlgate::recording::ShipStatus;

    let rows: usize = std::env::var("CATCHUP_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150_000);
    let reply = r##"{"instructions":[],"action":{"name":"runMenu","barge":true,"locale":"en-US","mainMenu":"main","menus":[{"id":"main","mainPrompt":"#tts[Welcome to Example Corp. For sales, press 1. For support, press 2. To enter your PIN, press 3.]","repeatPrompt":"#tts[Sorry, I did not get that. For sales, press 1. For support, press 2.]","repeats":2,"timeoutMills":5000,"options":[{"dtmf":"1","action":"return(sales)"},{"dtmf":"2","action":"return(support)"},{"dtmf":"3","action":"return(pin)"}]}]}}"##;
    let mut figures = Vec::new();
    let rounds: usize = std::env::var("CATCHUP_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    for connections in [1, 2].repeat(rounds) {
        svamlgate::recording::ship::set_connections(connections);
        let url = fresh_database().await;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await
            .expect("pool");
        let dir = crate::helpers::base_config().db.data_dir.join("journal");
        std::fs::create_dir_all(&dir).unwrap();
        let (journal, _) = Journal::open(&dir).unwrap();
        let t0 = OffsetDateTime::now_utc();
        let mut seq = 0;
        // CATCHUP_JOURNAL=0 measures PostgreSQL's side only (below).
        let from_journal = std::env::var("CATCHUP_JOURNAL").map_or(true, |v| v != "0");
        let journaled = if from_journal { rows } else { 0 };
        for chunk in (0..journaled).collect::<Vec<_>>().chunks(2000) {
            let appends = chunk.iter().map(|i| {
                let callid = format!("catchup-{i}");
                let at = t0 + time::Duration::microseconds(*i as i64);
                let body = format!(
                    r#"{{"event":"ice","callid":"{callid}","timestamp":"2026-12-02T08:00:00Z","version":1,"cli":"46708168731","to":{{"type":"number","endpoint":"+15550100"}},"domain":"pstn","originationType":"PSTN","applicationKey":"bench-key"}}"#
                );
                let mut r = callback(body.as_bytes(), true, &callid, at);
                r.outcome.reply = Some(RawValue::from_string(reply.into()).unwrap());
                r.call_state = Some(CallStateChange::Set {
                    callid,
                    state: state("main"),
                });
                let payload = svamlgate::recording::encode(&Record::Callback(Box::new(r))).unwrap();
                journal.append(payload)
            });
            for s in futures_util::future::join_all(appends).await {
                seq = seq.max(s.unwrap());
            }
        }
        let status = Arc::new(ShipStatus::new(&journal));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(None);
        let started = std::time::Instant::now();
        let done = shipper::spawn(
            journal,
            Store::new(pool.clone()),
            Arc::new(svamlgate::metrics::Metrics::new()),
            status.clone(),
            ShipperConfig {
                retention: std::time::Duration::from_secs(3600),
                disk_limit_bytes: u64::MAX,
                defer_max: std::time::Duration::ZERO,
            },
            stop_rx,
        )
        .unwrap();
        loop {
            let moved = status.shipped_moved.notified();
            if !from_journal || status.shipped.load(Ordering::Acquire) >= seq {
                break;
            }
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), moved).await;
        }
        let secs = started.elapsed().as_secs_f64();
        let _ = stop_tx.send(Some(std::time::Instant::now()));
        let _ = done.await;
        // The shipper's connections lived on its runtime, now gone.
        let pool = sqlx::PgPool::connect(&url).await.expect("pool");
        if from_journal {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM callbacks")
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(n, rows as i64);
            let states: i64 = sqlx::query_scalar("SELECT count(*) FROM call_state")
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(states, rows as i64);
        }
        // PostgreSQL's side alone: the same records, decoded already, shipped in batches of 500
        // into a second database (what the journal read and the decoding cost is left out).
        let url2 = fresh_database().await;
        let store2 = Store::new(sqlx::PgPool::connect(&url2).await.expect("pool"));
        let records: Vec<Record> = (0..rows)
            .map(|i| {
                let callid = format!("catchup-{i}");
                let mut r = callback(
                    b"{}",
                    true,
                    &callid,
                    t0 + time::Duration::microseconds(i as i64),
                );
                r.outcome.reply = Some(RawValue::from_string(reply.into()).unwrap());
                r.call_state = Some(CallStateChange::Set {
                    callid,
                    state: state("main"),
                });
                Record::Callback(Box::new(r))
            })
            .collect();
        let started = std::time::Instant::now();
        for batch in records.chunks(500) {
            let refs: Vec<&Record> = batch.iter().collect();
            store2.ship(&refs).await.unwrap();
        }
        let db_secs = started.elapsed().as_secs_f64();
        figures.push(format!(
            "{connections} connection(s): {rows} rows in {secs:.1} s = {:.0} rows/s by the shipper from the journal; \
             {:.0} rows/s from decoded records",
            rows as f64 / secs,
            rows as f64 / db_secs
        ));
    }
    svamlgate::recording::ship::set_connections(1);
    for f in figures {
        println!("catch-up: {f}");
    }
}

/// Migration 0013 on rows stored before it: each row's body is read from `raw_body` (a byte-order
/// mark skipped), `body_json`, `called` and `caller` are set from the stored body, and a row whose
/// `raw_body` jsonb refuses (stored by an early shipper from a re-serialised body) reads as NULL
/// instead of breaking every read.
#[actix_web::test]
async fn migration_0013_keeps_the_bodies_of_rows_stored_before_it() {
    use sqlx::postgres::PgConnectOptions;
    use sqlx::{ConnectOptions, Connection};
    let url = fresh_database().await;
    let name = format!("m_{}", Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let opts: PgConnectOptions = url.parse().unwrap();
    let mut db = opts.database(&name).connect().await.unwrap();
    let migrations: Vec<_> = svamlgate::db::MIGRATOR.iter().collect();
    for m in migrations.iter().filter(|m| m.version < 13) {
        sqlx::raw_sql(m.sql.clone())
            .execute(&mut db)
            .await
            .unwrap_or_else(|e| panic!("migration {}: {e}", m.version));
    }
    sqlx::raw_sql(
        r#"INSERT INTO callbacks (id, reference, received_at, event_type, event_known, raw_body, body, signature, path) VALUES
        ('00000000-0000-0000-0000-000000000001', 'ice', now(), 'ice', true,
         convert_to('{"event":"ice","cli":"46708168731","to":{"type":"number","endpoint":"+15550100"}}', 'UTF8'),
         '{"event":"ice","cli":"46708168731","to":{"type":"number","endpoint":"+15550100"}}', 'verified', '/'),
        ('00000000-0000-0000-0000-000000000002', 'bom', now(), 'ace', true,
         '\xefbbbf7b226576656e74223a22616365227d', '{"event":"ace"}', 'verified', '/'),
        ('00000000-0000-0000-0000-000000000003', 'legacy', now(), 'ice', true,
         convert_to('{"event":"ice","x":1e-400000}', 'UTF8'), '{"event":"ice","x":0}', 'verified', '/'),
        ('00000000-0000-0000-0000-000000000004', 'not-json', now(), '', false,
         '\x00ff', NULL, 'verified', '/')"#,
    )
    .execute(&mut db)
    .await
    .unwrap();
    let m13 = migrations.iter().find(|m| m.version == 13).expect("0013");
    sqlx::raw_sql(m13.sql.clone())
        .execute(&mut db)
        .await
        .unwrap();
    type Migrated = (String, bool, Option<String>, Option<String>, Option<Value>);
    let rows: Vec<Migrated> = sqlx::query_as(
        "SELECT reference, body_json, called, caller, c.body FROM callbacks c ORDER BY id",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            (
                "ice".into(),
                true,
                Some("+15550100".into()),
                Some("46708168731".into()),
                Some(
                    json!({"event": "ice", "cli": "46708168731", "to": {"type": "number", "endpoint": "+15550100"}})
                )
            ),
            (
                "bom".into(),
                true,
                None,
                None,
                Some(json!({"event": "ace"}))
            ),
            ("legacy".into(), false, None, None, None),
            ("not-json".into(), false, None, None, None),
        ]
    );
    let unqualified = sqlx::query("SELECT body FROM callbacks")
        .fetch_all(&mut db)
        .await
        .expect_err("an unqualified body is no column");
    assert!(unqualified.to_string().contains("body"), "{unqualified}");
}

/// A batch large enough to be shipped over two connections (`recording::ship::PARALLEL_AT`) lands as one
/// in one transaction would: a replay in the second half of an original in the first, a call set
/// in the first half and ended in the second, Sinch's report in the second half marking a reply in
/// the first, an error recorded on its own for a callback of the first half; shipped twice.
#[actix_web::test]
async fn a_catch_up_batch_over_two_connections_lands_whole_and_once() {
    use svamlgate::recording::ship::PARALLEL_AT;
    let url = fresh_database().await;
    let pool = sqlx::PgPool::connect(&url).await.expect("pool");
    let store = Store::new(pool.clone());
    let t0 = OffsetDateTime::now_utc() - time::Duration::minutes(5);
    let n = PARALLEL_AT + 50;
    let mut records: Vec<CallbackRecord> = (0..n)
        .map(|i| {
            let callid = format!("two-{i}");
            let mut r = callback(
                br#"{"event":"ice"}"#,
                true,
                &callid,
                t0 + time::Duration::milliseconds(i as i64),
            );
            r.call_state = Some(CallStateChange::Set {
                callid,
                state: state("main"),
            });
            r
        })
        .collect();
    let original = records[0].callback.id;
    let last = n - 1;
    // The last record replays the first, ends the call of the first, and reports Sinch's verdict
    // on the first's reply.
    records[last].duplicate_of = Some(original);
    records[last].callback.callid = Some("two-0".into());
    records[last].call_state = Some(CallStateChange::Ended {
        callid: "two-0".into(),
    });
    records[last].sinch_report = Some(svamlgate::recording::SinchReport {
        kind: "callingerror".into(),
        callid: "two-0".into(),
        error_code: Some(40001),
        message: Some("bad svaml".into()),
        reason: None,
        result: None,
    });
    let own_error = Uuid::now_v7().to_string();
    let mut batch: Vec<Record> = records
        .into_iter()
        .map(|r| Record::Callback(Box::new(r)))
        .collect();
    batch.push(Record::Error(Box::new(error(
        &own_error,
        Some(original),
        false,
    ))));
    let refs: Vec<&Record> = batch.iter().collect();
    store.ship_over(&refs, 2).await.expect("batch");
    store
        .ship_over(&refs, 2)
        .await
        .expect("the same batch again");

    let one = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(one("SELECT count(*) FROM callbacks").await, n as i64);
    assert_eq!(
        one("SELECT count(*) FROM callbacks WHERE duplicate_of IS NOT NULL").await,
        1
    );
    assert_eq!(one("SELECT count(*) FROM call_state").await, n as i64 - 2);
    assert_eq!(
        one("SELECT count(*) FROM call_state WHERE callid = 'two-0'").await,
        0,
        "the call ended in the second half"
    );
    let marked: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM callbacks WHERE rejected_by_sinch IS NOT NULL")
            .fetch_optional(&pool)
            .await
            .unwrap();
    assert_eq!(
        marked,
        Some(original),
        "Sinch's report marks the first reply"
    );
    assert_eq!(
        one("SELECT count(*) FROM errors").await,
        1,
        "the error recorded on its own"
    );
}
