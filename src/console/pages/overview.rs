//! Overview: the last hour or day at a glance.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;
use time::OffsetDateTime;

use super::{respond, window_switch, Window};
use crate::console::view::{self, Series};
use crate::console::{calls_in_progress, queries, session, Ctx, PageError};

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

async fn render(ctx: &Ctx, w: Window) -> Result<Markup, PageError> {
    let state = &ctx.state;
    let pool = state.store.pool();
    let now = OffsetDateTime::now_utc();
    let since = w.since(now);
    let counts = queries::counts(pool, since).await?;
    let (bucket, buckets) = w.bucket();
    let series = queries::series(pool, since, bucket).await?;
    let rules = queries::rules(pool, since).await?;
    let refusals = queries::refusals(pool, since).await?;
    let misses = queries::gate_misses_since(pool, since).await?;
    let sinch = queries::sinch_rejections_since(pool, since).await?;
    let limits = state.sinch.limits();
    let in_progress = calls_in_progress(&ctx.state, &ctx.console).await;

    let mut by_event: BTreeMap<String, i64> = BTreeMap::new();
    let mut by_reason: BTreeMap<String, i64> = BTreeMap::new();
    let (mut total, mut fallbacks, mut refused, mut observed, mut replays) = (0, 0, 0, 0, 0);
    for c in &counts {
        total += c.n;
        let event = if c.event_type.is_empty() {
            "(unparsed)".to_owned()
        } else {
            c.event_type.clone()
        };
        *by_event.entry(event).or_default() += c.n;
        if !c.fallback_reason.is_empty() {
            fallbacks += c.n;
            *by_reason.entry(c.fallback_reason.clone()).or_default() += c.n;
        }
        match c.gate_verdict.as_str() {
            "rejected" => refused += c.n,
            "observed" => observed += c.n,
            _ => {}
        }
        if c.reply_source == "duplicate" {
            replays += c.n;
        }
    }
    let mut by_rule: BTreeMap<String, i64> = BTreeMap::new();
    let mut warnings = 0;
    for r in &rules {
        if r.severity == "warning" {
            warnings += r.n;
        }
        if r.severity == "error" || r.severity == "warning" {
            *by_rule
                .entry(format!("{} ({})", r.code, r.severity))
                .or_default() += r.n;
        }
    }
    let signature_failures: i64 = refusals.iter().map(|(_, n)| n).sum();

    // The chart: one point per bucket, empty buckets included.
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
    for (t, n, f) in &series {
        let i = ((*t - first).whole_seconds() as f64 / step.whole_seconds() as f64).round();
        if i >= 0.0 && (i as usize) < cb.len() {
            cb[i as usize] += *n as f64;
            fb[i as usize] += *f as f64;
        }
    }

    let status = &state.recorder.status;
    let lag_records = status.lag_records();
    let lag_seconds = status.lag_seconds();
    let alerts = state.alerts.list();
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
    let title = match w {
        Window::Hour => "Overview: last hour",
        Window::Day => "Overview: last day",
    };
    let body = html! {
        (window_switch("/console", w))
        section.tiles {
            (tile("t-callbacks", "callbacks", total.to_string(), ""))
            (tile("t-fallbacks", "fallbacks", fallbacks.to_string(), if fallbacks > 0 { "warn" } else { "" }))
            (tile("t-refused", "replies refused by the gate", refused.to_string(), if refused > 0 { "warn" } else { "" }))
            (tile("t-warnings", "gate warnings", warnings.to_string(), ""))
            (tile("t-observed", "invalid replies sent (observe mode)", observed.to_string(), if observed > 0 { "warn" } else { "" }))
            (tile("t-sinch", "rejected by Sinch", sinch.to_string(), if sinch > 0 { "bad" } else { "" }))
            (tile("t-misses", "gate misses", misses.to_string(), if misses > 0 { "bad" } else { "" }))
            (tile("t-signature", "signature failures", signature_failures.to_string(), if signature_failures > 0 { "warn" } else { "" }))
            (tile("t-replays", "replays", replays.to_string(), ""))
            (tile("t-calls", &match in_progress {
                Some((_, age)) if age.as_secs() >= 1 => format!("calls in progress / cap (counted {} s ago)", age.as_secs()),
                _ => "calls in progress / cap".to_owned(),
            }, format!("{} / {}", in_progress.map(|(n, _)| n.to_string()).unwrap_or_else(|| "?".into()), limits.max_in_progress), ""))
            (tile("t-lag", "journal lag", format!("{lag_records} records, {lag_seconds:.1} s"), if lag_records > 0 && lag_seconds > 5.0 { "warn" } else { "" }))
            (tile("t-db", "database / embedded cluster", format!("{database} / {cluster}"), if database == "ok" { "" } else { "bad" }))
        }
        @if let Some(e) = &last_error { p.bad { "Shipping to PostgreSQL fails: " (e) } }
        // Firing alerts: the same list as GET /admin/alerts.
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
        section {
            h2 { "Rates" }
            (view::chart(&format!("Callbacks and fallbacks per {bucket}"), &view::time(first), "now", &[
                Series { name: "callbacks", class: "s1", values: cb },
                Series { name: "fallbacks", class: "s2", values: fb },
            ]))
        }
        div.grid {
            section { h2 { "Callbacks by event" } (table("by-event", ["event", "callbacks"], &sorted(by_event), "No callbacks in this window.")) }
            section { h2 { "Fallbacks by reason" } (table("by-reason", ["reason", "fallbacks"], &sorted(by_reason), "No fallbacks in this window.")) }
            section { h2 { "Gate findings by rule" } (table("by-rule", ["rule", "findings"], &sorted(by_rule).into_iter().take(15).collect::<Vec<_>>(), "The gate found nothing in this window."))
                p { a href=(format!("/console/gate?window={}", w.as_str())) { "Gate details" } } }
            section { h2 { "Signature failures by reason" } (table("by-refusal", ["reason", "requests"], &refusals, "No signature failures in this window.")) }
        }
    };
    Ok(view::page(title, "/console", &ctx.session.csrf, true, body))
}
