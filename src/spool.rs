//! The spool: records that could not be written to PostgreSQL wait on local disk and are written
//! when the database is back, so nothing that was accepted is lost.
//!
//! One task owns the spool file (`<data dir>/spool/records.jsonl`, one JSON object per line): it
//! appends what the reply path hands it through a channel (never blocking a reply) and, every
//! [`REPLAY_EVERY`], writes the spooled records to the database in order. It stops at the first
//! failure and keeps the rest for the next round. Records are idempotent on replay: callbacks are
//! keyed by id, errors by reference.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::db::store::{CallbackOutcome, NewCallback, Store};
use crate::error::ErrorRecord;
use crate::metrics::Metrics;

/// How often spooled records are written to the database.
pub const REPLAY_EVERY: Duration = Duration::from_secs(2);

/// One spooled record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// A callback that could not be recorded, with its outcome when known.
    Callback {
        /// The callback.
        callback: Box<NewCallback>,
        /// How it was answered.
        outcome: Option<CallbackOutcome>,
    },
    /// The outcome of a callback that was recorded but whose outcome could not be.
    Outcome {
        /// Callback id.
        id: uuid::Uuid,
        /// How it was answered.
        outcome: CallbackOutcome,
    },
    /// An error row (with its refusal).
    Error {
        /// The error.
        error: Box<ErrorRecord>,
    },
}

/// Handle to the spool task; cheap to clone.
#[derive(Clone, Debug)]
pub struct Spool {
    tx: mpsc::UnboundedSender<Entry>,
    metrics: Arc<Metrics>,
}

impl Spool {
    /// Starts the spool task on the current runtime, in `dir` (created if needed). Records left
    /// by an earlier run are written as soon as the database answers.
    pub fn start(dir: &Path, store: Store, metrics: Arc<Metrics>) -> std::io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let file = dir.join("records.jsonl");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(file, rx, store, metrics.clone()));
        Ok(Spool { tx, metrics })
    }

    /// Hands a record to the spool.
    pub fn put(&self, entry: Entry) {
        self.metrics
            .inc("svamlgate_spooled_total", &[("kind", entry.kind())]);
        if self.tx.send(entry).is_err() {
            tracing::error!("spool task is gone; record lost");
        }
    }
}

impl Entry {
    fn kind(&self) -> &'static str {
        match self {
            Entry::Callback { .. } => "callback",
            Entry::Outcome { .. } => "outcome",
            Entry::Error { .. } => "error",
        }
    }

    async fn write_to(&self, store: &Store) -> Result<(), sqlx::Error> {
        match self {
            Entry::Callback { callback, outcome } => {
                store.replay_callback(callback, outcome.as_ref()).await
            }
            Entry::Outcome { id, outcome } => store.finish_callback(*id, outcome).await,
            Entry::Error { error } => store.record_error(error).await,
        }
    }
}

async fn append(file: &Path, entries: &[Entry]) -> std::io::Result<()> {
    let mut text = String::new();
    for e in entries {
        text.push_str(&serde_json::to_string(e).map_err(std::io::Error::other)?);
        text.push('\n');
    }
    let mut f = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .await?;
    f.write_all(text.as_bytes()).await?;
    f.sync_data().await
}

async fn run(
    file: PathBuf,
    mut rx: mpsc::UnboundedReceiver<Entry>,
    store: Store,
    metrics: Arc<Metrics>,
) {
    let mut tick = tokio::time::interval(REPLAY_EVERY);
    loop {
        tokio::select! {
            entry = rx.recv() => {
                let Some(entry) = entry else { return };
                let mut batch = vec![entry];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
                if let Err(e) = append(&file, &batch).await {
                    metrics.add("svamlgate_record_failures_total", &[("kind", "spool")], batch.len() as u64);
                    tracing::error!(error = %e, path = %file.display(), lost = batch.len(), "could not write the spool");
                }
            }
            _ = tick.tick() => replay(&file, &store, &metrics).await,
        }
    }
}

