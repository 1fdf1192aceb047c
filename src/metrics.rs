//! Prometheus metrics, rendered in the text exposition format at `GET /metrics`.
//!
//! A deliberately small registry (counters and fixed-bucket histograms keyed by a bounded label set):
//! labels are only ever route patterns, event types, outcomes, sources and rule codes — never call ids
//! or phone numbers, so cardinality stays bounded.
//!
//! Nothing on the reply path takes a lock here. A series lives in a slot of a fixed table, found by
//! a hash of its name and labels; its values are atomics. A slot is claimed once, when its series is
//! first used (the only moment two threads may briefly wait for each other, on that one slot), and
//! never emptied, so a lookup is a few loads and an update one atomic add. A table that has no room
//! left chains to another one.

use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// Latency buckets in seconds (0.1 ms … 5 s).
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

type Labels = Vec<(&'static str, String)>;

/// One histogram: a count per bucket (not cumulative: one add per observation; the last slot holds
/// observations above the largest bucket) and the sum in nanoseconds (exact, unlike a float sum).
#[derive(Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Cumulative counts per bucket and the total, read once each (a scrape may race an update by
    /// one observation; the figures it prints stay consistent with each other).
    fn cumulative(&self) -> ([u64; BUCKETS.len()], u64) {
        let mut out = [0u64; BUCKETS.len()];
        let mut total = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            total += c.load(Ordering::Relaxed);
            if let Some(o) = out.get_mut(i) {
                *o = total;
            }
        }
        (out, total)
    }
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

/// Slots per table. The label sets are bounded, so one table is the rule; a full one chains.
const SLOTS: usize = 1024;
/// Slots looked at in one table before moving on to the next.
const PROBES: usize = 64;

struct Entry<T> {
    name: &'static str,
    labels: Labels,
    value: T,
}

/// Series of one kind (counters or histograms): open addressing over slots that are claimed once
/// and never emptied. Where a series lands depends only on its hash and on the slots claimed before
/// it, so every lookup follows the path its insertion took and finds it, or the first free slot
/// (then the series is new and claims it; if another series wins that slot meanwhile, the lookup
/// goes on).
struct Table<T> {
    slots: Box<[OnceLock<Box<Entry<T>>>]>,
    next: OnceLock<Box<Table<T>>>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            slots: (0..SLOTS).map(|_| OnceLock::new()).collect(),
            next: OnceLock::new(),
        }
    }
}

impl<T: Default> Table<T> {
    /// The series `name` with these labels, created (zero) when new.
    fn get(&self, name: &'static str, pairs: &[(&'static str, &str)]) -> &T {
        let key = series_key(name, pairs);
        let mut table = self;
        loop {
            if let Some(v) = table.probe(key, name, pairs) {
                return v;
            }
            table = &**table.next.get_or_init(Box::default);
        }
    }

    fn probe(&self, key: u64, name: &'static str, pairs: &[(&'static str, &str)]) -> Option<&T> {
        let start = (key % SLOTS as u64) as usize;
        for i in 0..PROBES {
            let slot = &self.slots[(start + i) % SLOTS];
            let entry = slot.get_or_init(|| {
                Box::new(Entry {
                    name,
                    labels: labels(pairs),
                    value: T::default(),
                })
            });
            if same(entry.name, &entry.labels, name, pairs) {
                return Some(&entry.value);
            }
        }
        None
    }
}

