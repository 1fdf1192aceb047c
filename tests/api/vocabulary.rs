//! Vocabulary columns go to PostgreSQL and come back as their types: a strict vocabulary refuses
//! text outside it with an error naming it (never a panic), `Stored<T>` keeps text written by
//! another version, and an unknown event keeps its name.

use serde_json::json;
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
