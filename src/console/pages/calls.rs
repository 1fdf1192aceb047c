//! Calls: the search, and one call as a vertical timeline (each event with its reply, source,
//! latency, the gate's report with the violating pointers marked, Sinch's verdicts), the outbound
//! requests, the troubleshooting checklist and a replay command per event.

use std::collections::BTreeSet;

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::respond;
use crate::console::queries::{self, Search, OUTCOMES};
use crate::console::view::{self, copy_button, mask_json, number};
use crate::console::{check_csrf, session, CsrfForm, Ctx, PageError};
use crate::db::outbound::{OutboundRequest, OutboundStore};
use crate::db::store::{RejectedReply, StoredCallback};
use crate::diagnosis::Diagnosis;
use crate::outcome::Stored;

/// Rows a search shows.
pub const SEARCH_LIMIT: i64 = 50;

/// The search form.
#[derive(Deserialize, Default)]
pub struct SearchQuery {
    #[serde(default)]
    callid: String,
    #[serde(default)]
    called: String,
    #[serde(default)]
    caller: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    outcome: String,
}

fn some(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// Reads `2026-11-25T10:00` (a datetime-local input, taken as UTC), or any ISO-8601 timestamp.
fn parse_time(s: &str) -> Result<Option<OffsetDateTime>, PageError> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let fmt_s = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    if let Ok(p) = time::PrimitiveDateTime::parse(t, &fmt) {
        return Ok(Some(p.assume_utc()));
    }
    if let Ok(p) = time::PrimitiveDateTime::parse(t, &fmt_s) {
        return Ok(Some(p.assume_utc()));
    }
    crate::timestamp::parse(t).map(Some).ok_or_else(|| {
        PageError(crate::error::ApiError::new(
            crate::catalog::code::PARAMETER_VALIDATION,
            format!("Not a time: {t} (use 2026-11-25T10:00, UTC)"),
        ))
    })
}

/// GET /console/calls
pub async fn search(req: HttpRequest, q: web::Query<SearchQuery>) -> HttpResponse {
    let ctx = match session(&req) {
        Ok(c) => c,
        Err(d) => return d.into(),
    };
    respond(render_search(&ctx, &q).await)
}

async fn render_search(ctx: &Ctx, q: &SearchQuery) -> Result<Markup, PageError> {
    let s = Search {
        callid: some(&q.callid),
        called: some(&q.called),
        caller: some(&q.caller),
        from: parse_time(&q.from)?,
        until: parse_time(&q.until)?,
        outcome: some(&q.outcome).filter(|o| OUTCOMES.iter().any(|(k, _)| *k == o.as_str())),
    };
    let found = queries::search(ctx.state.store.pool(), &s, SEARCH_LIMIT).await?;
    let filtered = s.callid.is_some()
        || s.called.is_some()
        || s.caller.is_some()
        || s.from.is_some()
        || s.until.is_some()
        || s.outcome.is_some();
    let body = html! {
        form.search method="get" action="/console/calls" {
            label { "Call id" input type="text" name="callid" value=(q.callid); }
            label { "Called number" input type="text" name="called" value=(q.called) placeholder="+46700000000"; }
            label { "Caller number" input type="text" name="caller" value=(q.caller) placeholder="+46708168731"; }
            label { "From (UTC)" input type="datetime-local" name="from" value=(q.from); }
            label { "Until (UTC)" input type="datetime-local" name="until" value=(q.until); }
            label { "Outcome" select name="outcome" {
                option value="" { "any" }
                @for (k, label) in OUTCOMES { option value=(k) selected[q.outcome == k] { (label) } }
            } }
            button type="submit" id="search" { "Search" }
        }
        p.muted { @if filtered { (found.len()) " callback(s) found" @if found.len() as i64 == SEARCH_LIMIT { " (the newest " (SEARCH_LIMIT) ")" } "." }
                  @else { "The newest callbacks. Numbers are masked as in the logs; search with the full number." } }
        @if !found.is_empty() {
            table #results {
                thead { tr { th { "received" } th { "event" } th { "call" } th { "caller" } th { "called" } th { "reply" } th { "gate" } } }
                tbody {
                    @for f in &found {
                        tr class=[f.fallback_reason.as_ref().map(|_| "fallback")] {
                            td { (view::time(f.received_at)) }
                            td { span.event { (f.event_type) } }
                            td { @if let Some(c) = &f.callid { a href=(format!("/console/calls/{}", urlencode(c))) { (c) } } }
                            td { (f.caller.as_deref().map(|n| number(n, false)).unwrap_or_default()) }
                            td { (f.called.as_deref().map(|n| number(n, false)).unwrap_or_default()) }
                            td { (f.reply_source.as_ref().map_or("–", Stored::as_str))
                                 @if let Some(r) = &f.fallback_reason { " (" (r) ")" } }
                            td { (f.gate_verdict.as_ref().map_or("–", Stored::as_str))
                                 @if f.rejected_by_sinch { " · " span.bad { "rejected by Sinch" } } }
                        }
                    }
                }
            }
        }
    };
    Ok(view::page(
        "Calls",
        "/console/calls",
        &ctx.session.csrf,
        false,
        body,
    ))
}

