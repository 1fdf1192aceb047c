//! Documents stored once: each distinct SVAML reply (`migrations/0015_reply_stored_once.sql`) and
//! each distinct gate report (`migrations/0019_report_stored_once.sql`) is one row of `replies`
//! or `reports`, keyed by a digest of its text ([`id_of`]); a callback row points at it
//! (`callbacks.reply_id`, `callbacks.validation_id`) and reads it back as `c.reply` or
//! `c.validation`.
//!
//! * The shipper ([`crate::recording::ship`]) [`store`]s the distinct documents of each batch in
//!   the transaction that COPYs the rows pointing at them. A document already there gets a new
//!   row version (`ON CONFLICT DO UPDATE`, the same values): that is what tells [`sweep`] that a
//!   transaction started to point at it.
//! * Redaction ([`crate::retention`]) points a masked row at a masked copy, stored the same way,
//!   and leaves the unmasked document to [`sweep`].
//! * [`sweep`] deletes the documents no callback points at (after redaction or pruning), without
//!   an index on `callbacks` and without a lock: it reads the unreferenced ones with their row
//!   versions (one read of `callbacks`, [`unreferenced`]), then deletes each only if its row
//!   version is still the one it read ([`delete_unchanged`]). A callback committed after that
//!   read points at a document its transaction wrote a new version of, so the document is kept;
//!   a batch still open holds that version's lock, the delete waits for it and then finds the
//!   version changed. A row inserted by hand that points at a document without storing it (in
//!   psql) has no such protection: store the document in the same transaction.

use std::collections::HashSet;

use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The tables of documents stored once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SVAML replies that went out (`replies`, `callbacks.reply_id`).
    Reply,
    /// The gate's reports on the replies decided (`reports`, `callbacks.validation_id`).
    Report,
}

impl Kind {
    /// The table, as counted by retention (`svamlgate_pruned_rows_total{table}`).
    pub fn table(self) -> &'static str {
        match self {
            Kind::Reply => "replies",
            Kind::Report => "reports",
        }
    }

    fn unreferenced(self) -> &'static str {
        match self {
            Kind::Reply => {
                "SELECT d.id, d.xmin::text FROM replies d WHERE NOT EXISTS \
                 (SELECT 1 FROM (SELECT DISTINCT reply_id AS id FROM callbacks WHERE reply_id IS NOT NULL) u WHERE u.id = d.id)"
            }
            Kind::Report => {
                "SELECT d.id, d.xmin::text FROM reports d WHERE NOT EXISTS \
                 (SELECT 1 FROM (SELECT DISTINCT validation_id AS id FROM callbacks WHERE validation_id IS NOT NULL) u WHERE u.id = d.id)"
            }
        }
    }

    fn delete_unchanged(self) -> &'static str {
        match self {
            Kind::Reply => {
                "DELETE FROM replies d USING unnest($1::uuid[], $2::text[]) AS f (id, version) \
                 WHERE d.id = f.id AND d.xmin::text = f.version"
            }
            Kind::Report => {
                "DELETE FROM reports d USING unnest($1::uuid[], $2::text[]) AS f (id, version) \
                 WHERE d.id = f.id AND d.xmin::text = f.version"
            }
        }
    }
}

