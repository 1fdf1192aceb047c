//! Overview: the last hour or day at a glance.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;
use time::OffsetDateTime;

use super::{respond, window_switch, Window};
use crate::alerts::AlertList;
use crate::app::AppState;
use crate::console::queries::{Count, RuleCount};
use crate::console::view::{self, Series};
use crate::console::{calls_in_progress, queries, session, Ctx, PageError};
use crate::events::EventKind;
use crate::outcome::{GateVerdict, ReplySource, Stored};
use crate::svaml::Severity;

/// `?window=hour|day`.
#[derive(Deserialize)]
pub struct WindowQuery {
    /// hour or day.
    pub window: Option<String>,
}

/// GET /console
pub async fn page(req: HttpRequest, q: web::Query<WindowQuery>) -> HttpResponse {
    let ctx = match session(&req) {
        Ok(c) => c,
        Err(d) => return d.into(),
    };
    respond(render(&ctx, Window::parse(q.window.as_deref())).await)
}

fn tile(id: &str, label: &str, value: String, class: &str) -> Markup {
    html! { div id=(id) class=(format!("tile {class}")) { span.value { (value) } span.label { (label) } } }
}

fn table(id: &str, head: [&str; 2], rows: &[(String, i64)], empty: &str) -> Markup {
    html! {
        @if rows.is_empty() { p.muted id=(id) { (empty) } } @else {
            table id=(id) { thead { tr { th { (head[0]) } th.num { (head[1]) } } }
                tbody { @for (k, n) in rows { tr { td { (k) } td.num { (n) } } } } }
        }
    }
}