/// Percent-encodes a path segment.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// GET /console/calls/{callid}
pub async fn call(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let ctx = match session(&req) {
        Ok(c) => c,
        Err(d) => return d.into(),
    };
    respond(render_call(&ctx, &path.into_inner(), false).await)
}

/// POST /console/calls/{callid}/reveal: the same page with the numbers in clear (logged).
pub async fn reveal(
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let ctx = match session(&req) {
        Ok(c) => c,
        Err(d) => return d.into(),
    };
    if let Err(e) = check_csrf(&ctx, &form.csrf) {
        return e.error_response();
    }
    let callid = path.into_inner();
    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    tracing::info!(callid = %callid, peer = %peer, "console: an operator revealed the numbers of a call");
    respond(render_call(&ctx, &callid, true).await)
}

fn str_of<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

/// The shell command that signs an event with the application's key and sends it to the local
/// svamlgate. The body is single-quoted for `sh` (a `'` becomes `'\''`), so nothing in it runs.
fn replay_command(body: &str, callback_path: &str, listen: &str) -> String {
    let quoted = body.replace('\'', "'\\''");
    format!(
        "printf '%s' '{quoted}' | svamlgate sign --path {callback_path} --send http://{listen} -"
    )
}

fn source_line(e: &StoredCallback) -> Markup {
    html! {
        span.source {
            (e.reply_source.as_ref().map(|s| s.as_str()).unwrap_or("no reply"))
            @if let Some(id) = e.flow_id {
                " · flow " a href=(format!("/console/flows/{id}{}", e.flow_version.map(|v| format!("?version={v}")).unwrap_or_default())) {
                    (id) @if let Some(v) = e.flow_version { " v" (v) } }
                @if let Some(n) = &e.flow_node { " node " code { (n) } }
            }
            @if let Some(r) = e.route_id { " · route " (r) }
            @if let Some(reason) = &e.fallback_reason { " · " span.bad { "fallback: " (reason) } }
        }
    }
}

/// A recorded value as the page shows it: masked unless the operator revealed the numbers.
fn shown(v: &Value, reveal: bool) -> Value {
    if reveal {
        v.clone()
    } else {
        mask_json(v)
    }
}

/// The call's troubleshooting checklist, with the calls in progress as the console counted them.
async fn diagnose_call(ctx: &Ctx, callid: &str) -> Result<Option<Diagnosis>, PageError> {
    let state = &ctx.state;
    let mut facts =
        crate::diagnosis::gather_counting(state.store.pool(), callid, state.sinch.limits(), false)
            .await?;
    if let Some(f) = &mut facts {
        f.in_progress = crate::console::calls_in_progress(&ctx.state, &ctx.console)
            .await
            .map(|(n, _)| n);
    }
    Ok(facts.map(|f| crate::diagnosis::diagnose(&f)))
}

/// One replay command per event (none for a replay or an event without a body): the raw body
/// as received where it is kept, masked unless revealed.
async fn replay_commands(
    ctx: &Ctx,
    events: &[StoredCallback],
    reveal: bool,
) -> Result<Vec<Option<String>>, PageError> {
    let state = &ctx.state;
    let listen = state.config.listen.to_string();
    let mut replays = Vec::with_capacity(events.len());
    for e in events {
        let raw = if e.duplicate_of.is_none() && e.body.is_some() {
            queries::raw_body(state.store.pool(), e.id).await?
        } else {
            None
        };
        let body = raw
            .and_then(|b| String::from_utf8(b).ok())
            .or_else(|| e.body.as_ref().map(Value::to_string));
        replays.push(body.map(|b| {
            let b = if reveal {
                b
            } else {
                serde_json::from_str::<Value>(&b)
                    .map(|v| mask_json(&v).to_string())
                    .unwrap_or_else(|_| crate::redact::mask_numbers_in(&b))
            };
            replay_command(&b, &state.config.callback_path, &listen)
        }));
    }
    Ok(replays)
}

