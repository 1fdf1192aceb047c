//! Alerts: svamlgate tells someone when calls go wrong.
//!
//! The reply path only *notes* what happened ([`Alerts::note`]: a non-blocking send into a
//! bounded channel; when it is full the note is dropped and counted). Everything else runs on the
//! `svamlgate-alerts` thread: every [`TICK`] it takes the notes, looks at the conditions (journal
//! lag and disk, the embedded cluster), and applies the [`rules`] ([`Engine`]). Each firing and
//! each resolution is an [`Alert`]: kept for `GET /admin/alerts` and queued (bounded) for
//! delivery to the webhooks ([`deliver`]), signed when a secret is set, retried with backoff.
//! Nothing here can slow a callback.

pub mod deliver;
pub mod rules;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use utoipa::ToSchema;

use crate::metrics::Metrics;
use crate::ops::OpsArgs;
use crate::recording::ShipStatus;
pub use rules::{Rule, RuleKind};

/// How often the rules are applied.
pub const TICK: Duration = Duration::from_millis(200);
/// Notes waiting for the alerts thread; more are dropped (and counted).
const NOTE_QUEUE: usize = 4096;
/// Alerts kept for `GET /admin/alerts` (resolved ones beyond it are forgotten).
const RECENT: usize = 100;
/// Examples kept per alert.
const EXAMPLES: usize = 5;

/// One thing that happened, as the reply path notes it.
#[derive(Debug, Clone)]
struct Note {
    kind: RuleKind,
    key: String,
    example: Example,
    at: Instant,
}

/// An example an alert names: a call, a reference, what was seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Example {
    /// Call id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callid: Option<String>,
    /// Reference (of the callback, error or request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// What was seen (a refusal reason, an HTTP status, a failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `firing` or `resolved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The rule's threshold is reached.
    Firing,
    /// Back below it.
    Resolved,
}

/// An alert, as delivered to webhooks (inside `alert`) and listed by `GET /admin/alerts`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Id of the firing; its resolution carries the same id.
    pub id: uuid::Uuid,
    /// The rule.
    pub rule: RuleKind,
    /// What the rule counts separately (the fallback reason); empty when nothing.
    pub key: String,
    /// `firing` or `resolved`.
    pub state: AlertState,
    /// What it means.
    pub summary: String,
    /// The one-line text (also the webhook's Slack-compatible `text`).
    pub text: String,
    /// Events in the window when it fired, or the value of the condition.
    pub count: f64,
    /// Events while it was firing (or the highest value seen), on resolution; as `count` when firing.
    pub total: f64,
    /// The rule's threshold.
    pub threshold: f64,
    /// The rule's window, in seconds.
    pub window_secs: f64,
    /// A few of the calls and references concerned, newest last.
    pub examples: Vec<Example>,
    /// Where to look: an admin path (or `/readyz`).
    pub admin_path: String,
    /// When it fired.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub fired_at: OffsetDateTime,
    /// When it resolved.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<OffsetDateTime>,
}

/// One key of one rule.
#[derive(Debug, Default)]
struct Track {
    events: VecDeque<Instant>,
    examples: VecDeque<Example>,
    value: f64,
    below_since: Option<Instant>,
    last_fired: Option<Instant>,
    firing: Option<Alert>,
    seen_while_firing: f64,
}

/// The rules applied to what was noted: pure, driven with explicit instants (tests drive it
/// directly).
#[derive(Debug)]
pub struct Engine {
    rules: Vec<Rule>,
    tracks: BTreeMap<(RuleKind, String), Track>,
}