impl<T> Table<T> {
    /// The series `name` with these labels, if it exists (never creates one).
    fn find(&self, name: &str, pairs: &[(&'static str, &str)]) -> Option<&T> {
        let start = (series_key(name, pairs) % SLOTS as u64) as usize;
        let mut table = self;
        loop {
            for i in 0..PROBES {
                let entry = table.slots[(start + i) % SLOTS].get()?;
                if same(entry.name, &entry.labels, name, pairs) {
                    return Some(&entry.value);
                }
            }
            table = &**table.next.get()?;
        }
    }

    /// Every series, sorted by name and labels (for rendering).
    fn all(&self) -> Vec<&Entry<T>> {
        let mut out = Vec::new();
        let mut table = Some(self);
        while let Some(t) = table {
            out.extend(t.slots.iter().filter_map(|s| s.get().map(|b| &**b)));
            table = t.next.get().map(|b| &**b);
        }
        out.sort_by(|a, b| (a.name, &a.labels).cmp(&(b.name, &b.labels)));
        out
    }
}

/// The registry. Cheap to share (`Arc<Metrics>`); updates take no lock (see the module comment).
#[derive(Default)]
pub struct Metrics {
    counters: Table<AtomicU64>,
    histograms: Table<Histogram>,
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
        "svamlgate_ship_stage_microseconds_total",
        "counter",
        "Wall time the shipper spent per stage, in microseconds: read, decode and encode (the journal side, on its reader thread), wait (the writer waiting for the reader), copy, insert and commit (PostgreSQL's side).",
    ),
    (
        "svamlgate_ship_rewinds_total",
        "counter",
        "Times PostgreSQL restarted before it confirmed deferred commits on disk, and the shipper shipped again from the journal's checkpoint (SVAMLGATE_SHIP_COMMIT).",
    ),
    (
        "svamlgate_ship_read_ahead_total",
        "counter",
        "Batches the shipper read from the journal while PostgreSQL was writing the one before.",
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

/// A histogram's figures at one moment ([`Metrics::histogram`]): for a component that watches a
/// latency without scraping (the shipper's pacing watches the journal's flushes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistogramCounts {
    /// Observations.
    pub count: u64,
    /// Observations at most each bound of the bucket list, cumulative.
    le: [u64; BUCKETS.len()],
}

impl HistogramCounts {
    /// Observations above `bound`, counted at the smallest bucket bound that is at least `bound`
    /// (so never more than the true figure); all of them past the largest bucket.
    pub fn above(&self, bound: Duration) -> u64 {
        let secs = bound.as_secs_f64();
        match BUCKETS.iter().position(|b| *b >= secs) {
            Some(i) => self.count.saturating_sub(self.le[i]),
            None => 0,
        }
    }

    /// What was observed between `earlier` and this one.
    pub fn since(&self, earlier: &HistogramCounts) -> HistogramCounts {
        let mut le = [0u64; BUCKETS.len()];
        for (i, v) in le.iter_mut().enumerate() {
            *v = self.le[i].saturating_sub(earlier.le[i]);
        }
        HistogramCounts {
            count: self.count.saturating_sub(earlier.count),
            le,
        }
    }
}

impl Metrics {
    /// A new, empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one to a counter.
    pub fn inc(&self, name: &'static str, pairs: &[(&'static str, &str)]) {
        self.add(name, pairs, 1);
    }