fn sorted(map: BTreeMap<String, i64>) -> Vec<(String, i64)> {
    let mut v: Vec<_> = map.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// What the window's callbacks came to (from [`queries::counts`]).
#[derive(Debug, Default, PartialEq)]
struct Tally {
    by_event: BTreeMap<String, i64>,
    by_reason: BTreeMap<String, i64>,
    total: i64,
    fallbacks: i64,
    refused: i64,
    observed: i64,
    replays: i64,
}

/// Adds up the counts. Every vocabulary value is matched in full: a value another version wrote
/// (`Stored::Other`) is shown under its own text in the tables and counts in no tile.
fn tally(counts: &[Count]) -> Tally {
    let mut t = Tally::default();
    for c in counts {
        t.total += c.n;
        let event = match &c.event_type {
            EventKind::Unknown(name) if name.is_empty() => "(unparsed)".to_owned(),
            kind => kind.to_string(),
        };
        *t.by_event.entry(event).or_default() += c.n;
        if let Some(reason) = &c.fallback_reason {
            t.fallbacks += c.n;
            *t.by_reason.entry(reason.to_string()).or_default() += c.n;
        }
        match c.gate_verdict.as_ref().map(Stored::known) {
            Some(Some(GateVerdict::Rejected)) => t.refused += c.n,
            Some(Some(GateVerdict::Observed)) => t.observed += c.n,
            Some(Some(GateVerdict::Passed)) | Some(None) | None => {}
        }
        match c.reply_source.as_ref().map(Stored::known) {
            Some(Some(ReplySource::Duplicate)) => t.replays += c.n,
            Some(Some(
                ReplySource::Flow
                | ReplySource::Upstream
                | ReplySource::Default
                | ReplySource::Fallback
                | ReplySource::None
                | ReplySource::Error,
            ))
            | Some(None)
            | None => {}
        }
    }
    t
}

/// The gate's warnings, and its findings by "code (severity)". A severity the code does not know
/// is left out of both.
fn rule_findings(rules: &[RuleCount]) -> (i64, BTreeMap<String, i64>) {
    let mut by_rule: BTreeMap<String, i64> = BTreeMap::new();
    let mut warnings = 0;
    for r in rules {
        let severity = match r.severity.known() {
            Some(s) => s,
            None => continue,
        };
        if severity == Severity::Warning {
            warnings += r.n;
        }
        *by_rule
            .entry(format!("{} ({})", r.code, severity.as_str()))
            .or_default() += r.n;
    }
    (warnings, by_rule)
}

/// The chart's points: one per bucket, empty buckets included, from `first` on.
struct Chart {
    first: OffsetDateTime,
    callbacks: Vec<f64>,
    fallbacks: Vec<f64>,
}

fn chart(w: Window, now: OffsetDateTime, series: &[(OffsetDateTime, i64, i64)]) -> Chart {
    let (_, buckets) = w.bucket();
    let step = match w {
        Window::Hour => time::Duration::minutes(1),
        Window::Day => time::Duration::hours(1),
    };
    let first = match w {
        Window::Hour => {
            now.replace_second(0)
                .unwrap_or(now)
                .replace_nanosecond(0)
                .unwrap_or(now)
                - time::Duration::minutes(buckets - 1)
        }
        Window::Day => {
            now.replace_minute(0)
                .and_then(|t| t.replace_second(0))
                .and_then(|t| t.replace_nanosecond(0))
                .unwrap_or(now)
                - time::Duration::hours(buckets - 1)
        }
    };
    let mut cb = vec![0.0; buckets as usize];
    let mut fb = vec![0.0; buckets as usize];
    for (t, n, f) in series {
        let i = ((*t - first).whole_seconds() as f64 / step.whole_seconds() as f64).round();
        if i >= 0.0 && (i as usize) < cb.len() {
            cb[i as usize] += *n as f64;
            fb[i as usize] += *f as f64;
        }
    }
    Chart {
        first,
        callbacks: cb,
        fallbacks: fb,
    }
}

/// The recording and database side of the tiles.
struct Health {
    lag_records: u64,
    lag_seconds: f64,
    last_error: Option<String>,
    database: &'static str,
    cluster: &'static str,
}

async fn health(state: &AppState) -> Health {
    let status = &state.recorder.status;
    let last_error = status
        .last_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let database = match tokio::time::timeout(Duration::from_secs(1), state.store.ping()).await {
        Ok(Ok(())) => "ok",
        Ok(Err(_)) => "unavailable",
        Err(_) => "timeout",
    };
    let cluster = state
        .cluster
        .as_ref()
        .map(|c| c.state())
        .unwrap_or("external (DATABASE_URL)");
    Health {
        lag_records: status.lag_records(),
        lag_seconds: status.lag_seconds(),
        last_error,
        database,
        cluster,
    }
}

/// The figures of the tiles that are not in [`Tally`] or [`Health`].
struct Figures {
    warnings: i64,
    sinch: i64,
    misses: i64,
    signature_failures: i64,
    in_progress: Option<(i64, Duration)>,
    max_in_progress: u32,
}

fn warn_if(bad: bool, class: &'static str) -> &'static str {
    if bad {
        class
    } else {
        ""
    }
}

fn tiles(t: &Tally, f: &Figures, h: &Health) -> Markup {
    let calls_label = match f.in_progress {
        Some((_, age)) if age.as_secs() >= 1 => {
            format!("calls in progress / cap (counted {} s ago)", age.as_secs())
        }
        _ => "calls in progress / cap".to_owned(),
    };
    let calls = format!(
        "{} / {}",
        f.in_progress
            .map(|(n, _)| n.to_string())
            .unwrap_or_else(|| "?".into()),
        f.max_in_progress
    );
    let (lag_records, lag_seconds) = (h.lag_records, h.lag_seconds);
    html! {
        section.tiles {
            (tile("t-callbacks", "callbacks", t.total.to_string(), ""))
            (tile("t-fallbacks", "fallbacks", t.fallbacks.to_string(), warn_if(t.fallbacks > 0, "warn")))
            (tile("t-refused", "replies refused by the gate", t.refused.to_string(), warn_if(t.refused > 0, "warn")))
            (tile("t-warnings", "gate warnings", f.warnings.to_string(), ""))
            (tile("t-observed", "invalid replies sent (observe mode)", t.observed.to_string(), warn_if(t.observed > 0, "warn")))
            (tile("t-sinch", "rejected by Sinch", f.sinch.to_string(), warn_if(f.sinch > 0, "bad")))
            (tile("t-misses", "gate misses", f.misses.to_string(), warn_if(f.misses > 0, "bad")))
            (tile("t-signature", "signature failures", f.signature_failures.to_string(), warn_if(f.signature_failures > 0, "warn")))
            (tile("t-replays", "replays", t.replays.to_string(), ""))
            (tile("t-calls", &calls_label, calls, ""))
            (tile("t-lag", "journal lag", format!("{lag_records} records, {lag_seconds:.1} s"), warn_if(lag_records > 0 && lag_seconds > 5.0, "warn")))
            (tile("t-db", "database / embedded cluster", format!("{} / {}", h.database, h.cluster), warn_if(h.database != "ok", "bad")))
        }
        @if let Some(e) = &h.last_error { p.bad { "Shipping to PostgreSQL fails: " (e) } }
    }
}

/// Firing alerts: the same list as GET /admin/alerts.
fn alerts_section(alerts: &AlertList) -> Markup {
    html! {
        section #alerts {
            h2 { "Alerts" }
            @if alerts.firing.is_empty() {
                p.muted { "No alert is firing." @if alerts.webhooks == 0 { " (No webhook is configured: SVAMLGATE_ALERT_WEBHOOKS.)" } }
            } @else {
                table #firing-alerts { thead { tr { th { "rule" } th { "what" } th.num { "count" } th { "since" } th { "examples" } } }
                    tbody { @for a in &alerts.firing { tr.bad {
                        td { (a.rule.as_str()) @if !a.key.is_empty() { " (" (a.key) ")" } }
                        td { (a.summary) }
                        td.num { (a.count) }
                        td { (view::time(a.fired_at)) }
                        td { @for e in &a.examples { @if let Some(c) = &e.callid {
                            a href=(format!("/console/calls/{}", super::calls::urlencode(c))) { (c) } " "
                        } @else if let Some(r) = &e.reference {
                            a href=(format!("/console/errors?reference={}", super::calls::urlencode(r))) { (r) } " "
                        } } }
                    } } }
                }
            }
            @if let Some(last) = alerts.recent.first() {
                p.muted { "Latest: " (last.text) }
            }
        }
    }
}