impl Engine {
    /// An engine for these rules.
    pub fn new(rules: Vec<Rule>) -> Engine {
        Engine {
            rules,
            tracks: BTreeMap::new(),
        }
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Counts one event of an event rule.
    pub fn event(&mut self, kind: RuleKind, key: &str, example: Example, at: Instant) {
        let t = self.tracks.entry((kind, key.to_owned())).or_default();
        t.events.push_back(at);
        if t.firing.is_some() {
            t.seen_while_firing += 1.0;
        }
        t.examples.push_back(example);
        while t.examples.len() > EXAMPLES {
            t.examples.pop_front();
        }
    }

    /// Sets the current value of a condition rule (with an example, e.g. what is restarting).
    pub fn condition(&mut self, kind: RuleKind, value: f64, example: Option<Example>) {
        let t = self.tracks.entry((kind, String::new())).or_default();
        t.value = value;
        if t.firing.is_some() {
            t.seen_while_firing = t.seen_while_firing.max(value);
        }
        if let Some(e) = example {
            if t.examples.back() != Some(&e) {
                t.examples.push_back(e);
            }
            while t.examples.len() > EXAMPLES {
                t.examples.pop_front();
            }
        }
    }

    /// Applies the rules at `now`; returns the alerts that fired or resolved.
    pub fn tick(&mut self, now: Instant, wall: OffsetDateTime) -> Vec<Alert> {
        let mut out = Vec::new();
        for rule in &self.rules {
            for ((kind, key), t) in self.tracks.range_mut((rule.kind, String::new())..) {
                if *kind != rule.kind {
                    break;
                }
                let (value, above) = if rule.kind.is_condition() {
                    (t.value, t.value >= rule.threshold)
                } else {
                    while t
                        .events
                        .front()
                        .is_some_and(|e| now.saturating_duration_since(*e) >= rule.window)
                    {
                        t.events.pop_front();
                    }
                    let n = t.events.len() as f64;
                    (n, n >= rule.threshold)
                };
                if above {
                    t.below_since = None;
                } else if t.below_since.is_none() {
                    t.below_since = Some(now);
                }
                match t.firing.take() {
                    None => {
                        let cooled = t
                            .last_fired
                            .is_none_or(|f| now.saturating_duration_since(f) >= rule.cooldown);
                        if above && cooled {
                            let alert = fired(rule, key, value, t, wall);
                            t.last_fired = Some(now);
                            t.seen_while_firing = value;
                            t.firing = Some(alert.clone());
                            out.push(alert);
                        }
                    }
                    Some(firing) => {
                        let resolved = if rule.kind.is_condition() {
                            t.below_since
                                .is_some_and(|b| now.saturating_duration_since(b) >= rule.window)
                        } else {
                            !above
                        };
                        if resolved {
                            out.push(resolve(rule, firing, value, t, wall));
                        } else {
                            t.firing = Some(firing);
                        }
                    }
                }
            }
        }
        // Keys of event rules with nothing left to remember are dropped (reasons come and go).
        self.tracks.retain(|(kind, _), t| {
            kind.is_condition()
                || t.firing.is_some()
                || !t.events.is_empty()
                || t.last_fired
                    .is_some_and(|f| now.saturating_duration_since(f) < Duration::from_secs(3600))
        });
        out
    }

    /// The alerts firing now.
    pub fn firing(&self) -> Vec<Alert> {
        self.tracks
            .values()
            .filter_map(|t| t.firing.clone())
            .collect()
    }
}

fn label(rule: &Rule, key: &str) -> String {
    if key.is_empty() {
        rule.kind.summary().to_owned()
    } else {
        format!("{} ({key})", rule.kind.summary())
    }
}

fn examples_text(examples: &[Example]) -> String {
    let callids: Vec<&str> = examples
        .iter()
        .filter_map(|e| e.callid.as_deref())
        .collect();
    let refs: Vec<&str> = examples
        .iter()
        .filter_map(|e| e.reference.as_deref())
        .collect();
    let details: Vec<&str> = examples
        .iter()
        .filter_map(|e| e.detail.as_deref())
        .collect();
    let mut parts = Vec::new();
    if !callids.is_empty() {
        parts.push(format!("calls {}", callids.join(", ")));
    }
    if !refs.is_empty() {
        parts.push(format!("references {}", refs.join(", ")));
    }
    if !details.is_empty() {
        parts.push(format!("seen {}", details.join(", ")));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" Examples: {}.", parts.join("; "))
    }
}

