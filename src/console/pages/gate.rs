//! Gate: refusals and warnings by rule with the rule's Sinch source, the gate misses (replies the
//! gate passed and Sinch rejected), and a form that validates a pasted reply as the gate would.

use std::collections::BTreeSet;

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::calls::urlencode;
use super::overview::WindowQuery;
use super::{respond, window_switch, Window};
use crate::console::view::{self, mask_json};
use crate::console::{check_csrf, queries, session, Ctx, PageError};
use crate::outcome::{GateVerdict, Stored};
use crate::svaml::{Mode, Target};

/// GET /console/gate
pub async fn page(req: HttpRequest, q: web::Query<WindowQuery>) -> HttpResponse {
    let ctx = match session(&req) {
        Ok(c) => c,
        Err(d) => return d.into(),
    };
    let w = Window::parse(q.window.as_deref());
    respond(render(&ctx, w, None).await)
}

/// The validation form.
#[derive(Deserialize)]
pub struct ValidateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    strict: Option<String>,
    #[serde(default)]
    reply: String,
}

/// POST /console/gate/validate
pub async fn validate(req: HttpRequest, form: web::Form<ValidateForm>) -> HttpResponse {
    let ctx = match session(&req) {
        Ok(c) => c,
        Err(d) => return d.into(),
    };
    if let Err(e) = check_csrf(&ctx, &form.csrf) {
        return e.error_response();
    }
    respond(render(&ctx, Window::Hour, Some(&*form)).await)
}

const EXAMPLE: &str = r#"{
  "instructions": [{"name": "say", "text": "Hello", "locale": "en-US"}],
  "action": {"name": "hangup"}
}"#;

fn validation(ctx: &Ctx, form: &ValidateForm) -> Markup {
    let target: Result<Target, _> = form.event.parse();
    let parsed: Result<Value, _> = serde_json::from_str(&form.reply);
    html! {
        section #validation {
            h2 { "Result" }
            @match (target, parsed) {
                (Err(_), _) => { p.bad { "Choose the event the reply answers: ice, ace, pie or manage." } }
                (_, Err(e)) => { p.bad #not-json { "Not JSON: " (e.to_string()) } }
                (Ok(t), Ok(doc)) => {
                    @let mode = if form.strict.is_some() { Mode::Strict } else { Mode::Normal };
                    @let report = ctx.state.gate.validator().check(t, &doc, mode).masked();
                    @let report = serde_json::to_value(&report).unwrap_or(Value::Null);
                    @let shown = mask_json(&doc);
                    (view::report(&report))
                    (view::json(&shown, &view::violation_pointers(&report, &shown)))
                }
            }
        }
    }
}

/// What happened to the replies a rule's findings belong to. A verdict another version wrote is
/// shown as stored; none (the count table's empty text) as nothing.
fn verdict_label(verdict: Option<&Stored<GateVerdict>>) -> &str {
    match verdict {
        Some(Stored::Known(GateVerdict::Rejected)) => "refused (fallback sent)",
        Some(Stored::Known(GateVerdict::Observed)) => "sent anyway (observe)",
        Some(Stored::Known(GateVerdict::Passed)) => "passed",
        Some(Stored::Other(text)) => text,
        None => "",
    }
}

async fn render(ctx: &Ctx, w: Window, form: Option<&ValidateForm>) -> Result<Markup, PageError> {
    let pool = ctx.state.store.pool();
    let since = w.since(OffsetDateTime::now_utc());
    let rules = queries::rules(pool, since).await?;
    let misses = ctx.state.store.gate_misses(20).await?;
    let event = form.map(|f| f.event.as_str()).unwrap_or("ice");
    let body = html! {
        (window_switch("/console/gate", w))
        section {
            h2 { "Findings by rule" }
            @if rules.is_empty() { p.muted #no-findings { "The gate found nothing in this window." } } @else {
                table #rules { thead { tr { th { "rule" } th { "severity" } th { "reply" } th.num { "findings" } th { "source" } } }
                    tbody { @for r in &rules { tr {
                        td { code { (r.code) } } td { span class=(format!("sev-{}", r.severity)) { (r.severity) } }
                        td { (verdict_label(r.gate_verdict.as_ref())) }
                        td.num { (r.n) } td { (view::source(&r.source)) }
                    } } } }
            }
        }
        section {
            h2 { "Gate misses: replies the gate passed and Sinch rejected" }
            @if misses.is_empty() { p.muted #no-misses { "None: Sinch has rejected no reply the gate passed." } } @else {
                table #misses { thead { tr { th { "received" } th { "call" } th { "event" } th { "source" } th { "Sinch said" } } }
                    tbody { @for m in &misses { tr {
                        td { (view::time(m.received_at)) }
                        td { @if let Some(c) = &m.callid { a href=(format!("/console/calls/{}", urlencode(c))) { (c) } } }
                        td { (m.event_type) } td { (m.reply_source.as_ref().map(|s| s.as_str()).unwrap_or("")) }
                        td { @if let Some(s) = &m.rejected_by_sinch {
                            (s.get("kind").and_then(Value::as_str).unwrap_or("")) " "
                            (s.get("errorCode").filter(|v| !v.is_null()).map(Value::to_string).unwrap_or_default()) " "
                            (s.get("message").and_then(Value::as_str).unwrap_or(""))
                            (s.get("reason").and_then(Value::as_str).unwrap_or("")) } }
                    }
                    @if let Some(reply) = &m.reply { tr.detail { td colspan="5" { details { summary { "The reply" } (view::json(&mask_json(reply), &BTreeSet::new())) } } } }
                    } } }
            }
        }
        section {
            h2 { "Validate a reply" }
            form.validate method="post" action="/console/gate/validate" {
                input type="hidden" name="csrf" value=(ctx.session.csrf);
                label { "Event " select name="event" id="event" {
                    @for t in ["ice", "ace", "pie", "manage"] { option value=(t) selected[event == t] { (t) } }
                } }
                label { input type="checkbox" name="strict" value="true" checked[form.is_some_and(|f| f.strict.is_some())]; " strict" }
                textarea name="reply" id="reply" rows="10" spellcheck="false" { (form.map(|f| f.reply.as_str()).unwrap_or(EXAMPLE)) }
                button type="submit" id="validate" { "Validate" }
            }
            @if let Some(f) = form { (validation(ctx, f)) }
        }
    };
    Ok(view::page(
        "Gate",
        "/console/gate",
        &ctx.session.csrf,
        false,
        body,
    ))
}