/// Writes spooled records to the database, in order, until one fails; keeps the rest.
async fn replay(file: &Path, store: &Store, metrics: &Metrics) {
    let text = match tokio::fs::read_to_string(file).await {
        Ok(t) if !t.trim().is_empty() => t,
        _ => return,
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut done = 0;
    for line in &lines {
        let entry: Entry = match serde_json::from_str(line) {
            Ok(e) => e,
            Err(e) => {
                // Keep it aside rather than block the spool forever.
                tracing::error!(error = %e, "unreadable spool line moved to records.rejected");
                let _ = append_raw(&file.with_extension("rejected"), line).await;
                done += 1;
                continue;
            }
        };
        match entry.write_to(store).await {
            Ok(()) => {
                metrics.inc("svamlgate_spool_replayed_total", &[("kind", entry.kind())]);
                done += 1;
            }
            Err(e) => {
                tracing::debug!(error = %e, pending = lines.len() - done, "database still unavailable for the spool");
                break;
            }
        }
    }
    if done == 0 {
        return;
    }
    let rest: String = lines[done..].iter().map(|l| format!("{l}\n")).collect();
    let tmp = file.with_extension("tmp");
    let result = async {
        tokio::fs::write(&tmp, rest).await?;
        tokio::fs::rename(&tmp, file).await
    }
    .await;
    match result {
        Ok(()) => tracing::info!(
            written = done,
            pending = lines.len() - done,
            "spooled records written to the database"
        ),
        Err(e) => {
            tracing::error!(error = %e, "could not rewrite the spool; records may be written twice (harmless)")
        }
    }
}

async fn append_raw(file: &Path, line: &str) -> std::io::Result<()> {
    let mut f = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .await?;
    f.write_all(format!("{line}\n").as_bytes()).await
}

/// Serde for bytes as base64 text.
pub mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes bytes as base64.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    /// Reads base64 back into bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// Reads one of the fixed labels svamlgate writes (signature state, reply source) back as the
/// same `&'static str`.
pub fn static_label<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    const LABELS: [&str; 9] = [
        "verified",
        "unverified",
        "flow",
        "upstream",
        "default",
        "fallback",
        "duplicate",
        "none",
        "error",
    ];
    let text = String::deserialize(d)?;
    LABELS
        .iter()
        .find(|l| **l == text)
        .copied()
        .ok_or_else(|| serde::de::Error::custom(format!("unknown label {text}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_through_json() {
        let c = NewCallback {
            id: uuid::Uuid::now_v7(),
            reference: "r".into(),
            received_at: time::OffsetDateTime::now_utc(),
            event_type: "ice".into(),
            event_known: true,
            callid: Some("c".into()),
            application_key: None,
            event_timestamp: None,
            raw_body: vec![0, 159, 146, 150, b'{'],
            body: None,
            parse_warnings: None,
            signature: "verified",
            dedup_key: Some("k".into()),
            remote_addr: None,
            path: "/sinch/callback".into(),
        };
        let o = CallbackOutcome {
            http_status: 200,
            reply_source: "fallback",
            latency_us: 5,
            ..Default::default()
        };
        let e = Entry::Callback {
            callback: Box::new(c.clone()),
            outcome: Some(o),
        };
        let back: Entry = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        match back {
            Entry::Callback { callback, outcome } => {
                assert_eq!(callback.raw_body, c.raw_body);
                assert_eq!(callback.id, c.id);
                assert_eq!(callback.signature, "verified");
                assert_eq!(outcome.unwrap().reply_source, "fallback");
            }
            other => panic!("{other:?}"),
        }
        assert!(serde_json::from_str::<Entry>(r#"{"kind":"outcome","id":"00000000-0000-0000-0000-000000000000","outcome":{"http_status":200,"reply":null,"reply_source":"nonsense","fallback_reason":null,"validation":null,"latency_us":1,"flow_id":null,"flow_version":null,"flow_node":null,"route_id":null}}"#).is_err());
    }
}