fn call_head(
    ctx: &Ctx,
    callid: &str,
    (events, outbound): (usize, usize),
    reveal: bool,
    diagnosis: Option<&Diagnosis>,
) -> Markup {
    html! {
        section.callhead {
            p { "Call " code #callid { (callid) } " · " (events) " callback(s) · " (outbound) " outbound request(s)"
                @if reveal { " · " span.warn #revealed { "numbers revealed (logged)" } } }
            @if !reveal {
                form method="post" action=(format!("/console/calls/{}/reveal", urlencode(callid))) {
                    input type="hidden" name="csrf" value=(ctx.session.csrf);
                    button type="submit" id="reveal" { "Reveal numbers" }
                    span.muted { " Numbers are masked as in the logs; revealing them is logged." }
                }
            }
            @if let Some(d) = diagnosis { p #summary class=(if d.failing_step.is_some() { "summary bad" } else { "summary ok" }) { (d.summary) } }
        }
    }
}

/// A reply the gate refused, with its report.
fn refused_reply(r: &RejectedReply, reveal: bool) -> Markup {
    html! {
        div.refused {
            h3 { "Refused reply (from " (r.source) "), error reference "
                a href=(format!("/console/errors?reference={}", urlencode(&r.reference))) { (r.reference) } }
            @let report = &r.report;
            @if let Some(reply) = r.reply.as_ref().filter(|v| !v.is_null()) {
                @let shown = shown(reply, reveal);
                (view::json(&shown, &view::violation_pointers(report, &shown)))
            } @else if let Some(raw) = &r.raw_reply {
                pre.json { (if reveal { raw.to_owned() } else { crate::redact::mask_numbers_in(raw) }) }
            }
            (view::report(report))
        }
    }
}

/// The reply that went out, its violations marked unless a refused reply shows them already.
fn reply_sent(e: &StoredCallback, reply: &Value, any_refused: bool, reveal: bool) -> Markup {
    html! {
        div.reply {
            h3 { @if e.fallback_reason.is_some() { "Fallback sent instead" } @else { "Reply sent" } }
            @let shown = shown(reply, reveal);
            @let marks = if any_refused { BTreeSet::new() } else { e.validation.as_ref().map(|v| view::violation_pointers(v, &shown)).unwrap_or_default() };
            (view::json(&shown, &marks))
            @if !any_refused { @if let Some(v) = &e.validation { details { summary { "Validation report" } (view::report(v)) } } }
        }
    }
}

/// One event of the timeline: what happened, Sinch's verdict, refused and sent replies, the
/// event itself and its replay command.
fn timeline_entry(
    i: usize,
    e: &StoredCallback,
    rejected: &[RejectedReply],
    replay: Option<&String>,
    reveal: bool,
) -> Markup {
    let refused: Vec<&RejectedReply> = rejected.iter().filter(|r| r.callback_id == e.id).collect();
    html! {
        li id=(format!("ev-{i}")) class=(if e.fallback_reason.is_some() { "ev fallback" } else { "ev" }) {
            div.when { (view::time(e.received_at)) }
            div.what {
                span.event { (e.event_type) }
                " " (source_line(e))
                " · " (view::latency(e.latency_us))
                " · HTTP " (e.http_status.map(|s| s.to_string()).unwrap_or_else(|| "–".into()))
                @if let Some(v) = &e.gate_verdict { " · gate " span class=(format!("verdict-{v}")) { (v) } }
                @if e.duplicate_of.is_some() { " · " span.muted { "replay of an earlier event" } }
                " · " small.muted { "ref " (e.reference) }
            }
            @if let Some(s) = &e.rejected_by_sinch {
                div.sinch.bad { "Sinch rejected this reply: "
                    (str_of(s, "kind").unwrap_or("")) " "
                    (s.get("errorCode").map(Value::to_string).unwrap_or_default()) " "
                    (str_of(s, "message").unwrap_or("")) " "
                    (str_of(s, "reason").unwrap_or("")) " " (str_of(s, "result").unwrap_or("")) }
            }
            @for r in &refused { (refused_reply(r, reveal)) }
            @if let Some(reply) = &e.reply { (reply_sent(e, reply, !refused.is_empty(), reveal)) }
            @if let Some(b) = &e.body {
                details.body { summary { "Event as received" } (view::json(&shown(b, reveal), &BTreeSet::new())) }
            }
            @if let Some(cmd) = replay {
                details.replay { summary { "Replay this event locally" }
                    pre id=(format!("replay-{i}")) { (cmd) }
                    (copy_button(&format!("replay-{i}")))
                    p.muted { "Needs SINCH_APPLICATION_KEY and SINCH_APPLICATION_SECRET in the environment."
                        @if !reveal { " The numbers are masked here: reveal them for an exact replay." } }
                }
            }
        }
    }
}

fn verdicts_section(events: &[StoredCallback], reveal: bool) -> Markup {
    let sinch_verdicts: Vec<&StoredCallback> = events
        .iter()
        .filter(|e| e.rejected_by_sinch.is_some())
        .collect();
    html! {
        section #verdicts {
            h2 { "Sinch's verdicts" }
            @if sinch_verdicts.is_empty() { p.muted { "Sinch reported no problem with a reply of this call." } }
            @else { ul { @for e in &sinch_verdicts { li { (e.event_type) " reply of " (view::time(e.received_at)) ": "
                (e.rejected_by_sinch.as_ref().map(|v| shown(v, reveal).to_string()).unwrap_or_default()) } } } }
        }
    }
}

fn outbound_section(outbound: &[OutboundRequest], reveal: bool) -> Markup {
    html! {
        section #outbound {
            h2 { "Outbound requests to Sinch" }
            @if outbound.is_empty() { p.muted { "svamlgate sent no request to Sinch about this call." } }
            @else {
                table {
                    thead { tr { th { "created" } th { "operation" } th { "outcome" } th { "HTTP" } th { "Sinch error" } th { "reference" } } }
                    tbody { @for r in outbound { tr {
                        td { (view::time(r.created_at)) }
                        td { (r.operation) }
                        td { (r.outcome) }
                        td { (r.http_status.map(|s| s.to_string()).unwrap_or_default()) }
                        td { (r.error_code.map(|c| c.to_string()).unwrap_or_default()) " " (r.error_message.as_deref().unwrap_or("")) }
                        td { code { (r.reference) } }
                    } } }
                }
                details { summary { "Requests as recorded" } (view::json(&shown(&serde_json::to_value(outbound).unwrap_or(Value::Null), reveal), &BTreeSet::new())) }
            }
        }
    }
}

fn checklist_section(diagnosis: Option<&Diagnosis>) -> Markup {
    html! {
        section #diagnosis {
            h2 { "Troubleshooting checklist" }
            @if let Some(d) = diagnosis {
                ol.checklist { @for s in &d.steps {
                    li class=(format!("step-{}", s.status.as_str())) {
                        span.status { (s.status.as_str()) } " " strong { (s.title) }
                        @if !s.evidence.is_empty() { ul { @for ev in &s.evidence { li { (ev) } } } }
                        p.next { "Next: " (s.next) }
                    }
                } }
            } @else { p.muted { "Nothing recorded to diagnose." } }
        }
    }
}