fn measure(rule: &Rule, value: f64) -> String {
    let window = rule.window.as_secs_f64();
    match rule.kind {
        RuleKind::JournalLag => format!("{value:.0} s behind (threshold {:.0} s)", rule.threshold),
        k if k.is_condition() => "now".to_owned(),
        _ => format!(
            "{value:.0} in the last {window} s (threshold {:.0})",
            rule.threshold
        ),
    }
}

fn fired(rule: &Rule, key: &str, value: f64, t: &Track, wall: OffsetDateTime) -> Alert {
    let examples: Vec<Example> = t.examples.iter().cloned().collect();
    let text = format!(
        "[FIRING] svamlgate: {}: {}.{} Look at {}",
        label(rule, key),
        measure(rule, value),
        examples_text(&examples),
        rule.kind.admin_path()
    );
    Alert {
        id: uuid::Uuid::now_v7(),
        rule: rule.kind,
        key: key.to_owned(),
        state: AlertState::Firing,
        summary: label(rule, key),
        text,
        count: value,
        total: value,
        threshold: rule.threshold,
        window_secs: rule.window.as_secs_f64(),
        examples,
        admin_path: rule.kind.admin_path().to_owned(),
        fired_at: wall,
        resolved_at: None,
    }
}

fn resolve(rule: &Rule, firing: Alert, value: f64, t: &Track, wall: OffsetDateTime) -> Alert {
    let examples: Vec<Example> = t.examples.iter().cloned().collect();
    let since = (wall - firing.fired_at).whole_seconds();
    let total = t.seen_while_firing;
    let what = if rule.kind.is_condition() {
        "no longer the case".to_owned()
    } else {
        format!(
            "{total:.0} in all while firing, now below {:.0}",
            rule.threshold
        )
    };
    Alert {
        state: AlertState::Resolved,
        text: format!(
            "[RESOLVED] svamlgate: {}: {what} (fired {since} s ago).{} Look at {}",
            firing.summary,
            examples_text(&examples),
            rule.kind.admin_path()
        ),
        count: value,
        total,
        examples,
        resolved_at: Some(wall),
        ..firing
    }
}

/// What `GET /admin/alerts` answers.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertList {
    /// Alerts firing now.
    pub firing: Vec<Alert>,
    /// The latest firings and resolutions, newest first (at most 100).
    pub recent: Vec<Alert>,
    /// The rules in force.
    pub rules: Vec<Rule>,
    /// Webhooks configured (their URLs are secret and not shown).
    pub webhooks: usize,
}

