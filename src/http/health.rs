//! `GET /healthz` (the process is up), `GET /readyz` (the journal can take records; database and
//! shipping state in the details) and
//! `GET /metrics` (Prometheus text format).

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;

/// The answer of `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// The answer of `GET /readyz`.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`; `degraded` while PostgreSQL is away or restarting, or the journal is failing, at or
    /// near its limit (callers are still answered); `unavailable` (503) when the journal is at its
    /// disk limit and PostgreSQL does not take records.
    #[schema(example = "ready")]
    status: &'static str,
    checks: Checks,
    shipping: Shipping,
}

/// What readiness looked at.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Checks {
    /// `ok`, `unavailable` or `timeout` (no answer within one second).
    database: &'static str,
    /// The embedded PostgreSQL cluster: `running` or `restarting`; null when svamlgate uses an
    /// external database (DATABASE_URL).
    embedded_cluster: Option<&'static str>,
    /// The journal: `ok`; `near_limit` (above 90% of its disk limit); `failing` (writes fail: disk
    /// full, I/O error, read-only; records are held in memory and shipped from there); `at_limit`
    /// (appends refused at the disk limit, records held in memory while PostgreSQL takes them);
    /// `over_limit` (at the limit with records PostgreSQL does not take: 503).
    journal: &'static str,
    /// Signature mode and what report mode let through since start.
    signature: crate::verification::SignatureReadiness,
    /// The canary through SVAMLGATE_PUBLIC_URL: its last run (null when it is off or has not run).
    /// A failed or slow run makes the status `degraded`.
    canary: Option<crate::verification::canary_status::CanaryRun>,
    /// What opening the journal cut as unreadable, when anything was (null otherwise): it stays
    /// here until the next start.
    journal_cut: Option<JournalCut>,
}

/// Unreadable journal bytes found at start.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JournalCut {
    /// Records lost (their sequence numbers are in `seqRanges`).
    records: u64,
    /// Bytes cut, all kept in `quarantine`.
    bytes: u64,
    /// Sequence numbers lost, as inclusive `[first, last]` ranges.
    seq_ranges: Vec<[u64; 2]>,
    /// Where the cut bytes are kept.
    quarantine: String,
}

/// How far PostgreSQL is behind the journal.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Shipping {
    /// Records in the journal not yet in PostgreSQL.
    lag_records: u64,
    /// Seconds since the shipper last had nothing left to ship (0 when caught up).
    lag_seconds: f64,
    /// Bytes held in journal segments.
    journal_bytes: u64,
    /// The journal's disk limit (SVAMLGATE_JOURNAL_MAX_BYTES).
    journal_max_bytes: u64,
    /// The shipper's last error, if its last attempt failed.
    last_error: Option<String>,
    /// Records the journal could not take, held in memory (included in `lagRecords`).
    memory_records: u64,
    /// Records dropped since start: journal failing, PostgreSQL away and memory full. Any is an
    /// alert (`svamlgate_records_dropped_total`).
    dropped_records: u64,
    /// The journal's last write error, while it is failing or at its limit.
    journal_error: Option<String>,
}

