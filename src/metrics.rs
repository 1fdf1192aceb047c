//! Prometheus metrics, rendered in the text exposition format at `GET /metrics`.
//!
//! A deliberately small registry (counters and fixed-bucket histograms keyed by a bounded label set):
//! labels are only ever route patterns, event types, outcomes, sources and rule codes — never call ids
//! or phone numbers, so cardinality stays bounded.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

/// Latency buckets in seconds (0.1 ms … 5 s).
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Series are found by a hash of name and label pairs, so an update allocates nothing once its
/// series exists (the reply path updates several per callback).
#[derive(Default)]
struct Inner {
    counters: Series<u64>,
    histograms: Series<Histogram>,
}

fn series_key(name: &str, pairs: &[(&'static str, &str)]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    for (k, v) in pairs {
        k.hash(&mut h);
        v.hash(&mut h);
    }
    h.finish()
}

fn same(name: &str, labels: &Labels, other: &str, pairs: &[(&'static str, &str)]) -> bool {
    name == other
        && labels.len() == pairs.len()
        && labels
            .iter()
            .zip(pairs)
            .all(|((k1, v1), (k2, v2))| k1 == k2 && v1 == v2)
}

/// The registry. Cheap to share (`Arc<Metrics>`); every update takes one short lock.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

const HELP: &[(&str, &str, &str)] = &[
    (
        "svamlgate_http_requests_total",
        "counter",
        "HTTP requests by route pattern, method and status.",
    ),
    (
        "svamlgate_http_request_duration_seconds",
        "histogram",
        "HTTP request handling time by route pattern.",
    ),
    (
        "svamlgate_callbacks_total",
        "counter",
        "Callbacks by event type and outcome.",
    ),
    (
        "svamlgate_reply_duration_seconds",
        "histogram",
        "Time to a callback reply by event type and reply source.",
    ),
    (
        "svamlgate_gate_replies_total",
        "counter",
        "Replies checked by the gate by event type and verdict (passed, rejected).",
    ),
    (
        "svamlgate_gate_violations_total",
        "counter",
        "Violations found in rejected replies by event type and rule code.",
    ),
    (
        "svamlgate_fallbacks_total",
        "counter",
        "Fallback replies sent by event type and reason.",
    ),
    (
        "svamlgate_signature_refusals_total",
        "counter",
        "Callbacks refused by signature checks, by reason.",
    ),
    (
        "svamlgate_duplicates_total",
        "counter",
        "Replayed callbacks answered from the stored reply.",
    ),
    (
        "svamlgate_upstream_requests_total",
        "counter",
        "Proxy-mode requests to customer apps by outcome.",
    ),
    (
        "svamlgate_upstream_duration_seconds",
        "histogram",
        "Time customer apps took to answer (or fail), by outcome.",
    ),
    (
        "svamlgate_gate_warnings_total",
        "counter",
        "Warnings on replies (they go out), by event and rule.",
    ),
    (
        "svamlgate_sinch_rejected_replies_total",
        "counter",
        "Replies Sinch reported it could not use (Notify callingerror 40001, DICE CALLBACKERROR), by the rejected reply's event and source.",
    ),
    (
        "svamlgate_record_failures_total",
        "counter",
        "Records that could not be made durable in the journal before the reply went out, by kind (journal: write failed; journal_limit: at SVAMLGATE_JOURNAL_MAX_BYTES; journal_slow: not durable within the budget; encode). Such records are held in memory and shipped from there.",
    ),
    (
        "svamlgate_journal_append_seconds",
        "histogram",
        "Time from handing a record to the journal until it was durable (group commit included).",
    ),
    (
        "svamlgate_journal_cut_bytes_total",
        "counter",
        "Bytes of torn or corrupt records cut from the journal at start (kept in journal/quarantine/).",
    ),
    (
        "svamlgate_journal_unreadable_records_total",
        "counter",
        "Journal records with a good checksum that could not be decoded (kept in journal/unshippable/, not shipped).",
    ),
    (
        "svamlgate_journal_segments_deleted_total",
        "counter",
        "Journal segments deleted after being shipped.",
    ),
    (
        "svamlgate_journal_near_limit_total",
        "counter",
        "Housekeeping rounds that found the journal above 90% of its disk limit.",
    ),
    (
        "svamlgate_shipped_records_total",
        "counter",
        "Journal records written to PostgreSQL.",
    ),
    (
        "svamlgate_ship_deferrals_total",
        "counter",
        "Times the shipper held a batch back because callbacks were queueing for the CPU.",
    ),
    (
        "svamlgate_ship_failures_total",
        "counter",
        "Batches PostgreSQL did not take (they are retried).",
    ),
    (
        "svamlgate_unshippable_records_total",
        "counter",
        "Records set aside in journal/unshippable/ instead of shipped, by kind: refused by PostgreSQL on their own (callback, error, outbound), or undecodable (kept byte for byte).",
    ),
    (
        "svamlgate_records_dropped_total",
        "counter",
        "Answered records lost: the journal could not take them, PostgreSQL did not either, and the memory queue (SVAMLGATE_JOURNAL_MEMORY_BYTES) was full (or held at shutdown), by kind. Alert on any increase.",
    ),
    (
        "svamlgate_journal_cut_records_total",
        "counter",
        "Records lost to unreadable journal bytes, found at start or by the shipper in a written segment (their bytes are kept in journal/quarantine/).",
    ),
    (
        "svamlgate_sinch_api_requests_total",
        "counter",
        "Requests to Sinch's Calling API by operation and outcome (success, sinch_error, no_answer, unknown, refused_locally).",
    ),
    (
        "svamlgate_sinch_api_attempts_total",
        "counter",
        "HTTP exchanges with Sinch's Calling API by operation and result (HTTP status, or connect, timeout, io).",
    ),
    (
        "svamlgate_sinch_api_duration_seconds",
        "histogram",
        "Time Sinch's Calling API took to answer one attempt (or fail), by operation.",
    ),
    (
        "svamlgate_gate_dead_branches_total",
        "counter",
        "Warnings on replies that went out that are certain dead branches when reached (a menu option going to a menu that does not exist), by event and rule; each is also logged at error.",
    ),
    (
        "svamlgate_signature_explanations_total",
        "counter",
        "Signature failures explained, by cause (path_prefix, path_rewritten, trailing_slash, percent_encoding, query_string, content_type, other_key, secret_not_decoded, body_changed, clock_skew, unknown_key, unexplained).",
    ),
    (
        "svamlgate_signature_reported_total",
        "counter",
        "Callbacks whose signature failed and that report mode answered anyway, by reason.",
    ),
    (
        "svamlgate_refusals_summarized_total",
        "counter",
        "Refusals past the per-window limit of their peer and reason: counted into a summary row instead of recorded one by one, by reason.",
    ),
    (
        "svamlgate_refusal_summaries_total",
        "counter",
        "Summary rows recorded for refusals past the per-window limit.",
    ),
    (
        "svamlgate_canary_callbacks_total",
        "counter",
        "The canary's own callbacks (call id prefix svamlgate-canary-), counted apart from svamlgate_callbacks_total.",
    ),
    (
        "svamlgate_canary_runs_total",
        "counter",
        "Canary runs through SVAMLGATE_PUBLIC_URL, by result (ok, or the failed stage).",
    ),
    (
        "svamlgate_canary_duration_seconds",
        "histogram",
        "Canary stage durations (dns, connect, tls, answer, total).",
    ),
    (
        "svamlgate_alerts_total",
        "counter",
        "Alerts by rule and state (firing, resolved).",
    ),
    (
        "svamlgate_alert_deliveries_total",
        "counter",
        "Alert deliveries to webhooks by outcome (delivered, failed after retries, dropped from a full queue).",
    ),
    (
        "svamlgate_alert_notes_dropped_total",
        "counter",
        "Events the reply path could not hand to the alert rules (their queue was full).",
    ),
    (
        "svamlgate_pruned_rows_total",
        "counter",
        "Rows deleted by retention (SVAMLGATE_RETENTION_DAYS, svamlgate prune), by table.",
    ),
    (
        "svamlgate_redacted_rows_total",
        "counter",
        "Rows whose phone numbers were masked by redaction (SVAMLGATE_REDACT_AFTER_DAYS, svamlgate prune), by table.",
    ),
];

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

/// Series of one kind (counters or histograms), bucketed by [`series_key`].
type Series<T> = HashMap<u64, Vec<(&'static str, Labels, T)>>;

/// The series `name` with these labels, if it exists.
fn find<'a, T>(all: &'a Series<T>, name: &str, pairs: &[(&'static str, &str)]) -> Option<&'a T> {
    all.get(&series_key(name, pairs))?
        .iter()
        .find(|(n, l, _)| same(n, l, name, pairs))
        .map(|s| &s.2)
}

/// The series `name` with these labels, created empty when new.
fn find_or_new<'a, T: Default>(
    all: &'a mut Series<T>,
    name: &'static str,
    pairs: &[(&'static str, &str)],
) -> &'a mut T {
    let bucket = all.entry(series_key(name, pairs)).or_default();
    let i = match bucket.iter().position(|(n, l, _)| same(n, l, name, pairs)) {
        Some(i) => i,
        None => {
            bucket.push((name, labels(pairs), T::default()));
            bucket.len() - 1
        }
    };
    &mut bucket[i].2
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn render_labels(l: &Labels, extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = l
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

impl Metrics {
    /// A new, empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds one to a counter.
    pub fn inc(&self, name: &'static str, pairs: &[(&'static str, &str)]) {
        self.add(name, pairs, 1);
    }

    /// Adds `n` to a counter.
    pub fn add(&self, name: &'static str, pairs: &[(&'static str, &str)], n: u64) {
        *find_or_new(&mut self.lock().counters, name, pairs) += n;
    }

    /// Records one observation in a histogram.
    pub fn observe(&self, name: &'static str, pairs: &[(&'static str, &str)], value: Duration) {
        let secs = value.as_secs_f64();
        let mut inner = self.lock();
        let h = find_or_new(&mut inner.histograms, name, pairs);
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// Current value of a counter (tests and the admin API).
    pub fn counter(&self, name: &'static str, pairs: &[(&'static str, &str)]) -> u64 {
        find(&self.lock().counters, name, pairs).map_or(0, |n| *n)
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut counters: Vec<&(&'static str, Labels, u64)> =
            inner.counters.values().flatten().collect();
        counters.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut histograms: Vec<&(&'static str, Labels, Histogram)> =
            inner.histograms.values().flatten().collect();
        histograms.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut out = String::new();
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (n, l, v) in counters.iter().filter(|(n, _, _)| n == name) {
                let _ = writeln!(out, "{n}{} {v}", render_labels(l, None));
            }
            for (n, l, h) in histograms.iter().filter(|(n, _, _)| n == name) {
                for (i, b) in BUCKETS.iter().enumerate() {
                    let le = b.to_string();
                    let _ = writeln!(
                        out,
                        "{n}_bucket{} {}",
                        render_labels(l, Some(("le", &le))),
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "{n}_bucket{} {}",
                    render_labels(l, Some(("le", "+Inf"))),
                    h.count
                );
                let _ = writeln!(out, "{n}_sum{} {}", render_labels(l, None), h.sum);
                let _ = writeln!(out, "{n}_count{} {}", render_labels(l, None), h.count);
            }
        }
        let _ = writeln!(
            out,
            "# HELP svamlgate_build_info Build information.\n# TYPE svamlgate_build_info gauge\nsvamlgate_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::new();
        m.inc(
            "svamlgate_callbacks_total",
            &[("event", "ice"), ("outcome", "replied")],
        );
        m.inc(
            "svamlgate_callbacks_total",
            &[("event", "ice"), ("outcome", "replied")],
        );
        m.observe(
            "svamlgate_reply_duration_seconds",
            &[("event", "ice"), ("source", "flow")],
            Duration::from_millis(3),
        );
        let text = m.render();
        assert!(
            text.contains("svamlgate_callbacks_total{event=\"ice\",outcome=\"replied\"} 2"),
            "{text}"
        );
        assert!(text.contains(
            "svamlgate_reply_duration_seconds_bucket{event=\"ice\",source=\"flow\",le=\"0.005\"} 1"
        ));
        assert!(text.contains("svamlgate_reply_duration_seconds_bucket{event=\"ice\",source=\"flow\",le=\"0.0025\"} 0"));
        assert!(text
            .contains("svamlgate_reply_duration_seconds_count{event=\"ice\",source=\"flow\"} 1"));
        assert_eq!(
            m.counter(
                "svamlgate_callbacks_total",
                &[("event", "ice"), ("outcome", "replied")]
            ),
            2
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.inc(
            "svamlgate_callbacks_total",
            &[("event", "we\"ird\\"), ("outcome", "x")],
        );
        assert!(m.render().contains("event=\"we\\\"ird\\\\\""));
    }
}
