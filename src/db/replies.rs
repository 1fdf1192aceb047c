//! Replies stored once (`migrations/0015_reply_stored_once.sql`): each distinct SVAML reply is a
//! row of `replies`, keyed by a digest of its text ([`id_of`]); a callback row points at it
//! (`callbacks.reply_id`) and reads it back as `c.reply`.
//!
//! * The shipper ([`crate::recording::ship`]) [`store`]s the distinct replies of each batch in the
//!   transaction that COPYs the rows pointing at them (`ON CONFLICT DO NOTHING`: a reply stored
//!   by an earlier batch is not written again).
//! * Redaction ([`crate::retention`]) points a masked row at a masked copy, and the unmasked
//!   document is left to [`sweep`].
//! * [`sweep`] deletes the replies no callback points at (after redaction or pruning). It locks
//!   `replies` against inserts first, so a batch in flight (which inserts its replies, or finds
//!   them there, before its rows) either committed before the sweep looks or waits for it and
//!   inserts its replies again.

use std::collections::HashSet;

use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

/// The id of a reply: the first 16 bytes of the SHA-256 of its text, as sent. The same text gets
/// the same id in every process and release; a collision would take 2^64 distinct replies.
pub fn id_of(text: &str) -> Uuid {
    let digest = Sha256::digest(text.as_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(id)
}

/// The distinct replies of a batch, in first-seen order, with their ids (each digest computed
/// once per distinct text).
#[derive(Debug, Default, Clone)]
pub struct Distinct {
    ids: Vec<Uuid>,
    texts: Vec<String>,
}

impl Distinct {
    /// The distinct texts among `texts`.
    pub fn of<'a>(texts: impl IntoIterator<Item = &'a str>) -> Distinct {
        let mut seen = HashSet::new();
        let mut d = Distinct::default();
        for text in texts {
            if seen.insert(text) {
                d.ids.push(id_of(text));
                d.texts.push(text.to_owned());
            }
        }
        d
    }

    /// The replies' ids, in first-seen order.
    pub fn ids(&self) -> &[Uuid] {
        &self.ids
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Stores `replies` (those not stored yet), in the caller's transaction.
pub async fn store(conn: &mut PgConnection, replies: &Distinct) -> Result<(), sqlx::Error> {
    if replies.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO replies (id, reply) SELECT id, reply::jsonb FROM unnest($1::uuid[], $2::text[]) AS r (id, reply) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&replies.ids)
    .bind(&replies.texts)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Deletes the replies no callback points at; returns how many. Takes a lock that makes the
/// shipper's inserts wait until it commits (see the module documentation); each reply is looked
/// up in the index `callbacks_reply`.
pub async fn sweep(pool: &sqlx::PgPool) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE replies IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let n = sqlx::query(
        "DELETE FROM replies r WHERE NOT EXISTS (SELECT 1 FROM callbacks c WHERE c.reply_id = r.id)",
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_id_is_a_digest_of_the_text_as_sent() {
        let a = id_of(r#"{"action":{"name":"hangup"}}"#);
        assert_eq!(a, id_of(r#"{"action":{"name":"hangup"}}"#));
        assert_ne!(a, id_of(r#"{"action": {"name":"hangup"}}"#));
        // sha256('') starts e3b0c442 98fc1c14 9afbf4c8 996fb924.
        assert_eq!(
            id_of("").to_string(),
            "e3b0c442-98fc-1c14-9afb-f4c8996fb924"
        );
        let d = Distinct::of(["x", "x", "y"]);
        assert_eq!(d.ids(), [id_of("x"), id_of("y")]);
    }
}