/// The alerts of one svamlgate: the reply path's handle, and the state the alerts thread keeps.
pub struct Alerts {
    notes: mpsc::Sender<Note>,
    inbox: Mutex<Option<mpsc::Receiver<Note>>>,
    engine: Mutex<Engine>,
    recent: Mutex<VecDeque<Alert>>,
    cluster: OnceLock<Arc<crate::db::cluster::Health>>,
    status: Arc<ShipStatus>,
    journal_bytes: Box<dyn Fn() -> u64 + Send + Sync>,
    journal_limit: u64,
    metrics: Arc<Metrics>,
    delivery: deliver::Settings,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts")
            .field("webhooks", &self.delivery.webhooks.len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Alerts {
    /// Alerts from the settings (rules, webhooks, secret); `journal_bytes` reads the journal's
    /// size. Nothing runs until [`Alerts::start`].
    pub fn new(
        args: &OpsArgs,
        metrics: Arc<Metrics>,
        status: Arc<ShipStatus>,
        journal_bytes: Box<dyn Fn() -> u64 + Send + Sync>,
        journal_limit: u64,
    ) -> anyhow::Result<Alerts> {
        let rules = rules::parse(args.alert_rules.as_deref())?;
        let delivery = deliver::Settings::from_args(args)?;
        let (tx, rx) = mpsc::channel(NOTE_QUEUE);
        Ok(Alerts {
            notes: tx,
            inbox: Mutex::new(Some(rx)),
            engine: Mutex::new(Engine::new(rules)),
            recent: Mutex::new(VecDeque::new()),
            cluster: OnceLock::new(),
            status,
            journal_bytes,
            journal_limit,
            metrics,
            delivery,
        })
    }

    /// Notes an event for an event rule; never blocks (a full queue drops it, counted).
    pub fn note(
        &self,
        kind: RuleKind,
        key: &str,
        callid: Option<&str>,
        reference: Option<&str>,
        detail: Option<&str>,
    ) {
        let note = Note {
            kind,
            key: key.to_owned(),
            example: Example {
                callid: callid.map(str::to_owned),
                reference: reference.map(str::to_owned),
                detail: detail.map(str::to_owned),
            },
            at: Instant::now(),
        };
        if self.notes.try_send(note).is_err() {
            self.metrics.inc("svamlgate_alert_notes_dropped_total", &[]);
        }
    }

    /// Watches the embedded cluster's supervisor too.
    pub fn watch_cluster(&self, health: Arc<crate::db::cluster::Health>) {
        let _ = self.cluster.set(health);
    }

    /// Firing and recent alerts, and the rules.
    pub fn list(&self) -> AlertList {
        let engine = lock(&self.engine);
        AlertList {
            firing: engine.firing(),
            recent: lock(&self.recent).iter().rev().cloned().collect(),
            rules: engine.rules().to_vec(),
            webhooks: self.delivery.webhooks.len(),
        }
    }

    /// Starts the alerts thread (rules and delivery). It ends when the alerts are dropped.
    pub fn start(self: &Arc<Self>) -> std::io::Result<()> {
        let Some(inbox) = lock(&self.inbox).take() else {
            return Ok(());
        };
        let me = Arc::downgrade(self);
        let settings = self.delivery.clone();
        let metrics = self.metrics.clone();
        std::thread::Builder::new()
            .name("svamlgate-alerts".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(run(me, inbox, settings, metrics));
            })?;
        Ok(())
    }

    /// One round: take the notes, look at the conditions, apply the rules.
    fn round(&self, inbox: &mut mpsc::Receiver<Note>) -> Vec<Alert> {
        let mut engine = lock(&self.engine);
        while let Ok(n) = inbox.try_recv() {
            engine.event(n.kind, &n.key, n.example, n.at);
        }
        let status = &self.status;
        engine.condition(RuleKind::JournalLag, status.lag_seconds(), None);
        let bytes = (self.journal_bytes)();
        let near = status.near_limit.load(Ordering::Acquire)
            || crate::recording::journal::level(bytes, self.journal_limit) != "ok";
        engine.condition(
            RuleKind::JournalNearLimit,
            if near { 1.0 } else { 0.0 },
            near.then(|| Example {
                detail: Some(format!("{bytes} of {} bytes", self.journal_limit)),
                ..Example::default()
            }),
        );
        if let Some(h) = self.cluster.get() {
            let restarting = h.state() == "restarting";
            engine.condition(
                RuleKind::ClusterRestarting,
                if restarting { 1.0 } else { 0.0 },
                restarting.then(|| Example {
                    detail: Some(format!("{} restarts so far", h.restarts())),
                    ..Example::default()
                }),
            );
        }
        let out = engine.tick(Instant::now(), OffsetDateTime::now_utc());
        drop(engine);
        if !out.is_empty() {
            let mut recent = lock(&self.recent);
            for a in &out {
                let state = match a.state {
                    AlertState::Firing => "firing",
                    AlertState::Resolved => "resolved",
                };
                self.metrics.inc(
                    "svamlgate_alerts_total",
                    &[("rule", a.rule.as_str()), ("state", state)],
                );
                match a.state {
                    AlertState::Firing => {
                        tracing::warn!(rule = a.rule.as_str(), key = %a.key, alert = %a.text, "alert firing")
                    }
                    AlertState::Resolved => {
                        tracing::info!(rule = a.rule.as_str(), key = %a.key, alert = %a.text, "alert resolved")
                    }
                }
                recent.push_back(a.clone());
                while recent.len() > RECENT {
                    recent.pop_front();
                }
            }
        }
        out
    }
}

async fn run(
    me: Weak<Alerts>,
    mut inbox: mpsc::Receiver<Note>,
    settings: deliver::Settings,
    metrics: Arc<Metrics>,
) {
    let queue = deliver::Queue::start(settings, metrics.clone());
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(alerts) = me.upgrade() else {
            return;
        };
        for alert in alerts.round(&mut inbox) {
            queue.push(&alert);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: RuleKind, threshold: f64, window: u64, cooldown: u64) -> Rule {
        Rule {
            kind,
            threshold,
            window: Duration::from_secs(window),
            cooldown: Duration::from_secs(cooldown),
        }
    }

    fn ex(callid: &str) -> Example {
        Example {
            callid: Some(callid.into()),
            reference: Some(format!("ref-{callid}")),
            detail: None,
        }
    }

    #[test]
    fn an_event_rule_fires_once_per_key_and_resolves_when_the_window_empties() {
        let t0 = Instant::now();
        let wall = OffsetDateTime::now_utc();
        let mut e = Engine::new(vec![rule(RuleKind::Fallback, 3.0, 10, 60)]);
        e.event(RuleKind::Fallback, "deadline", ex("c1"), t0);
        e.event(RuleKind::Fallback, "deadline", ex("c2"), t0);
        e.event(RuleKind::Fallback, "invalid", ex("c3"), t0);
        assert!(e.tick(t0, wall).is_empty());
        e.event(RuleKind::Fallback, "deadline", ex("c4"), t0);
        let fired = e.tick(t0, wall);
        assert_eq!(fired.len(), 1);
        let a = &fired[0];
        assert_eq!(
            (a.key.as_str(), a.state, a.count),
            ("deadline", AlertState::Firing, 3.0)
        );
        assert!(
            a.text.contains("c4") && a.text.contains("ref-c1") && a.text.contains("/admin/events"),
            "{}",
            a.text
        );
        // Firing: more events do not fire it again.
        e.event(
            RuleKind::Fallback,
            "deadline",
            ex("c5"),
            t0 + Duration::from_secs(1),
        );
        assert!(e.tick(t0 + Duration::from_secs(1), wall).is_empty());
        assert_eq!(e.firing().len(), 1);
        // The window moves past the events: resolved, with the same id.
        let done = e.tick(t0 + Duration::from_secs(11), wall);
        assert_eq!(done.len(), 1);
        assert_eq!((done[0].state, done[0].id), (AlertState::Resolved, a.id));
        assert_eq!(done[0].total, 4.0);
        assert!(e.firing().is_empty());
        // Cooldown: a new storm right away does not fire until 60 s after the first firing.
        let t1 = t0 + Duration::from_secs(12);
        for i in 0..3 {
            e.event(RuleKind::Fallback, "deadline", ex(&format!("d{i}")), t1);
        }
        assert!(e.tick(t1, wall).is_empty());
        let t2 = t0 + Duration::from_secs(60);
        for i in 0..3 {
            e.event(RuleKind::Fallback, "deadline", ex(&format!("e{i}")), t2);
        }
        assert_eq!(e.tick(t2, wall).len(), 1);
    }

    #[test]
    fn a_condition_fires_at_its_threshold_and_resolves_after_a_quiet_window() {
        let t0 = Instant::now();
        let wall = OffsetDateTime::now_utc();
        let mut e = Engine::new(vec![
            rule(RuleKind::JournalLag, 30.0, 5, 0),
            rule(RuleKind::ClusterRestarting, 1.0, 5, 0),
        ]);
        e.condition(RuleKind::JournalLag, 10.0, None);
        e.condition(RuleKind::ClusterRestarting, 0.0, None);
        assert!(e.tick(t0, wall).is_empty());
        e.condition(RuleKind::JournalLag, 31.0, None);
        let f = e.tick(t0, wall);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].rule, RuleKind::JournalLag);
        assert!(f[0].text.contains("31 s behind"), "{}", f[0].text);
        e.condition(RuleKind::JournalLag, 0.0, None);
        assert!(e.tick(t0 + Duration::from_secs(1), wall).is_empty());
        // Flapping back above restarts the quiet window.
        e.condition(RuleKind::JournalLag, 40.0, None);
        assert!(e.tick(t0 + Duration::from_secs(2), wall).is_empty());
        e.condition(RuleKind::JournalLag, 0.0, None);
        assert!(e.tick(t0 + Duration::from_secs(3), wall).is_empty());
        let r = e.tick(t0 + Duration::from_secs(8), wall);
        assert_eq!(
            (r.len(), r[0].state, r[0].total),
            (1, AlertState::Resolved, 40.0)
        );
        e.condition(
            RuleKind::ClusterRestarting,
            1.0,
            Some(Example {
                detail: Some("2 restarts so far".into()),
                ..Example::default()
            }),
        );
        let c = e.tick(t0 + Duration::from_secs(9), wall);
        assert_eq!(c[0].rule, RuleKind::ClusterRestarting);
        assert!(c[0].text.contains("2 restarts") && c[0].text.contains("/readyz"));
    }

    /// The Prometheus rules (checked with promtool in CI when it installs) name only metrics
    /// svamlgate exports, and each alert has an expression and a summary.
    #[test]
    fn the_prometheus_rules_use_exported_metrics() {
        let rules = include_str!("../../deploy/prometheus/svamlgate-alerts.yml");
        let exported = crate::metrics::Metrics::new().render();
        // The gauges GET /metrics adds to the registry's text.
        let gauges = [
            "svamlgate_journal_lag_seconds",
            "svamlgate_journal_bytes",
            "svamlgate_journal_max_bytes",
            "svamlgate_embedded_cluster_up",
            "svamlgate_embedded_cluster_restarts",
        ];
        let re = regex::Regex::new(r"svamlgate_[a-z_]+").unwrap();
        let mut seen = 0;
        for m in re.find_iter(rules) {
            let name = m.as_str();
            let known = gauges.contains(&name) || exported.contains(&format!("# TYPE {name} "));
            assert!(known, "{name} is not a metric svamlgate exports");
            seen += 1;
        }
        assert!(seen >= 9);
        let alerts = rules.matches("- alert: ").count();
        assert_eq!(alerts, rules.matches("expr: ").count());
        assert_eq!(alerts, rules.matches("summary: ").count());
        assert!(alerts >= RuleKind::ALL.len());
    }

    #[test]
    fn every_rule_fires_and_resolves_with_its_defaults() {
        let t0 = Instant::now();
        let wall = OffsetDateTime::now_utc();
        let mut e = Engine::new(rules::defaults());
        for r in rules::defaults() {
            if r.kind.is_condition() {
                e.condition(r.kind, r.threshold, None);
            } else {
                for i in 0..r.threshold as usize {
                    e.event(r.kind, "", ex(&format!("{}-{i}", r.kind.as_str())), t0);
                }
            }
        }
        let fired = e.tick(t0, wall);
        assert_eq!(fired.len(), RuleKind::ALL.len());
        for r in rules::defaults() {
            if r.kind.is_condition() {
                e.condition(r.kind, 0.0, None);
            }
        }
        e.tick(t0 + Duration::from_secs(1), wall);
        let resolved = e.tick(t0 + Duration::from_secs(3600), wall);
        assert_eq!(resolved.len(), RuleKind::ALL.len());
        assert!(resolved.iter().all(|a| a.state == AlertState::Resolved));
    }
}
