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
            reason: svamlgate::outcome::RefusalReason::SignatureMismatch,
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
    // Each column of a table with its type.
    let types = |table: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (String, String)>(
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1",
            )
            .bind(table)
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .collect::<std::collections::BTreeMap<String, String>>()
        }
    };
    let columns = |table: &'static str| {
        let types = &types;
        async move { types(table).await.into_keys().collect::<BTreeSet<String>>() }
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

    // The shipper COPYs in PostgreSQL's binary format: each column's value must be written in the
    // column's own type (a bigint into an integer column is refused), so each declared type is
    // compared with the table's.
    for (table, cols) in [
        ("callbacks", CALLBACKS.target_types().collect::<Vec<_>>()),
        ("errors", ERRORS.target_types().collect()),
        ("refusals", REFUSALS.target_types().collect()),
        ("call_state", CALL_STATES.target_types().collect()),
    ] {
        let actual = types(table).await;
        for (name, ty) in cols {
            assert_eq!(
                actual.get(name).map(String::as_str),
                Some(ty.sql_name()),
                "{table}.{name}: the type the shipper writes vs the table's"
            );
        }
    }
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
    // The four callbacks sent the same reply: one row of replies (0015), shipped twice.
    assert_eq!(count("SELECT count(*) FROM replies").await, 1);
    assert_eq!(
        count("SELECT count(DISTINCT reply_id) FROM callbacks").await,
        1
    );

    let row = sqlx::query(
        "SELECT raw_body, c.body, body_json, called, caller, callid, application_key, received_at, c.reply, \
         parse_warnings, c.validation, flow_version, gate_verdict, http_status, latency_us FROM callbacks c WHERE id = $1",
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
/// call-state change), shipped by the real shipper from a real journal into a fresh database, in
/// three tunings of the shipper ([`svamlgate::recording::shipper::Tuning`]), alternating, round
/// after round (`CATCHUP_ROUNDS`, 1 by default): `serial` (read, decode, encode, then write, one
/// batch after the other, 500 per transaction: the shipper before the read-ahead), `ahead` (the
/// next batch read while PostgreSQL writes this one, 500 per transaction), `ahead+5000` (the
/// default: the same with 5,000 records per transaction while far behind). Prints rows/s of each round, the median of each tuning, the
/// shipper's wall time per row in each stage (its `svamlgate_ship_stage_microseconds_total`), and
/// PostgreSQL's CPU per row (every process of the test cluster, from /proc). Asserts only that
/// every row arrived once. `CATCHUP_JOURNAL=0` ships the same records, decoded already, straight
/// into PostgreSQL in batches of 500: PostgreSQL's side alone. `CATCHUP_AB=1` compares, instead of
/// the tunings, the default one through the staging tables only (`staging only`: the shipper
/// before the fast path, `ship::set_fast_path(false)`) with the fast path, alternating. A
/// measurement, not a check:
/// `cargo test --test api catch_up -- --ignored --nocapture` (docs/benchmarks.md).
#[actix_web::test]
#[ignore = "a measurement: about a minute per round"]
async fn catch_up_rows_per_second() {
    use svamlgate::recording::shipper::{Tuning, BATCH};
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let rows = env("CATCHUP_ROWS", 150_000);
    let rounds = env("CATCHUP_ROUNDS", 1);
    let from_journal = std::env::var("CATCHUP_JOURNAL").map_or(true, |v| v != "0");
    // CATCHUP_AB=1: the default tuning through the staging tables only (the shipper before the
    // fast path) against the fast path, alternating.
    let ab = std::env::var("CATCHUP_AB").is_ok_and(|v| v == "1");
    let tunings = if ab {
        vec![
            ("staging only", Tuning::DEFAULT, false),
            ("fast path", Tuning::DEFAULT, true),
        ]
    } else {
        vec![
            (
                "serial",
                Tuning {
                    read_ahead: false,
                    catch_up_batch: BATCH,
                },
                true,
            ),
            (
                "ahead",
                Tuning {
                    read_ahead: true,
                    catch_up_batch: BATCH,
                },
                true,
            ),
            ("ahead+5000", Tuning::DEFAULT, true),
        ]
    };
    let mut figures: Vec<(&str, f64)> = Vec::new();
    for round in 0..rounds {
        for &(name, tuning, fast) in &tunings {
            svamlgate::recording::shipper::set_tuning(tuning);
            svamlgate::recording::ship::set_fast_path(fast);
            let line = if from_journal {
                catch_up_from_journal(rows).await
            } else {
                catch_up_from_records(rows).await
            };
            println!("catch-up round {round} {name}: {}", line.0);
            figures.push((name, line.1));
            if !from_journal && !ab {
                break;
            }
        }
    }
    svamlgate::recording::shipper::set_tuning(Tuning::DEFAULT);
    svamlgate::recording::ship::set_fast_path(true);
    for &(name, _, _) in &tunings {
        let mut of: Vec<f64> = figures
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, f)| *f)
            .collect();
        if of.is_empty() {
            continue;
        }
        of.sort_by(f64::total_cmp);
        println!(
            "catch-up median {name}: {:.0} rows/s over {} round(s)",
            of[of.len() / 2],
            of.len()
        );
    }
}

/// The reply of the catch-up's IVR callbacks.
const IVR_REPLY: &str = r##"{"instructions":[],"action":{"name":"runMenu","barge":true,"locale":"en-US","mainMenu":"main","menus":[{"id":"main","mainPrompt":"#tts[Welcome to Example Corp. For sales, press 1. For support, press 2. To enter your PIN, press 3.]","repeatPrompt":"#tts[Sorry, I did not get that. For sales, press 1. For support, press 2.]","repeats":2,"timeoutMills":5000,"options":[{"dtmf":"1","action":"return(sales)"},{"dtmf":"2","action":"return(support)"},{"dtmf":"3","action":"return(pin)"}]}]}}"##;

/// The `i`-th callback of a catch-up: a signed ICE answered with an IVR menu, setting its call's state.
fn ivr_callback(i: usize, t0: OffsetDateTime) -> Record {
    let callid = format!("catchup-{i}");
    let at = t0 + time::Duration::microseconds(i as i64);
    let body = format!(
        r#"{{"event":"ice","callid":"{callid}","timestamp":"2026-12-02T08:00:00Z","version":1,"cli":"46708168731","to":{{"type":"number","endpoint":"+15550100"}},"domain":"pstn","originationType":"PSTN","applicationKey":"bench-key"}}"#
    );
    let mut r = callback(body.as_bytes(), true, &callid, at);
    r.outcome.reply = Some(RawValue::from_string(IVR_REPLY.into()).unwrap());
    r.call_state = Some(CallStateChange::Set {
        callid,
        state: state("main"),
    });
    Record::Callback(Box::new(r))
}

