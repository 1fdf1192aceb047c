//! The calls in progress are defined once (migration 0014): the psql view `open_calls` is
//! `open_calls_within(NULL, NULL)`, and the callout cap and retention read the same function
//! with their windows.

use std::time::Duration;

use sqlx::PgPool;
use svamlgate::db::outbound::{open_callids, CallLimits, OutboundStore};

use crate::helpers::{base_config, fresh_database};

type Row = (String, time::OffsetDateTime, String, bool);

/// An accepted callback `age` seconds old.
async fn callback(
    pool: &PgPool,
    event: &str,
    callid: &str,
    age: i64,
    duplicate_of: Option<uuid::Uuid>,
) -> uuid::Uuid {
    let id = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO callbacks (id, reference, received_at, event_type, event_known, callid, raw_body, \
         signature, path, duplicate_of) \
         VALUES ($1, $2, now() - make_interval(secs => $3), $4, true, $5, '\\x'::bytea, 'valid', '/', $6)",
    )
    .bind(id)
    .bind(format!("ref-{id}"))
    .bind(age as f64)
    .bind(event)
    .bind(callid)
    .bind(duplicate_of)
    .execute(pool)
    .await
    .unwrap();
    id
}

/// A callout `age` seconds old.
async fn callout(
    pool: &PgPool,
    reference: &str,
    callid: Option<&str>,
    outcome: &str,
    dice: bool,
    age: i64,
) {
    sqlx::query(
        "INSERT INTO outbound_requests (id, reference, created_at, operation, method, path, callid, \
         dice_expected, local_check, outcome) \
         VALUES ($1, $2, now() - make_interval(secs => $3), 'callout', 'POST', '/calling/v1/callouts', $4, $5, \
         'passed', $6)",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(reference)
    .bind(age as f64)
    .bind(callid)
    .bind(dice)
    .bind(outcome)
    .execute(pool)
    .await
    .unwrap();
}

async fn rows(pool: &PgPool, sql: &'static str) -> Vec<Row> {
    sqlx::query_as(sql).fetch_all(pool).await.unwrap()
}

#[actix_web::test]
async fn open_calls_view_and_function_give_the_same_rows() {
    let pool = PgPool::connect(&fresh_database().await).await.unwrap();
    let args = base_config().sinch_api;
    let limits = CallLimits {
        max_in_progress: args.sinch_max_calls_in_progress,
        max_age: Duration::from_secs(args.sinch_call_max_age_secs),
        untracked: Duration::from_secs(args.sinch_untracked_call_secs),
    };
    let max_age = args.sinch_call_max_age_secs as i64;
    let untracked = args.sinch_untracked_call_secs as i64;
    // Open: an ICE, an ACE (with a retried duplicate ICE), a placed callout with a DICE to
    // come, a callout in flight without a call id, a callout whose DICE will not come.
    callback(&pool, "ice", "in-open", 30, None).await;
    let first = callback(&pool, "ace", "ace-open", 20, None).await;
    callback(&pool, "ace", "ace-open", 19, Some(first)).await;
    callout(&pool, "o-placed", Some("out-open"), "success", true, 10).await;
    callback(&pool, "ice", "out-open", 9, None).await;
    callout(&pool, "o-flight", None, "pending", true, 5).await;
    callout(&pool, "o-nodice", Some("out-nodice"), "success", false, 60).await;
    // Ended: an ICE then a DICE, a callout then a DICE, a refused callout.
    callback(&pool, "ice", "in-ended", 100, None).await;
    callback(&pool, "dice", "in-ended", 50, None).await;
    callout(&pool, "o-ended", Some("out-ended"), "success", true, 100).await;
    callback(&pool, "dice", "out-ended", 40, None).await;
    callout(&pool, "o-refused", None, "refused_locally", true, 5).await;
    // Outside the windows (in the view, which reads all history, not in the cap's count):
    // an ICE older than SINCH_CALL_MAX_AGE_SECS, an untracked callout older than
    // SINCH_UNTRACKED_CALL_SECS (but within SINCH_CALL_MAX_AGE_SECS).
    callback(&pool, "ice", "in-stale", max_age + 60, None).await;
    callout(
        &pool,
        "o-untracked-old",
        Some("out-untracked-old"),
        "unknown",
        true,
        untracked + 60,
    )
    .await;

    let view = rows(
        &pool,
        "SELECT callid, opened_at, source, dice_expected FROM open_calls ORDER BY callid",
    )
    .await;
    let all = rows(
        &pool,
        "SELECT callid, opened_at, source, dice_expected FROM open_calls_within(NULL, NULL) ORDER BY callid",
    )
    .await;
    assert_eq!(view, all, "the view is the function without windows");
    let ids: Vec<&str> = view.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        ids,
        [
            "ace-open",
            "in-open",
            "in-stale",
            "out-nodice",
            "out-open",
            "out-untracked-old",
            "pending:o-flight"
        ]
    );
    let out_open = view.iter().find(|r| r.0 == "out-open").unwrap();
    assert_eq!(
        out_open.2, "callout",
        "a callout and its ICE are one call, counted as the callout"
    );

    // The default windows: the view's rows minus those the windows leave out, as its comment says.
    let windowed: Vec<Row> = sqlx::query_as(
        "SELECT callid, opened_at, source, dice_expected FROM open_calls_within(make_interval(secs => $1), \
         make_interval(secs => $2)) ORDER BY callid",
    )
    .bind(max_age as f64)
    .bind(untracked as f64)
    .fetch_all(&pool)
    .await
    .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let expected: Vec<Row> = view
        .iter()
        .filter(|r| {
            let window = if r.3 { max_age } else { untracked };
            now - r.1 < time::Duration::seconds(window)
        })
        .cloned()
        .collect();
    assert_eq!(windowed, expected);
    let store = OutboundStore::new(pool.clone());
    assert_eq!(
        store.count_in_progress(&limits).await.unwrap(),
        expected.len() as i64
    );
    assert_eq!(expected.len(), 5, "{expected:?}");

    // Retention's list: within SINCH_CALL_MAX_AGE_SECS, whether a DICE is expected or not.
    let mut kept = open_callids(&pool, limits.max_age).await.unwrap();
    kept.sort();
    assert_eq!(
        kept,
        [
            "ace-open",
            "in-open",
            "out-nodice",
            "out-open",
            "out-untracked-old",
            "pending:o-flight"
        ]
    );

    // Retention keeps the records of exactly those calls, a callout without a call id included.
    svamlgate::retention::prune(&pool, time::OffsetDateTime::now_utc(), limits.max_age)
        .await
        .unwrap();
    let left: Vec<String> =
        sqlx::query_scalar("SELECT reference FROM outbound_requests ORDER BY reference")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        left,
        ["o-flight", "o-nodice", "o-placed", "o-untracked-old"]
    );
    let left: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT callid FROM callbacks ORDER BY callid")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(left, ["ace-open", "in-open", "out-open"]);
    pool.close().await;
}