/// Liveness
///
/// Answers while the process is up; touches nothing else.
#[utoipa::path(
    operation_id = "healthz",
    tag = "service",
    responses(
        (status = 200, description = "Up.", body = Health)
    ),
    security(())
)]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Readiness
///
/// svamlgate answers callbacks whatever its journal and PostgreSQL do, so readiness fails (503) only when the journal is at its disk limit while PostgreSQL does not take records (records then wait in memory, and are dropped, counted, once it is full). PostgreSQL being slow, away or restarting, or the journal failing (`checks.journal` = `failing`: records are held in memory and shipped from there), is reported with `"status": "degraded"`: callers are still answered.
#[utoipa::path(
    operation_id = "readyz",
    tag = "service",
    responses(
        (status = 200, description = "Ready, or degraded (PostgreSQL away, restarting, the journal failing, at or near its limit).", body = Readiness),
        (status = 503, description = "Not ready: the journal is at its disk limit and PostgreSQL does not take records.", body = Readiness)
    ),
    security(())
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let status = &state.recorder.status;
    let database = match tokio::time::timeout(Duration::from_secs(1), state.store.ping()).await {
        Ok(Ok(())) => "ok",
        Ok(Err(_)) => "unavailable",
        Err(_) => "timeout",
    };
    let cluster = state.cluster.as_ref().map(|c| c.state());
    let journal_bytes = state.recorder.journal().bytes();
    let limit = state.config.journal_max_bytes;
    let journal = journal_check(&state.recorder);
    let last_error = status
        .last_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let canary = state.verification.canary.last();
    let canary_failing = canary.as_ref().is_some_and(|c| !c.ok);
    let journal_state = state.recorder.journal().write_state();
    let journal_error = (journal_state != crate::recording::journal::WriteState::Ok)
        .then(|| state.recorder.journal().failures().1)
        .flatten();
    let body = Readiness {
        status: if journal == "over_limit" {
            "unavailable"
        } else if database != "ok" || journal != "ok" || canary_failing {
            "degraded"
        } else {
            "ready"
        },
        checks: Checks {
            database,
            embedded_cluster: cluster,
            journal,
            signature: state.verification.readiness(),
            canary,
            journal_cut: journal_cut(state.recorder.journal()),
        },
        shipping: Shipping {
            lag_records: status.lag_records(),
            lag_seconds: status.lag_seconds(),
            journal_bytes,
            journal_max_bytes: limit,
            last_error,
            memory_records: status.memory.len(),
            dropped_records: status.memory.dropped(),
            journal_error,
        },
    };
    if journal == "over_limit" {
        HttpResponse::ServiceUnavailable().json(body)
    } else {
        HttpResponse::Ok().json(body)
    }
}

/// The journal's readiness check (see [`Checks::journal`]).
pub fn journal_check(recorder: &crate::recording::Recorder) -> &'static str {
    use crate::recording::journal::WriteState;
    use std::sync::atomic::Ordering;
    let journal = recorder.journal();
    let status = &recorder.status;
    let level = crate::recording::journal::level(journal.bytes(), journal.max_bytes());
    let at_limit = journal.write_state() == WriteState::AtLimit || level == "over_limit";
    let stuck = status.lag_records() > 0 && !status.db_ok.load(Ordering::Acquire);
    match journal.write_state() {
        _ if at_limit && stuck => "over_limit",
        WriteState::Failing => "failing",
        _ if at_limit && status.lag_records() > 0 => "at_limit",
        _ if level == "near_limit" && status.lag_records() > 0 => "near_limit",
        _ => "ok",
    }
}

fn journal_cut(journal: &crate::recording::Journal) -> Option<JournalCut> {
    let cuts = journal.cuts();
    if cuts.is_empty() {
        return None;
    }
    Some(JournalCut {
        records: cuts.iter().map(|c| c.records()).sum(),
        bytes: cuts.iter().map(|c| c.bytes()).sum(),
        seq_ranges: cuts
            .iter()
            .filter_map(|c| c.lost)
            .map(|(a, b)| [a, b])
            .collect(),
        quarantine: journal.dir().join("quarantine").display().to_string(),
    })
}