    /// Adds `n` to a counter.
    pub fn add(&self, name: &'static str, pairs: &[(&'static str, &str)], n: u64) {
        self.counters
            .get(name, pairs)
            .fetch_add(n, Ordering::Relaxed);
    }

    /// Records one observation in a histogram.
    pub fn observe(&self, name: &'static str, pairs: &[(&'static str, &str)], value: Duration) {
        let secs = value.as_secs_f64();
        let h = self.histograms.get(name, pairs);
        let i = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        if let Some(c) = h.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let ns = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        h.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Current value of a counter (tests and the admin API).
    pub fn counter(&self, name: &'static str, pairs: &[(&'static str, &str)]) -> u64 {
        self.counters
            .find(name, pairs)
            .map_or(0, |n| n.load(Ordering::Relaxed))
    }

    /// Current figures of a histogram (all zero when it has no observation yet).
    pub fn histogram(&self, name: &'static str, pairs: &[(&'static str, &str)]) -> HistogramCounts {
        self.histograms
            .find(name, pairs)
            .map_or_else(HistogramCounts::default, |h| {
                let (le, count) = h.cumulative();
                HistogramCounts { count, le }
            })
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let counters = self.counters.all();
        let histograms = self.histograms.all();
        let mut out = String::new();
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for e in counters.iter().filter(|e| e.name == *name) {
                let _ = writeln!(
                    out,
                    "{}{} {}",
                    e.name,
                    render_labels(&e.labels, None),
                    e.value.load(Ordering::Relaxed)
                );
            }
            for e in histograms.iter().filter(|e| e.name == *name) {
                let (n, l) = (e.name, &e.labels);
                let (le, count) = e.value.cumulative();
                for (i, b) in BUCKETS.iter().enumerate() {
                    let bound = b.to_string();
                    let _ = writeln!(
                        out,
                        "{n}_bucket{} {}",
                        render_labels(l, Some(("le", &bound))),
                        le[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "{n}_bucket{} {}",
                    render_labels(l, Some(("le", "+Inf"))),
                    count
                );
                let sum = e.value.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
                let _ = writeln!(out, "{n}_sum{} {}", render_labels(l, None), sum);
                let _ = writeln!(out, "{n}_count{} {}", render_labels(l, None), count);
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

    #[test]
    fn concurrent_updates_are_all_counted() {
        let m = std::sync::Arc::new(Metrics::new());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let m = m.clone();
                std::thread::spawn(move || {
                    let event = ["ice", "ace"][t % 2];
                    for i in 0..10_000u64 {
                        m.inc(
                            "svamlgate_callbacks_total",
                            &[("event", event), ("outcome", "replied")],
                        );
                        m.observe(
                            "svamlgate_reply_duration_seconds",
                            &[("event", event), ("source", "flow")],
                            Duration::from_micros(i % 3000),
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        for event in ["ice", "ace"] {
            assert_eq!(
                m.counter(
                    "svamlgate_callbacks_total",
                    &[("event", event), ("outcome", "replied")]
                ),
                20_000
            );
            let h = m.histogram(
                "svamlgate_reply_duration_seconds",
                &[("event", event), ("source", "flow")],
            );
            assert_eq!(h.count, 20_000);
            // Each thread observes 0..3000 µs three times and 0..1000 µs once: 3 × 2,499 + 499
            // values above 0.5 ms; two threads per event.
            assert_eq!(h.above(Duration::from_micros(500)), 2 * (3 * 2499 + 499));
        }
    }

    #[test]
    fn more_series_than_one_table_holds_are_all_kept() {
        let m = Metrics::new();
        let values: Vec<String> = (0..3 * SLOTS).map(|i| format!("rule{i}")).collect();
        for (i, v) in values.iter().enumerate() {
            m.add(
                "svamlgate_gate_violations_total",
                &[("event", "ice"), ("rule", v)],
                i as u64 + 1,
            );
        }
        for (i, v) in values.iter().enumerate() {
            assert_eq!(
                m.counter(
                    "svamlgate_gate_violations_total",
                    &[("event", "ice"), ("rule", v)]
                ),
                i as u64 + 1
            );
        }
        let text = m.render();
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("svamlgate_gate_violations_total{"))
                .count(),
            3 * SLOTS
        );
        assert_eq!(
            m.counter("svamlgate_gate_violations_total", &[("event", "x")]),
            0
        );
    }

    #[test]
    fn a_histogram_window_counts_what_was_slow_in_it() {
        let m = Metrics::new();
        let name = "svamlgate_journal_append_seconds";
        assert_eq!(m.histogram(name, &[]).count, 0);
        m.observe(name, &[], Duration::from_millis(20));
        let before = m.histogram(name, &[]);
        for ms in [1, 2, 3, 4, 30] {
            m.observe(name, &[], Duration::from_millis(ms));
        }
        let window = m.histogram(name, &[]).since(&before);
        assert_eq!(window.count, 5);
        assert_eq!(window.above(Duration::from_micros(2500)), 3);
        assert_eq!(
            window.above(Duration::from_millis(2)),
            3,
            "rounded up to the 2.5 ms bound"
        );
        assert_eq!(window.above(Duration::from_secs(10)), 0);
        let text = m.render();
        assert!(
            text.contains("svamlgate_journal_append_seconds_count 6"),
            "{text}"
        );
        assert!(
            text.contains("svamlgate_journal_append_seconds_sum 0.06"),
            "{text}"
        );
        assert!(
            text.contains("svamlgate_journal_append_seconds_bucket{le=\"+Inf\"} 6"),
            "{text}"
        );
    }
}