/// CPU time (ticks) of every process of the PostgreSQL cluster behind `pool`, exited backends
/// included (their time is in the postmaster's children's time).
async fn cluster_cpu_ticks(pool: &sqlx::PgPool) -> u64 {
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(pool)
        .await
        .unwrap();
    let stat = |pid: &str| -> Option<Vec<String>> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command, which is in parentheses: state is field 3.
        let rest = text.rsplit_once(')')?.1;
        Some(rest.split_whitespace().map(str::to_owned).collect())
    };
    let field =
        |f: &[String], n: usize| -> u64 { f.get(n - 3).and_then(|v| v.parse().ok()).unwrap_or(0) };
    let postmaster = stat(&backend.to_string()).map_or(String::new(), |f| f[1].clone());
    let Some(pm) = stat(&postmaster) else {
        return 0;
    };
    let mut ticks = field(&pm, 14) + field(&pm, 15) + field(&pm, 16) + field(&pm, 17);
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if let Some(f) = stat(&pid).filter(|f| f[1] == postmaster) {
            ticks += field(&f, 14) + field(&f, 15);
        }
    }
    ticks
}

/// Journals `rows` callbacks, lets the shipper ship them, and says how fast (a line, rows/s).
async fn catch_up_from_journal(rows: usize) -> (String, f64) {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use svamlgate::recording::journal::Journal;
    use svamlgate::recording::ShipStatus;

    let url = fresh_database().await;
    let pool = sqlx::PgPool::connect(&url).await.expect("pool");
    let dir = crate::helpers::base_config().db.data_dir.join("journal");
    std::fs::create_dir_all(&dir).unwrap();
    let (journal, _) = Journal::open(&dir).unwrap();
    let t0 = OffsetDateTime::now_utc();
    let mut seq = 0;
    for chunk in (0..rows).collect::<Vec<_>>().chunks(2000) {
        let appends = chunk.iter().map(|i| {
            let payload = svamlgate::recording::encode(&ivr_callback(*i, t0)).unwrap();
            journal.append(payload)
        });
        for s in futures_util::future::join_all(appends).await {
            seq = seq.max(s.unwrap());
        }
    }
    let status = Arc::new(ShipStatus::new(&journal));
    let metrics = Arc::new(svamlgate::metrics::Metrics::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(None);
    let cpu_before = cluster_cpu_ticks(&pool).await;
    let started = std::time::Instant::now();
    let done = spawn_shipper(journal, &url, &metrics, &status, stop_rx).await;
    loop {
        let moved = status.shipped_moved.notified();
        if status.shipped.load(Ordering::Acquire) >= seq {
            break;
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), moved).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cluster_cpu_ticks(&pool).await.saturating_sub(cpu_before);
    let _ = stop_tx.send(Some(std::time::Instant::now()));
    let _ = done.await;
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
    let stages: Vec<String> = [
        "read", "decode", "encode", "wait", "copy", "insert", "commit",
    ]
    .iter()
    .map(|stage| {
        let us = metrics.counter(
            "svamlgate_ship_stage_microseconds_total",
            &[("stage", stage)],
        );
        format!("{stage} {:.1}", us as f64 / rows as f64)
    })
    .collect();
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let rate = rows as f64 / secs;
    (
        format!(
            "{rows} rows in {secs:.1} s = {rate:.0} rows/s ({:.1} us of wall time per row; \
             PostgreSQL CPU {:.1} us per row); shipper's wall time per row, us: {}; batches read ahead: {}",
            1e6 * secs / rows as f64,
            1e6 * cpu as f64 / hz / rows as f64,
            stages.join(", "),
            metrics.counter("svamlgate_ship_read_ahead_total", &[]),
        ),
        rate,
    )
}

/// PostgreSQL's side alone: `rows` callbacks, decoded already, shipped in batches of 500.
async fn catch_up_from_records(rows: usize) -> (String, f64) {
    let url = fresh_database().await;
    let pool = sqlx::PgPool::connect(&url).await.expect("pool");
    let store = Store::new(pool.clone());
    let t0 = OffsetDateTime::now_utc();
    let records: Vec<Record> = (0..rows).map(|i| ivr_callback(i, t0)).collect();
    let cpu_before = cluster_cpu_ticks(&pool).await;
    let started = std::time::Instant::now();
    for batch in records.chunks(500) {
        let refs: Vec<&Record> = batch.iter().collect();
        store.ship(&refs).await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cluster_cpu_ticks(&pool).await.saturating_sub(cpu_before);
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let rate = rows as f64 / secs;
    (
        format!(
            "PostgreSQL's side alone: {rows} rows in {secs:.1} s = {rate:.0} rows/s; PostgreSQL CPU {:.1} us per row",
            1e6 * cpu as f64 / hz / rows as f64
        ),
        rate,
    )
}

/// The fast path (`COPY` straight into the tables) meets rows already in PostgreSQL: a batch
/// shipped again in part (a crash between a commit and the journal's checkpoint, with other batch
/// bounds after the restart) and in whole. Each time the batch goes through the staging tables,
/// and every row is there exactly once: the callbacks, errors and refusals, and the console's counts
/// (its trigger counts the rows each statement inserted, so a row written twice, or a fast
/// attempt not rolled back, shows there).
#[actix_web::test]
async fn a_batch_already_in_postgresql_goes_through_the_staging_tables_and_lands_once() {
    use svamlgate::recording::ship::staged_again;
    let url = fresh_database().await;
    let pool = sqlx::PgPool::connect(&url).await.expect("pool");
    let store = Store::new(pool.clone());
    let t0 = OffsetDateTime::now_utc() - time::Duration::minutes(5);
    let ice = |i: i64| {
        let callid = format!("again-{i}");
        let body = format!(
            r#"{{"event":"ice","callid":"{callid}","cli":"4670000{i}","to":{{"type":"number","endpoint":"+1555{i}"}}}}"#
        );
        let mut r = callback(
            body.as_bytes(),
            true,
            &callid,
            t0 + time::Duration::milliseconds(i),
        );
        r.errors.push(error(
            &Uuid::now_v7().to_string(),
            Some(r.callback.id),
            false,
        ));
        r.call_state = Some(CallStateChange::Set {
            callid,
            state: state("main"),
        });
        Record::Callback(Box::new(r))
    };
    let refusal = |_| Record::Error(Box::new(error(&Uuid::now_v7().to_string(), None, true)));
    let first: Vec<Record> = (0..4).map(ice).chain((0..2).map(refusal)).collect();
    let mut second: Vec<Record> = (4..8).map(ice).chain((2..3).map(refusal)).collect();

    let counts = || {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (i64, i64, i64, i64, i64)>(
                "SELECT (SELECT count(*) FROM callbacks), (SELECT count(DISTINCT id) FROM callbacks), \
                 (SELECT count(*) FROM errors), (SELECT count(*) FROM refusals), \
                 (SELECT coalesce(sum(callbacks), 0)::bigint FROM console_minutes)",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let refs: Vec<&Record> = first.iter().collect();
    store.ship(&refs).await.expect("first batch");
    assert_eq!(counts().await, (4, 4, 6, 2, 4));

    // Another instance stored a later state of a call whose ICE is in the next batch, all of
    // whose rows are new: the fast path, which COPYs the states of calls a batch opens, meets it
    // (in `call_state` alone); the staging path keeps it.
    sqlx::query(
        "INSERT INTO call_state (callid, node, context, updated_at) \
         VALUES ('again-5', 'other-instance', '{}', now() + interval '1 hour')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let again = staged_again();
    let new_rows: Vec<&Record> = second[..2].iter().collect();
    store.ship(&new_rows).await.expect("a batch of new rows");
    assert!(staged_again() > again, "a call state was there already");
    assert_eq!(counts().await, (6, 6, 8, 2, 6));

    // The next batch begins with the first's last callback and last refusal: in part shipped.
    let again = staged_again();
    let mut overlapping: Vec<&Record> = vec![&first[3], &first[5]];
    overlapping.extend(second[2..].iter());
    store
        .ship(&overlapping)
        .await
        .expect("a batch in part shipped");
    assert!(staged_again() > again, "went through the staging tables");
    assert_eq!(counts().await, (8, 8, 11, 3, 8));

    // The whole of it again, then one record by one (as records held in memory are), and a large
    // batch, twice.
    let again = staged_again();
    store
        .ship(&overlapping)
        .await
        .expect("the same batch again");
    for r in &overlapping {
        store.ship(&[*r]).await.expect("one record again");
    }
    assert!(staged_again() > again + overlapping.len() as u64);
    let more = 200;
    second.extend((8..8 + more).map(ice));
    let all: Vec<&Record> = first.iter().chain(second.iter()).collect();
    store.ship(&all).await.expect("a large batch");
    store.ship(&all).await.expect("and again");
    let n = 8 + more;
    assert_eq!(counts().await, (n, n, n + 3, 3, n));
    let states: i64 = sqlx::query_scalar("SELECT count(*) FROM call_state")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(states, n);
    let node: Option<String> =
        sqlx::query_scalar("SELECT node FROM call_state WHERE callid = 'again-5'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        node.as_deref(),
        Some("other-instance"),
        "the later state kept"
    );
}

/// The fast path writes the columns the staging path has PostgreSQL derive from the body
/// (`body_json`, `called`, `caller`) itself: for bodies of every shape it must write what
/// PostgreSQL reads from the stored bytes, and a body it cannot be sure of (numbers `jsonb` bounds
/// otherwise, escapes beyond ASCII, a duplicated key, a number for a string) goes through the
/// staging table in the same transaction.
#[actix_web::test]
async fn the_fast_path_writes_the_derived_columns_postgresql_would() {
    use svamlgate::recording::ship::body_facts;
    type Case = (
        &'static str,
        &'static str,
        bool,
        bool,
        bool,
        Option<&'static str>,
        Option<&'static str>,
    );
    let url = fresh_database().await;
    let pool = sqlx::PgPool::connect(&url).await.expect("pool");
    let store = Store::new(pool.clone());
    let t0 = OffsetDateTime::now_utc() - time::Duration::minutes(5);
    // (event, body, parsed by svamlgate, svamlgate sure of it, body_json, called, caller)
    let cases: [Case; 16] = [
        ("ice", r#"{"event":"ice","cli":"123","to":{"endpoint":"+1 555"}}"#, true, true, true, Some("+1 555"), Some("123")),
        ("ice", "\u{feff}{\"event\":\"ice\",\"cli\":\"a\\\"b\\\\c\\n\",\"to\":{\"endpoint\":\"\\u0041\"}}", true, true, true, Some("A"), Some("a\"b\\c\n")),
        ("ice", r#"{"event":"ice","cli":null,"to":"+1555"}"#, true, true, true, None, None),
        ("ice", r#"{"event":"ice","to":{"endpoint":null,"type":"number"},"n":[1.5,-0,12]}"#, true, true, true, None, None),
        ("ice", r#"{"event":"ice","to":[{"endpoint":"x"}],"cli":"Grüße"}"#, true, true, true, None, Some("Grüße")),
        ("ace", r#"{"event":"ace","cli":"123","to":{"endpoint":"+1555"}}"#, true, true, true, None, None),
        ("ice", r#"{"event":"ice","cli":"x\u0000"}"#, true, true, false, None, None),
        ("", "not json \t \\ at all", false, true, false, None, None),
        ("ice", r#"{"event":"ice","cli":123,"to":{"endpoint":"+1555"}}"#, true, false, true, Some("+1555"), Some("123")),
        ("ice", r#"{"event":"ice","cli":"1","cli":"2"}"#, true, false, true, None, Some("2")),
        ("ice", r#"{"event":"ice","to":{"endpoint":"1","endpoint":"2"}}"#, true, false, true, Some("2"), None),
        ("ice", r#"{"event":"ice","to":{"endpoint":{"a":1}}}"#, true, false, true, Some(r#"{"a": 1}"#), None),
        ("ice", r#"{"event":"ice","cli":"\u00e9","n":1}"#, true, false, true, None, Some("é")),
        ("ice", r#"{"event":"ice","cli":"\ud83d\ude00"}"#, true, false, true, None, Some("\u{1f600}")),
        ("ice", r#"{"event":"ice","cli":"1e5","n":1e5}"#, true, false, true, None, Some("1e5")),
        ("ice", r#"{"event":"ice","cli":"9e9","n":1.5E-3}"#, true, false, true, None, Some("9e9")),
    ];
    let mut batch = Vec::new();
    for (i, (event, body, parsed, sure, ..)) in cases.iter().enumerate() {
        let mut r = callback(
            body.as_bytes(),
            *parsed,
            &format!("shape-{i}"),
            t0 + time::Duration::milliseconds(i as i64),
        );
        r.callback.event_type = (*event).into();
        assert_eq!(body_facts(&r.callback).is_some(), *sure, "case {i}: {body}");
        batch.push(Record::Callback(Box::new(r)));
    }
    let refs: Vec<&Record> = batch.iter().collect();
    store.ship(&refs).await.expect("batch");
    for (i, (record, case)) in batch.iter().zip(cases.iter()).enumerate() {
        let Record::Callback(r) = record else {
            unreachable!()
        };
        let row: (bool, Option<String>, Option<String>, bool, bool, bool) = sqlx::query_as(
            "SELECT body_json, called, caller, body_json = (c.body IS NOT NULL), \
             called IS NOT DISTINCT FROM CASE WHEN event_type = 'ice' THEN c.body->'to'->>'endpoint' END, \
             caller IS NOT DISTINCT FROM CASE WHEN event_type = 'ice' THEN c.body->>'cli' END \
             FROM callbacks c WHERE id = $1",
        )
        .bind(r.callback.id)
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("case {i}: {e}"));
        let want = (
            case.4,
            case.5.map(str::to_owned),
            case.6.map(str::to_owned),
            true,
            true,
            true,
        );
        assert_eq!(row, want, "case {i}: {}", case.1);
    }
}

/// A new database of its own with the migrations before `version` applied (to store rows as an
/// older release did, then apply `version` with [`apply_migration`]).
async fn migrated_before(version: i64) -> sqlx::PgConnection {
    migrated_before_with_options(version).await.0
}

/// [`migrated_before`], with the options that connect to that database (for a pool).
async fn migrated_before_with_options(
    version: i64,
) -> (sqlx::PgConnection, sqlx::postgres::PgConnectOptions) {
    use sqlx::postgres::PgConnectOptions;
    use sqlx::{ConnectOptions, Connection};
    let url = fresh_database().await;
    let name = format!("m_{}", Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let opts: PgConnectOptions = url.parse::<PgConnectOptions>().unwrap().database(&name);
    let mut db = opts.connect().await.unwrap();
    for m in svamlgate::db::MIGRATOR
        .iter()
        .filter(|m| m.version < version)
    {
        sqlx::raw_sql(m.sql.clone())
            .execute(&mut db)
            .await
            .unwrap_or_else(|e| panic!("migration {}: {e}", m.version));
    }
    (db, opts)
}

/// Applies migration `version` to `db`.
async fn apply_migration(db: &mut sqlx::PgConnection, version: i64) {
    let m = svamlgate::db::MIGRATOR
        .iter()
        .find(|m| m.version == version)
        .unwrap_or_else(|| panic!("migration {version}"));
    sqlx::raw_sql(m.sql.clone())
        .execute(&mut *db)
        .await
        .unwrap_or_else(|e| panic!("migration {version}: {e}"));
}

/// Migration 0013 on rows stored before it: each row's body is read from `raw_body` (a byte-order
/// mark skipped), `body_json`, `called` and `caller` are set from the stored body, and a row whose
/// `raw_body` jsonb refuses (stored by an early shipper from a re-serialised body) reads as NULL
/// instead of breaking every read.
#[actix_web::test]
async fn migration_0013_keeps_the_bodies_of_rows_stored_before_it() {
    let mut db = migrated_before(13).await;
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
    apply_migration(&mut db, 13).await;
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

/// Migration 0015 on rows stored before it: each distinct reply is stored once, every row reads
/// its own reply back as `c.reply` (through the views too), a row without one reads NULL, and an
/// unqualified `reply` fails loudly instead of reading NULL.
#[actix_web::test]
async fn migration_0015_stores_each_reply_once_and_every_row_reads_its_own() {
    let mut db = migrated_before(15).await;
    sqlx::raw_sql(
        r#"INSERT INTO callbacks (id, reference, received_at, event_type, event_known, raw_body, signature, path, callid, reply, validation, rejected_by_sinch, gate_verdict) VALUES
        ('00000000-0000-0000-0000-000000000001', 'a', now(), 'ice', true, '\x7b7d', 'verified', '/', 'c1',
         '{"action":{"name":"hangup"}}', '{"valid":true}', '{"kind":"notify"}', 'passed'),
        ('00000000-0000-0000-0000-000000000002', 'b', now(), 'ice', true, '\x7b7d', 'verified', '/', 'c2',
         '{"action": {"name": "hangup"}}', NULL, NULL, NULL),
        ('00000000-0000-0000-0000-000000000003', 'c', now(), 'ice', true, '\x7b7d', 'verified', '/', 'c3',
         '{"action":{"name":"connectPstn","number":"+46708168731"}}', NULL, NULL, NULL),
        ('00000000-0000-0000-0000-000000000004', 'd', now(), 'dice', true, '\x7b7d', 'verified', '/', 'c1',
         NULL, NULL, NULL, NULL)"#,
    )
    .execute(&mut db)
    .await
    .unwrap();
    apply_migration(&mut db, 15).await;
    let rows: Vec<(String, Option<Value>)> =
        sqlx::query_as("SELECT reference, c.reply FROM callbacks c ORDER BY id")
            .fetch_all(&mut db)
            .await
            .unwrap();
    let hangup = json!({"action": {"name": "hangup"}});
    assert_eq!(
        rows,
        vec![
            ("a".into(), Some(hangup.clone())),
            ("b".into(), Some(hangup.clone())),
            (
                "c".into(),
                Some(json!({"action": {"name": "connectPstn", "number": "+46708168731"}}))
            ),
            ("d".into(), None),
        ]
    );
    // The same document (whitespace aside, as jsonb stored it) is one row.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM replies")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(stored, 2);
    let timeline: Vec<Option<Value>> = sqlx::query_scalar(
        "SELECT reply FROM call_timeline WHERE callid = 'c1' ORDER BY reference",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(timeline, vec![Some(hangup.clone()), None]);
    let missed: Option<Value> = sqlx::query_scalar("SELECT reply FROM gate_misses")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(missed, Some(hangup));
    let unqualified = sqlx::query("SELECT reply FROM callbacks")
        .fetch_all(&mut db)
        .await
        .expect_err("an unqualified reply is no column");
    assert!(unqualified.to_string().contains("reply"), "{unqualified}");
}

/// Migration 0020: a callback's reference is its id. Rows stored before keep their own references,
/// still unique and found through the partial index; a new row (reference = id) adds nothing to
/// that index and is found by its id; the console's lookup finds both kinds by index, and the
/// unique constraint that cost every row an entry is gone.
#[actix_web::test]
async fn migration_0020_finds_old_references_by_index_and_new_ones_by_id() {
    let (mut db, opts) = migrated_before_with_options(20).await;
    sqlx::raw_sql(
        r#"INSERT INTO callbacks (id, reference, received_at, event_type, event_known, raw_body, signature, path, callid) VALUES
        ('00000000-0000-0000-0000-000000000001', 'old-1', now(), 'ice', true, '\x7b7d', 'verified', '/', 'c1'),
        ('00000000-0000-0000-0000-000000000002', 'old-2', now(), 'ace', true, '\x7b7d', 'verified', '/', 'c1')"#,
    )
    .execute(&mut db)
    .await
    .unwrap();
    apply_migration(&mut db, 20).await;
    let new_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO callbacks (id, reference, received_at, event_type, event_known, raw_body, signature, path, callid) \
         VALUES ($1, $1::text, now(), 'ice', true, '\\x7b7d', 'verified', '/', 'c2')",
    )
    .bind(new_id)
    .execute(&mut db)
    .await
    .unwrap();
    let constraint: Option<String> = sqlx::query_scalar(
        "SELECT conname::text FROM pg_constraint WHERE conname = 'callbacks_reference_key'",
    )
    .fetch_optional(&mut db)
    .await
    .unwrap();
    assert_eq!(constraint, None);
    // Only the two older rows are in the index (a new row adds no entry).
    sqlx::raw_sql("VACUUM callbacks")
        .execute(&mut db)
        .await
        .unwrap();
    let indexed: f32 = sqlx::query_scalar(
        "SELECT reltuples FROM pg_class WHERE relname = 'callbacks_reference_own'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(indexed, 2.0);
    // An older reference stays unique.
    let again = sqlx::raw_sql(
        r#"INSERT INTO callbacks (id, reference, received_at, event_type, event_known, raw_body, signature, path)
        VALUES ('00000000-0000-0000-0000-000000000003', 'old-1', now(), 'ice', true, '\x7b7d', 'verified', '/')"#,
    )
    .execute(&mut db)
    .await
    .expect_err("a reference used before");
    assert!(
        again.to_string().contains("callbacks_reference_own"),
        "{again}"
    );
    // The console finds both kinds, each through an index.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::raw_sql("SET enable_seqscan = off")
                    .execute(conn)
                    .await?;
                Ok(())
            })
        })
        .connect_with(opts)
        .await
        .unwrap();
    use svamlgate::console::queries::callback_by_reference;
    let old = callback_by_reference(&pool, "old-2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.0, Uuid::from_u128(2));
    let new = callback_by_reference(&pool, &new_id.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((new.0, new.1.as_deref()), (new_id, Some("c2")));
    let upper = new_id.to_string().to_uppercase();
    assert!(callback_by_reference(&pool, &upper)
        .await
        .unwrap()
        .is_some());
    assert!(callback_by_reference(&pool, "nothing")
        .await
        .unwrap()
        .is_none());
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT id FROM callbacks WHERE id = $1 OR (reference = $2 AND reference <> id::text)",
    )
    .bind(new_id)
    .bind("old-2")
    .fetch_all(&pool)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(
        plan.contains("callbacks_pkey") && plan.contains("callbacks_reference_own"),
        "{plan}"
    );
}

/// Migration 0019 on rows stored before it: each distinct report is stored once, every row reads
/// its own report back as `c.validation` (through `gate_misses` and the console's recount too), a
/// row without one reads NULL, an unqualified `validation` fails loudly, and the sweep's index on
/// `reply_id` is gone.
#[actix_web::test]
async fn migration_0019_stores_each_report_once_and_every_row_reads_its_own() {
    let mut db = migrated_before(19).await;
    sqlx::raw_sql(
        r#"INSERT INTO callbacks (id, reference, received_at, event_type, event_known, raw_body, signature, path, callid, validation, rejected_by_sinch, gate_verdict) VALUES
        ('00000000-0000-0000-0000-000000000001', 'a', now(), 'ice', true, '\x7b7d', 'verified', '/', 'c1',
         '{"valid":true,"violations":[]}', '{"kind":"notify"}', 'passed'),
        ('00000000-0000-0000-0000-000000000002', 'b', now(), 'ice', true, '\x7b7d', 'verified', '/', 'c2',
         '{"valid": true, "violations": []}', NULL, 'passed'),
        ('00000000-0000-0000-0000-000000000003', 'c', now(), 'ice', true, '\x7b7d', 'verified', '/', 'c3',
         '{"valid":false,"violations":[{"code":"SVAML001","severity":"error","source":"s"}]}', NULL, 'rejected'),
        ('00000000-0000-0000-0000-000000000004', 'd', now(), 'dice', true, '\x7b7d', 'verified', '/', 'c1',
         NULL, NULL, NULL)"#,
    )
    .execute(&mut db)
    .await
    .unwrap();
    apply_migration(&mut db, 19).await;
    let rows: Vec<(String, Option<Value>)> =
        sqlx::query_as("SELECT reference, c.validation FROM callbacks c ORDER BY id")
            .fetch_all(&mut db)
            .await
            .unwrap();
    let clean = json!({"valid": true, "violations": []});
    let refused = json!({"valid": false, "violations": [{"code": "SVAML001", "severity": "error", "source": "s"}]});
    assert_eq!(
        rows,
        vec![
            ("a".into(), Some(clean.clone())),
            ("b".into(), Some(clean.clone())),
            ("c".into(), Some(refused)),
            ("d".into(), None),
        ]
    );
    // The same report (whitespace aside, as jsonb stored it) is one row.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM reports")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(stored, 2);
    let missed: Option<Value> = sqlx::query_scalar("SELECT validation FROM gate_misses")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(missed, Some(clean));
    // The console's recount reads the findings through c.validation.
    let counted: i64 = sqlx::query_scalar("SELECT console_count_again('-infinity')")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(counted, 4);
    let findings: Vec<(String, i64)> =
        sqlx::query_as("SELECT code, findings FROM console_rule_minutes")
            .fetch_all(&mut db)
            .await
            .unwrap();
    assert_eq!(findings, vec![("SVAML001".to_owned(), 1)]);
    let unqualified = sqlx::query("SELECT validation FROM callbacks")
        .fetch_all(&mut db)
        .await
        .expect_err("an unqualified validation is no column");
    assert!(
        unqualified.to_string().contains("validation"),
        "{unqualified}"
    );
    let index: Option<String> = sqlx::query_scalar("SELECT to_regclass('callbacks_reply')::text")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(index, None);
}

/// Migration 0017 on rows stored before it: the time indexes are built again in ascending order
/// under their names, the rows are still found newest first, and the reads that want the newest
/// first (the console's search by number, the latest callbacks) scan the indexes backwards
/// instead of sorting.
#[actix_web::test]
async fn migration_0017_builds_the_time_indexes_ascending_and_newest_first_reads_use_them() {
    let mut db = migrated_before(17).await;
    sqlx::raw_sql(
        r#"INSERT INTO callbacks (id, reference, received_at, event_type, event_known, raw_body, signature, path, callid, called, caller) VALUES
        ('00000000-0000-0000-0000-000000000001', 'a', now() - interval '2 minutes', 'ice', true, '\x7b7d', 'verified', '/', 'c1', '+15550100', '+46708168731'),
        ('00000000-0000-0000-0000-000000000002', 'b', now() - interval '1 minute', 'ice', true, '\x7b7d', 'verified', '/', 'c2', '+15550100', '+46708168731'),
        ('00000000-0000-0000-0000-000000000003', 'c', now(), 'dice', true, '\x7b7d', 'verified', '/', 'c1', NULL, NULL)"#,
    )
    .execute(&mut db)
    .await
    .unwrap();
    apply_migration(&mut db, 17).await;
    let defs: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index \
         WHERE indrelid = 'callbacks'::regclass AND indexrelid::regclass::text = ANY($1) ORDER BY 1",
    )
    .bind(["callbacks_ice_called", "callbacks_ice_cli", "callbacks_received"])
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(defs.len(), 3, "{defs:?}");
    for (name, def) in &defs {
        assert!(!def.contains("DESC"), "{name}: {def}");
    }
    // The planner would read three rows without an index: make it show what it does with one.
    sqlx::raw_sql("SET enable_seqscan = off; SET enable_bitmapscan = off")
        .execute(&mut db)
        .await
        .unwrap();
    for (sql, index, newest_first) in [
        (
            "SELECT reference FROM callbacks WHERE event_type = 'ice' AND called = '+15550100' ORDER BY received_at DESC LIMIT 20",
            "callbacks_ice_called",
            &["b", "a"][..],
        ),
        (
            "SELECT reference FROM callbacks WHERE event_type = 'ice' AND caller = '+46708168731' ORDER BY received_at DESC LIMIT 20",
            "callbacks_ice_cli",
            &["b", "a"],
        ),
        (
            "SELECT reference FROM callbacks ORDER BY received_at DESC LIMIT 20",
            "callbacks_received",
            &["c", "b", "a"],
        ),
    ] {
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
            .fetch_all(&mut db)
            .await
            .unwrap();
        let plan = plan.join("\n");
        assert!(
            plan.contains(&format!("Index Scan Backward using {index}")) && !plan.contains("Sort"),
            "{sql}:\n{plan}"
        );
        let found: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut db)
            .await
            .unwrap();
        assert_eq!(found, newest_first, "{sql}");
    }
}

/// A catch-up's batch lands whole and once when what it holds refers to itself: a replay at its
/// end of the original at its start, a call set at the start and ended at the end, Sinch's report
/// at the end marking the first reply, an error recorded on its own for the first callback;
/// shipped twice.
#[actix_web::test]
async fn a_catch_up_batch_that_refers_to_itself_lands_whole_and_once() {
    let url = fresh_database().await;
    let pool = sqlx::PgPool::connect(&url).await.expect("pool");
    let store = Store::new(pool.clone());
    let t0 = OffsetDateTime::now_utc() - time::Duration::minutes(5);
    let n = 250;
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
    store.ship(&refs).await.expect("batch");
    store.ship(&refs).await.expect("the same batch again");

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
        "the call ended at the batch's end"
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

/// Waits (at most two minutes: a loaded test machine) until `done` holds, woken by every move of the shipper (and by its
/// failures).
async fn wait_for_shipper(
    status: &svamlgate::recording::ShipStatus,
    what: &str,
    done: impl Fn() -> bool,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let moved = status.shipped_moved.notified();
        if done() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), moved).await;
    }
}

/// The read-ahead never moves the journal's checkpoint past a batch that did not commit: while a
/// batch fails (PostgreSQL says "insufficient resources" for one of its rows, so the whole batch
/// is retried) and the next one is already read and encoded, the checkpoint stays at the last
/// committed batch and PostgreSQL holds exactly the rows up to it. Once the failure clears, every
/// record arrives exactly once; a record PostgreSQL refuses on its own (a constraint) in a later
/// batch is set aside and the others of its batch go in.
#[actix_web::test]
async fn a_failing_batch_holds_the_checkpoint_while_the_next_waits_read_ahead() {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use svamlgate::recording::journal::Journal;
    use svamlgate::recording::shipper::BATCH;
    use svamlgate::recording::ShipStatus;

    let url = fresh_database().await;
    let pool = sqlx::PgPool::connect(&url).await.expect("pool");
    sqlx::raw_sql(
        "CREATE TABLE ship_gate (fail boolean NOT NULL); INSERT INTO ship_gate VALUES (true); \
         CREATE FUNCTION ship_gate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF NEW.reference = 'transient' AND (SELECT fail FROM ship_gate) THEN \
             RAISE EXCEPTION 'held back' USING ERRCODE = '53000'; END IF; \
           IF NEW.reference = 'refused' THEN \
             RAISE EXCEPTION 'never' USING ERRCODE = '23514'; END IF; \
           RETURN NEW; END $$; \
         CREATE TRIGGER ship_gate BEFORE INSERT ON callbacks FOR EACH ROW EXECUTE FUNCTION ship_gate();",
    )
    .execute(&pool)
    .await
    .unwrap();
    let dir = crate::helpers::base_config().db.data_dir.join("journal");
    std::fs::create_dir_all(&dir).unwrap();
    let (journal, _) = Journal::open(&dir).unwrap();
    let t0 = OffsetDateTime::now_utc();
    let n = 2 * BATCH + 20;
    // The second batch holds the transient failure, the third (20 records, shipped one by one
    // once refused) the refused record.
    let (transient, refused) = (BATCH + BATCH / 2, 2 * BATCH + 10);
    let mut seqs = Vec::new();
    for i in 0..n {
        let mut r = ivr_callback(i, t0);
        if let Record::Callback(c) = &mut r {
            if i == transient {
                c.callback.reference = "transient".into();
            } else if i == refused {
                c.callback.reference = "refused".into();
            }
        }
        let payload = svamlgate::recording::encode(&r).unwrap();
        seqs.push(journal.append(payload).await.unwrap());
    }
    let status = Arc::new(ShipStatus::new(&journal));
    let metrics = Arc::new(svamlgate::metrics::Metrics::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(None);
    let done = spawn_shipper(journal, &url, &metrics, &status, stop_rx).await;
    wait_for_shipper(&status, "two failures of the second batch", || {
        metrics.counter("svamlgate_ship_failures_total", &[]) >= 2
    })
    .await;
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM callbacks")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let first_batch_end = seqs[BATCH - 1];
    assert_eq!(
        status.shipped.load(Ordering::Acquire),
        first_batch_end,
        "the checkpoint stays after the last committed batch"
    );
    // The first batch's commit was deferred: its checkpoint is written once PostgreSQL reports
    // it flushed (the shipper asks while the second batch fails).
    let written = || dir.join("shipped").exists();
    wait_for_shipper(&status, "the first batch's checkpoint", written).await;
    let checkpoint: u64 = std::fs::read_to_string(dir.join("shipped"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(checkpoint, first_batch_end);
    assert_eq!(count().await, BATCH as i64);
    assert!(
        metrics.counter("svamlgate_ship_read_ahead_total", &[]) >= 2,
        "the third batch was read while the second was being written"
    );

    sqlx::query("UPDATE ship_gate SET fail = false")
        .execute(&pool)
        .await
        .unwrap();
    let last = *seqs.last().unwrap();
    wait_for_shipper(&status, "everything shipped", || {
        status.shipped.load(Ordering::Acquire) >= last
    })
    .await;
    let _ = stop_tx.send(Some(std::time::Instant::now()));
    let _ = done.await;
    assert_eq!(
        count().await,
        n as i64 - 1,
        "every record once, but the refused one"
    );
    let distinct: i64 = sqlx::query_scalar("SELECT count(DISTINCT id) FROM callbacks")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(distinct, n as i64 - 1);
    assert!(
        dir.join("unshippable")
            .join(format!("{:020}.json", seqs[refused]))
            .exists(),
        "the refused record is set aside"
    );
    assert_eq!(
        metrics.counter("svamlgate_shipped_records_total", &[]),
        n as u64,
        "each batch counted once (the refused record with its batch)"
    );
}

/// The crash check of deferred commits (`SVAMLGATE_SHIP_COMMIT=deferred`): a deferred batch says
/// whether the shipper's mark was in the unlogged `ship_marks` before the batch wrote it. It is
/// not before the first batch, it is for the next, and it is not again once the table was emptied
/// as crash recovery empties it; a batch committed after a crash cannot hide the crash by writing
/// the mark again.
#[actix_web::test]
async fn a_deferred_batch_says_whether_the_mark_survived_since_the_last() {
    use svamlgate::recording::ship::{Batch, Commit, Steps};
    let url = fresh_database().await;
    let pool = sqlx::PgPool::connect(&url).await.expect("pool");
    let store = Store::new(pool.clone());
    let mark = Commit::Deferred(Uuid::new_v4());
    let t0 = OffsetDateTime::now_utc();
    let ship = |from: usize| {
        let store = store.clone();
        async move {
            let batch = Batch::new((from..from + 3).map(|i| ivr_callback(i, t0)).collect());
            store
                .ship_batch(&batch, &mut Steps::default(), mark)
                .await
                .expect("a deferred batch")
                .expect("its WAL positions")
        }
    };
    let first = ship(0).await;
    assert!(!first.intact, "no mark before the first deferred batch");
    let second = ship(3).await;
    assert!(second.intact, "the mark the first wrote");
    assert!(second.lsn >= first.lsn);
    sqlx::query("TRUNCATE ship_marks")
        .execute(&pool)
        .await
        .unwrap();
    assert!(!ship(6).await.intact, "emptied, as crash recovery does");
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM callbacks")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(written, 9);
    let flushed = Commit::Flushed;
    let none = store
        .ship_batch(
            &Batch::new((9..12).map(|i| ivr_callback(i, t0)).collect()),
            &mut Steps::default(),
            flushed,
        )
        .await
        .unwrap();
    assert_eq!(none, None, "a flushed batch is durable when it returns");
}

/// Commits that do not wait for PostgreSQL's disk (`SVAMLGATE_SHIP_COMMIT=deferred`) and that a
/// crash loses are shipped again. The embedded cluster's WAL writer is stopped (SIGSTOP), so full
/// batches are committed (visible) but never flushed: the journal's checkpoint stays before them.
/// Then the WAL writer is killed with SIGKILL: the postmaster reinitialises (its start time does
/// not change) and what the WAL buffers held is lost. The shipper's mark in the unlogged
/// `ship_marks` is gone with the crash, so it ships again from the checkpoint, and every record
/// lands exactly once.
#[actix_web::test]
async fn deferred_commits_a_postgres_crash_loses_are_shipped_again_from_the_checkpoint() {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use svamlgate::recording::journal::Journal;
    use svamlgate::recording::shipper::BATCH;
    use svamlgate::recording::ShipStatus;

    let dir = crate::helpers::base_config().db.data_dir;
    std::fs::create_dir_all(&dir).unwrap();
    let cluster = svamlgate::db::cluster::Cluster::start_persistent(&dir, None)
        .await
        .expect("an embedded cluster of its own");
    let url = cluster.url().to_owned();
    let pool = sqlx::PgPool::connect(&url).await.expect("pool");
    // The embedded cluster writes a backend's evicted buffers out as it goes (docs/benchmarks.md,
    // session 11), rather than leaving them for a checkpoint or crash recovery to flush at once.
    // Nor does it write 16 MB of zeros into each new WAL segment before its WAL (session 14).
    for (setting, want) in [("backend_flush_after", "256kB"), ("wal_init_zero", "off")] {
        let value: String = sqlx::query_scalar("SELECT current_setting($1)")
            .bind(setting)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(value, want, "{setting}");
    }
    // Nothing else flushes the WAL meanwhile (an autovacuum's commit would).
    for sql in [
        "ALTER SYSTEM SET autovacuum = off",
        "SELECT pg_reload_conf()",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    let walwriter: i32 =
        sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'")
            .fetch_one(&pool)
            .await
            .unwrap();
    // SAFETY: plain kill(2)s of a server process this test started.
    unsafe { libc::kill(walwriter, libc::SIGSTOP) };
    let jdir = dir.join("journal");
    std::fs::create_dir_all(&jdir).unwrap();
    let (journal, _) = Journal::open(&jdir).unwrap();
    // Three full batches, journaled before the shipper starts: each is deferred.
    let t0 = OffsetDateTime::now_utc();
    let total = 3 * BATCH;
    let mut last = 0;
    for i in 0..total {
        let payload = svamlgate::recording::encode(&ivr_callback(i, t0)).unwrap();
        last = journal.append(payload).await.unwrap();
    }
    let status = Arc::new(ShipStatus::new(&journal));
    let metrics = Arc::new(svamlgate::metrics::Metrics::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(None);
    let done = spawn_shipper(journal, &url, &metrics, &status, stop_rx).await;
    wait_for_shipper(&status, "every batch committed", || {
        status.shipped.load(Ordering::Acquire) >= last
    })
    .await;
    let checkpoint = || -> u64 {
        std::fs::read_to_string(jdir.join("shipped"))
            .map(|s| s.trim().parse().unwrap())
            .unwrap_or(0)
    };
    // Visible, not yet durable: the journal keeps them.
    let count = || async {
        sqlx::query_as::<_, (i64, i64)>("SELECT count(*), count(DISTINCT id) FROM callbacks")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert_eq!(count().await.0, total as i64);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before_crash = checkpoint();
    assert!(
        before_crash < last,
        "the checkpoint waits for PostgreSQL's flush: {before_crash} of {last}"
    );
    unsafe { libc::kill(walwriter, libc::SIGKILL) };
    wait_for_shipper(&status, "shipped again after the crash", || {
        metrics.counter("svamlgate_ship_rewinds_total", &[]) >= 1
            && status.shipped.load(Ordering::Acquire) >= last
    })
    .await;
    wait_for_shipper(&status, "the checkpoint at the end", || {
        checkpoint() >= last
    })
    .await;
    let (rows, distinct) = count().await;
    eprintln!(
        "deferred commits, WAL writer SIGKILLed: {total} records, checkpoint at {before_crash} of {last} at the crash, \
         {} rewind(s), {rows} rows after ({} batches staged again in this process)",
        metrics.counter("svamlgate_ship_rewinds_total", &[]),
        svamlgate::recording::ship::staged_again()
    );
    assert_eq!((rows, distinct), (total as i64, total as i64));
    let _ = stop_tx.send(Some(std::time::Instant::now()));
    let _ = done.await;
    pool.close().await;
    drop(cluster);
}

/// Starts the real shipper over `journal` with its own pool (its connections live on its own
/// runtime), no pacing, nothing deleted for age or size.
async fn spawn_shipper(
    journal: svamlgate::recording::Journal,
    url: &str,
    metrics: &std::sync::Arc<svamlgate::metrics::Metrics>,
    status: &std::sync::Arc<svamlgate::recording::ShipStatus>,
    stop_rx: tokio::sync::watch::Receiver<Option<std::time::Instant>>,
) -> tokio::sync::oneshot::Receiver<()> {
    let shipper_pool = sqlx::PgPool::connect(url).await.expect("pool");
    svamlgate::recording::shipper::spawn(
        journal,
        Store::new(shipper_pool),
        metrics.clone(),
        status.clone(),
        svamlgate::recording::shipper::ShipperConfig {
            retention: std::time::Duration::from_secs(3600),
            disk_limit_bytes: u64::MAX,
            defer_max: std::time::Duration::ZERO,
            commit: svamlgate::recording::ship::Commit::Deferred(Uuid::new_v4()),
        },
        stop_rx,
    )
    .expect("the shipper's thread starts")
}

/// How many groups of the console's counts differ from what the trigger of migration 0012 (and
/// its backfill query) computes from the rows in `callbacks`, both ways: 0 when the shipper's
/// counts are exactly the rows'.
async fn console_counts_off_by(pool: &sqlx::PgPool) -> (i64, i64) {
    let rows_minutes = "SELECT date_trunc('minute', received_at), event_type, coalesce(reply_source, ''), \
         coalesce(fallback_reason, ''), coalesce(gate_verdict, ''), count(*)::bigint FROM callbacks GROUP BY 1, 2, 3, 4, 5";
    let counted_minutes = "SELECT minute, event_type, reply_source, fallback_reason, gate_verdict, callbacks FROM console_minutes";
    let rows_rules = "SELECT date_trunc('minute', c.received_at), coalesce(v->>'code', ''), coalesce(v->>'severity', ''), \
         coalesce(v->>'source', ''), coalesce(c.gate_verdict, ''), count(*)::bigint \
         FROM callbacks c, jsonb_array_elements(c.validation->'violations') v \
         WHERE jsonb_typeof(c.validation->'violations') = 'array' GROUP BY 1, 2, 3, 4, 5";
    let counted_rules =
        "SELECT minute, code, severity, source, gate_verdict, findings FROM console_rule_minutes";
    let off = |a: &str, b: &str| {
        format!("SELECT (SELECT count(*) FROM ({a} EXCEPT {b}) d) + (SELECT count(*) FROM ({b} EXCEPT {a}) d)")
    };
    let minutes: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(off(rows_minutes, counted_minutes)))
        .fetch_one(pool)
        .await
        .unwrap();
    let rules: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(off(rows_rules, counted_rules)))
        .fetch_one(pool)
        .await
        .unwrap();
    (minutes, rules)
}

/// The console's counts (`console_minutes`, `console_rule_minutes`), added by the shipper in each
/// batch's transaction since migration 0018, are exactly what the trigger they replaced computed
/// from the rows: over minutes, event types, reply sources, fallback reasons, gate verdicts, and
/// findings with odd `violations` (a number for a code, a null source, an element that is not an
/// object, a report whose `violations` is not an array); for the fast path, a body the fast path
/// is not sure of (the staging table, on the fast path), a batch shipped again in whole and in
/// part (the staging path: only the rows inserted count), and one record at a time.
#[actix_web::test]
async fn the_console_counts_are_those_of_the_rows_inserted() {
    use svamlgate::outcome::FallbackReason;
    let url = fresh_database().await;
    let pool = sqlx::PgPool::connect(&url).await.expect("pool");
    let store = Store::new(pool.clone());
    let t0 = time::macros::datetime!(2026-03-04 05:06:59.900 UTC);
    let reports = [
        r#"{"valid":true,"violations":[]}"#,
        r#"{"valid":false,"violations":[{"code":"SVAML001","severity":"error","source":"sinch-sdk-java"},{"code":"schema:required","severity":"error","source":"svaml.json"}]}"#,
        r#"{"valid":true,"violations":[{"code":7,"severity":"warning","source":null},"not an object",{"severity":"warning"}]}"#,
        r#"{"valid":true,"violations":{"code":"not an array"}}"#,
    ];
    let records: Vec<Record> = (0..40)
        .map(|i: i64| {
            // Two minutes (t0 is 100 ms before a minute ends).
            let at = t0 + time::Duration::milliseconds(i * 10);
            let body = if i % 7 == 0 {
                // Not sure for the fast path: a non-ASCII escape.
                r#"{"event":"ice","cli":"caf\u00e9"}"#.to_string()
            } else {
                r#"{"event":"ice"}"#.to_string()
            };
            let mut r = callback(body.as_bytes(), true, &format!("counts-{i}"), at);
            r.callback.event_type = ["ice", "ace", "pie", "dice"][(i % 4) as usize].into();
            r.outcome.reply_source = [
                ReplySource::Flow,
                ReplySource::Fallback,
                ReplySource::Duplicate,
            ][(i % 3) as usize];
            r.outcome.fallback_reason = (i % 5 == 1).then_some(FallbackReason::Deadline);
            r.outcome.gate_verdict =
                [Some(GateVerdict::Passed), Some(GateVerdict::Rejected), None][(i % 3) as usize];
            r.outcome.validation = (i % 6 != 5)
                .then(|| RawValue::from_string(reports[(i % 4) as usize].into()).unwrap());
            Record::Callback(Box::new(r))
        })
        .collect();
    let refs: Vec<&Record> = records.iter().collect();

    store.ship(&refs[..25]).await.expect("first batch");
    assert_eq!(console_counts_off_by(&pool).await, (0, 0));
    let (groups, findings): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM console_minutes), (SELECT coalesce(sum(findings), 0)::bigint FROM console_rule_minutes)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        groups > 10 && findings > 10,
        "{groups} groups, {findings} findings"
    );

    // Again in whole, then in part with new rows, then one by one: only new rows count.
    store.ship(&refs[..25]).await.expect("the same batch again");
    store.ship(&refs[20..35]).await.expect("in part again");
    for r in &refs[30..] {
        store.ship(&[*r]).await.expect("one record");
    }
    assert_eq!(console_counts_off_by(&pool).await, (0, 0));
    let total: i64 = sqlx::query_scalar("SELECT sum(callbacks)::bigint FROM console_minutes")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(total, 40);

    // A callback inserted by hand in the second minute is not counted until
    // console_count_again counts that minute again (the first minute's groups left as they are).
    sqlx::query(
        "WITH r AS (INSERT INTO reports (id, report) VALUES (gen_random_uuid(), \
         '{\"violations\":[{\"code\":\"SVAML001\",\"severity\":\"error\",\"source\":\"psql\"}]}') RETURNING id) \
         INSERT INTO callbacks (id, reference, received_at, event_type, event_known, raw_body, signature, path, validation_id, gate_verdict) \
         SELECT gen_random_uuid(), 'by-hand', $1, 'ice', true, '\\x7b7d', 'verified', '/', r.id, 'observed' FROM r",
    )
    .bind(t0 + time::Duration::seconds(1))
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(
        console_counts_off_by(&pool).await,
        (1, 1),
        "its group and its finding's group, not counted"
    );
    let counted: i64 = sqlx::query_scalar("SELECT console_count_again($1)")
        .bind(t0 + time::Duration::seconds(1))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(console_counts_off_by(&pool).await, (0, 0));
    let second_minute: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM callbacks WHERE received_at >= date_trunc('minute', $1::timestamptz)",
    )
    .bind(t0 + time::Duration::seconds(1))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(counted, second_minute);
}