/// Prometheus metrics
///
/// Counters, gauges and histograms in the Prometheus text exposition format (0.0.4).
#[utoipa::path(
    operation_id = "metrics",
    tag = "service",
    responses(
        (status = 200, description = "The metrics.", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8")
    ),
    security(())
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut text = state.metrics.render();
    write_gauges(&mut text, &journal_gauges(&state));
    write_gauges(
        &mut text,
        &[
            (
                "svamlgate_replay_keys",
                "Dedup keys held for replay detection.",
                state.replays.len() as f64,
            ),
            (
                "svamlgate_calls_in_memory",
                "Calls in progress held in memory.",
                state.calls.len() as f64,
            ),
        ],
    );
    text.push_str(&state.verification.canary.gauges());
    if let Some(cluster) = &state.cluster {
        let up = u8::from(cluster.state() == "running");
        let wb = cluster.writeback();
        write_gauges(
            &mut text,
            &[
                (
                    "svamlgate_embedded_cluster_up",
                    "1 while the embedded PostgreSQL cluster runs, 0 while it restarts.",
                    f64::from(up),
                ),
                (
                    "svamlgate_embedded_cluster_restarts",
                    "Restarts of the embedded PostgreSQL cluster since start.",
                    cluster.restarts() as f64,
                ),
                (
                    "svamlgate_embedded_cluster_writeback_passes",
                    "Complete passes over the embedded cluster's files written since the last one, made while the shipper was caught up.",
                    wb.passes.load(Ordering::Relaxed) as f64,
                ),
                (
                    "svamlgate_embedded_cluster_writeback_ranges",
                    "1 MiB ranges of the embedded cluster's files that had dirty pages when svamlgate wrote them out.",
                    wb.ranges_written.load(Ordering::Relaxed) as f64,
                ),
                (
                    "svamlgate_embedded_cluster_writeback_seconds",
                    "Time spent writing those ranges out.",
                    wb.writing_us.load(Ordering::Relaxed) as f64 / 1e6,
                ),
            ],
        );
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}

/// A gauge: its name, its help text and its value.
type Gauge = (&'static str, &'static str, f64);

/// Appends gauges in the Prometheus text format: `# HELP`, `# TYPE` and the value of each.
fn write_gauges(text: &mut String, gauges: &[Gauge]) {
    use std::fmt::Write as _;
    for (name, help, value) in gauges {
        let _ = write!(
            text,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
        );
    }
}

/// The journal's and the shipper's gauges: lag, bytes and limit, records held in memory, write
/// state, records cut at start, spares ready.
fn journal_gauges(state: &AppState) -> [Gauge; 9] {
    let status = &state.recorder.status;
    let journal = state.recorder.journal();
    let write_state = journal.write_state();
    let flag = |w: crate::recording::journal::WriteState| f64::from(u8::from(write_state == w));
    [
        (
            "svamlgate_journal_lag_records",
            "Records in the journal not yet in PostgreSQL.",
            status.lag_records() as f64,
        ),
        (
            "svamlgate_journal_lag_seconds",
            "Seconds since the shipper last had nothing left to ship (0 when caught up).",
            status.lag_seconds(),
        ),
        (
            "svamlgate_journal_bytes",
            "Bytes held in journal segments.",
            journal.bytes() as f64,
        ),
        (
            "svamlgate_journal_spares_ready",
            "Zero-filled segments ready for the journal to write into (the next one and the reserve for bursts).",
            journal.spares_ready() as f64,
        ),
        (
            "svamlgate_journal_max_bytes",
            "The journal's disk limit (SVAMLGATE_JOURNAL_MAX_BYTES).",
            state.config.journal_max_bytes as f64,
        ),
        (
            "svamlgate_journal_memory_records",
            "Records the journal could not take, held in memory for the shipper.",
            status.memory.len() as f64,
        ),
        (
            "svamlgate_journal_failing",
            "1 while journal writes fail (disk full, I/O error, read-only): records are held in memory.",
            flag(crate::recording::journal::WriteState::Failing),
        ),
        (
            "svamlgate_journal_at_limit",
            "1 from when the journal refuses an append at SVAMLGATE_JOURNAL_MAX_BYTES until room is made: records are held in memory.",
            flag(crate::recording::journal::WriteState::AtLimit),
        ),
        (
            "svamlgate_journal_cut_since_start",
            "Records lost to unreadable journal bytes found at this start.",
            journal.cuts().iter().map(|c| c.records()).sum::<u64>() as f64,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_are_written_in_the_prometheus_text_format() {
        let mut text = "before\n".to_owned();
        write_gauges(
            &mut text,
            &[("a_total", "What a is.", 3.0), ("b_seconds", "B.", 0.25)],
        );
        assert_eq!(
            text,
            "before\n# HELP a_total What a is.\n# TYPE a_total gauge\na_total 3\n\
             # HELP b_seconds B.\n# TYPE b_seconds gauge\nb_seconds 0.25\n"
        );
    }
}