fn breakdowns(
    w: Window,
    t: Tally,
    by_rule: BTreeMap<String, i64>,
    refusals: &[(String, i64)],
) -> Markup {
    html! {
        div.grid {
            section { h2 { "Callbacks by event" } (table("by-event", ["event", "callbacks"], &sorted(t.by_event), "No callbacks in this window.")) }
            section { h2 { "Fallbacks by reason" } (table("by-reason", ["reason", "fallbacks"], &sorted(t.by_reason), "No fallbacks in this window.")) }
            section { h2 { "Gate findings by rule" } (table("by-rule", ["rule", "findings"], &sorted(by_rule).into_iter().take(15).collect::<Vec<_>>(), "The gate found nothing in this window."))
                p { a href=(format!("/console/gate?window={}", w.as_str())) { "Gate details" } } }
            section { h2 { "Signature failures by reason" } (table("by-refusal", ["reason", "requests"], refusals, "No signature failures in this window.")) }
        }
    }
}

async fn render(ctx: &Ctx, w: Window) -> Result<Markup, PageError> {
    let state = &ctx.state;
    let pool = state.store.pool();
    let now = OffsetDateTime::now_utc();
    let since = w.since(now);
    let tally = tally(&queries::counts(pool, since).await?);
    let (bucket, _) = w.bucket();
    let chart = chart(w, now, &queries::series(pool, since, bucket).await?);
    let (warnings, by_rule) = rule_findings(&queries::rules(pool, since).await?);
    // A refusal reason is shown as stored, known or not.
    let refusals: Vec<(String, i64)> = queries::refusals(pool, since)
        .await?
        .into_iter()
        .map(|(reason, n)| (reason.to_string(), n))
        .collect();
    let figures = Figures {
        warnings,
        sinch: queries::sinch_rejections_since(pool, since).await?,
        misses: queries::gate_misses_since(pool, since).await?,
        signature_failures: refusals.iter().map(|(_, n)| n).sum(),
        in_progress: calls_in_progress(&ctx.state, &ctx.console).await,
        max_in_progress: state.sinch.limits().max_in_progress,
    };
    let health = health(state).await;
    let title = match w {
        Window::Hour => "Overview: last hour",
        Window::Day => "Overview: last day",
    };
    let body = html! {
        (window_switch("/console", w))
        (tiles(&tally, &figures, &health))
        (alerts_section(&state.alerts.list()))
        section {
            h2 { "Rates" }
            (view::chart(&format!("Callbacks and fallbacks per {bucket}"), &view::time(chart.first), "now", &[
                Series { name: "callbacks", class: "s1", values: chart.callbacks },
                Series { name: "fallbacks", class: "s2", values: chart.fallbacks },
            ]))
        }
        (breakdowns(w, tally, by_rule, &refusals))
    };
    Ok(view::page(title, "/console", &ctx.session.csrf, true, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::FallbackReason;

    fn count(
        event: &str,
        source: Option<&str>,
        reason: Option<&str>,
        verdict: Option<&str>,
        n: i64,
    ) -> Count {
        Count {
            event_type: EventKind::parse(event),
            reply_source: source.map(Stored::read),
            fallback_reason: reason.map(Stored::read),
            gate_verdict: verdict.map(Stored::read),
            n,
        }
    }

    #[test]
    fn the_tally_counts_known_values_and_shows_unknown_ones_as_stored() {
        let t = tally(&[
            count("ice", Some("flow"), None, Some("passed"), 5),
            count(
                "ice",
                Some("fallback"),
                Some("invalid"),
                Some("rejected"),
                2,
            ),
            count("ace", Some("flow"), None, Some("observed"), 3),
            count("pie", Some("duplicate"), None, None, 1),
            // Written by another version: counted in the total and shown, in no tile.
            count("ice", Some("cache"), Some("overload"), Some("held"), 4),
            count("", Some("error"), None, None, 1),
        ]);
        assert_eq!(
            (t.total, t.fallbacks, t.refused, t.observed, t.replays),
            (16, 6, 2, 3, 1)
        );
        assert_eq!(t.by_event.get("ice"), Some(&11));
        assert_eq!(t.by_event.get("(unparsed)"), Some(&1));
        assert_eq!(t.by_reason.get(FallbackReason::Invalid.as_str()), Some(&2));
        assert_eq!(t.by_reason.get("overload"), Some(&4));
    }

    #[test]
    fn findings_of_an_unknown_severity_are_left_out() {
        let rule = |code: &str, severity: &str, n| RuleCount {
            code: code.into(),
            severity: Stored::read(severity),
            source: "svamlgate".into(),
            gate_verdict: None,
            n,
        };
        let (warnings, by_rule) = rule_findings(&[
            rule("SVAML003", "warning", 3),
            rule("schema:enum", "error", 2),
            rule("SVAML999", "info", 7),
        ]);
        assert_eq!(warnings, 3);
        assert_eq!(by_rule.len(), 2);
        assert_eq!(by_rule.get("schema:enum (error)"), Some(&2));
    }
}