/// The id of a document: the first 16 bytes of the SHA-256 of its text. The same text gets the
/// same id in every process and release; a collision would take 2^64 distinct documents.
pub fn id_of(text: &str) -> Uuid {
    let digest = Sha256::digest(text.as_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(id)
}

/// The distinct documents of a batch, of one kind, in first-seen order, with their ids (each
/// digest computed once per distinct text).
#[derive(Debug, Clone)]
pub struct Distinct {
    kind: Kind,
    ids: Vec<Uuid>,
    texts: Vec<String>,
}

impl Distinct {
    /// None of `kind`.
    pub fn none(kind: Kind) -> Distinct {
        Distinct::of(kind, [])
    }

    /// The distinct texts among `texts`.
    pub fn of<'a>(kind: Kind, texts: impl IntoIterator<Item = &'a str>) -> Distinct {
        let mut seen = HashSet::new();
        let mut d = Distinct {
            kind,
            ids: Vec::new(),
            texts: Vec::new(),
        };
        for text in texts {
            if seen.insert(text) {
                d.ids.push(id_of(text));
                d.texts.push(text.to_owned());
            }
        }
        d
    }

    /// The documents' ids, in first-seen order.
    pub fn ids(&self) -> &[Uuid] {
        &self.ids
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Stores a batch's distinct `replies` and `reports` in the caller's transaction, in one
/// statement: inserts those not stored yet and writes a new version of the others (which [`sweep`]
/// then keeps). Call it before the rows that point at them, in the same transaction. The new
/// versions stay locked until the transaction ends: a second instance shipping into the same
/// database waits there for the first's commit when their batches share a document, and the
/// documents are taken in the order of their ids, so two such batches never deadlock.
pub async fn store(
    conn: &mut PgConnection,
    replies: &Distinct,
    reports: &Distinct,
) -> Result<(), sqlx::Error> {
    debug_assert!(replies.kind == Kind::Reply && reports.kind == Kind::Report);
    if replies.is_empty() && reports.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "WITH r AS (INSERT INTO replies (id, reply) SELECT id, doc::jsonb FROM unnest($1::uuid[], $2::text[]) AS d (id, doc) \
                    ORDER BY id ON CONFLICT (id) DO UPDATE SET id = EXCLUDED.id) \
         INSERT INTO reports (id, report) SELECT id, doc::jsonb FROM unnest($3::uuid[], $4::text[]) AS d (id, doc) \
         ORDER BY id ON CONFLICT (id) DO UPDATE SET id = EXCLUDED.id",
    )
    .bind(&replies.ids)
    .bind(&replies.texts)
    .bind(&reports.ids)
    .bind(&reports.texts)
    .execute(conn)
    .await
    .map(|_| ())
}

/// The documents no callback points at, each with its row version (`xmin`): one read of
/// `callbacks`, under one snapshot, without a lock.
pub async fn unreferenced(pool: &PgPool, kind: Kind) -> Result<Found, sqlx::Error> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as(kind.unreferenced()).fetch_all(pool).await?;
    let (ids, versions) = rows.into_iter().unzip();
    Ok(Found {
        kind,
        ids,
        versions,
    })
}

/// Documents [`unreferenced`] found, with the row versions it read.
#[derive(Debug)]
pub struct Found {
    kind: Kind,
    ids: Vec<Uuid>,
    versions: Vec<String>,
}

impl Found {
    /// How many.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Documents deleted per statement (each its own short transaction).
const DELETE_BATCH: usize = 10_000;

/// Deletes the documents of `found` whose row version has not changed since; returns how many.
pub async fn delete_unchanged(pool: &PgPool, found: &Found) -> Result<u64, sqlx::Error> {
    let mut deleted = 0;
    for (ids, versions) in found
        .ids
        .chunks(DELETE_BATCH)
        .zip(found.versions.chunks(DELETE_BATCH))
    {
        deleted += sqlx::query(found.kind.delete_unchanged())
            .bind(ids)
            .bind(versions)
            .execute(pool)
            .await?
            .rows_affected();
    }
    Ok(deleted)
}

/// Deletes the documents of `kind` no callback points at; returns how many (see the module
/// documentation).
pub async fn sweep(pool: &PgPool, kind: Kind) -> Result<u64, sqlx::Error> {
    let found = unreferenced(pool, kind).await?;
    delete_unchanged(pool, &found).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_id_is_a_digest_of_the_text_as_sent() {
        let a = id_of(r#"{"action":{"name":"hangup"}}"#);
        assert_eq!(a, id_of(r#"{"action":{"name":"hangup"}}"#));
        assert_ne!(a, id_of(r#"{"action": {"name":"hangup"}}"#));
        // sha256('') starts e3b0c442 98fc1c14 9afbf4c8 996fb924.
        assert_eq!(
            id_of("").to_string(),
            "e3b0c442-98fc-1c14-9afb-f4c8996fb924"
        );
        let d = Distinct::of(Kind::Report, ["x", "x", "y"]);
        assert_eq!(d.ids(), [id_of("x"), id_of("y")]);
    }
}