async fn render_call(ctx: &Ctx, callid: &str, reveal: bool) -> Result<Markup, PageError> {
    let state = &ctx.state;
    let events = state.store.call_timeline(callid).await?;
    let rejected = state.store.rejected_replies_for_call(callid).await?;
    let outbound = OutboundStore::new(state.store.pool().clone())
        .requests_for_call(callid)
        .await?;
    if events.is_empty() && outbound.is_empty() {
        return Err(PageError(crate::error::ApiError::not_found(format!(
            "No events or outbound requests recorded for call {callid}"
        ))));
    }
    let diagnosis = diagnose_call(ctx, callid).await?;
    let replays = replay_commands(ctx, &events, reveal).await?;
    let body = html! {
        (call_head(ctx, callid, (events.len(), outbound.len()), reveal, diagnosis.as_ref()))
        section {
            h2 { "Timeline" }
            ol.timeline #timeline {
                @for (i, (e, replay)) in events.iter().zip(&replays).enumerate() {
                    (timeline_entry(i, e, &rejected, replay.as_ref(), reveal))
                }
            }
        }
        (verdicts_section(&events, reveal))
        (outbound_section(&outbound, reveal))
        (checklist_section(diagnosis.as_ref()))
    };
    Ok(view::page(
        &format!("Call {callid}"),
        "/console/calls",
        &ctx.session.csrf,
        false,
        body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replay_command_quotes_the_body_for_sh() {
        let cmd = replay_command(
            r#"{"custom":"it's $(rm -rf /)"}"#,
            "/sinch/callback",
            "127.0.0.1:8080",
        );
        assert_eq!(
            cmd,
            r#"printf '%s' '{"custom":"it'\''s $(rm -rf /)"}' | svamlgate sign --path /sinch/callback --send http://127.0.0.1:8080 -"#
        );
    }

    #[test]
    fn times_from_the_form() {
        assert!(parse_time("").unwrap().is_none());
        assert_eq!(
            parse_time("2026-11-25T10:00")
                .unwrap()
                .map(|t| t.unix_timestamp()),
            Some(1795600800)
        );
        assert!(parse_time("yesterday").is_err());
    }
}
