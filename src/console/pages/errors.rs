//! Errors: paste a reference (from Sinch, a log line or a caller's ticket) and get the record
//! behind it; recent errors by code with the catalog's meaning and remedy.

use std::collections::BTreeSet;

use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::calls::urlencode;
use super::respond;
use crate::catalog;
use crate::console::view::{self, mask_json};
use crate::console::{queries, session, Ctx, PageError};
use crate::db::outbound::OutboundStore;

/// `?reference=…&code=…`.
#[derive(Deserialize, Default)]
pub struct ErrorsQuery {
    #[serde(default)]
    reference: String,
    #[serde(default)]
    code: String,
}

/// GET /console/errors
pub async fn page(req: HttpRequest, q: web::Query<ErrorsQuery>) -> HttpResponse {
    let ctx = match session(&req) {
        Ok(c) => c,
        Err(d) => return d.into(),
    };
    respond(render(&ctx, &q).await)
}

fn catalog_line(code: u32) -> Markup {
    html! {
        @if let Some(info) = catalog::lookup(code) {
            span.meaning { (info.meaning) } br; small { "What to do: " (info.remedy) }
        } @else { span.muted { "Not in the catalog." } }
    }
}

/// The record(s) behind a reference: an error, a callback, an outbound request.
async fn lookup(ctx: &Ctx, reference: &str) -> Result<Markup, PageError> {
    let pool = ctx.state.store.pool();
    let error = ctx.state.store.get_error(reference).await?;
    let callback = queries::callback_by_reference(pool, reference).await?;
    let outbound = OutboundStore::new(pool.clone())
        .request_by_reference(reference)
        .await?;
    let error_call = match error.as_ref().and_then(|e| e.callback_id) {
        Some(id) => queries::callid_of(pool, id).await?,
        None => None,
    };
    let found = error.is_some() || callback.is_some() || outbound.is_some();
    Ok(html! {
        section #record {
            @if !found {
                p.bad #not-found { "Nothing is recorded under " code { (reference) } ". A reference is the "
                    code { "reference" } " of an error envelope, the " code { "x-svamlgate-reference" }
                    " header of a callback's answer, or the reference of a request to Sinch." }
            }
            @if let Some(e) = &error {
                h2 { "Error " (e.error_code) " · " (e.status) }
                dl {
                    dt { "When" } dd { (view::time(e.occurred_at)) }
                    dt { "Message sent" } dd #error-message { (e.message) }
                    dt { "Meaning" } dd { (catalog_line(e.error_code.max(0) as u32)) }
                    dt { "Request" } dd { (e.method.as_deref().unwrap_or("")) " " (e.path.as_deref().unwrap_or("")) }
                    dt { "Peer" } dd { (e.remote_addr.as_deref().unwrap_or("–")) }
                    @if let Some(c) = &error_call { dt { "Call" } dd { a href=(format!("/console/calls/{}", urlencode(c))) { (c) } } }
                }
                @if let Some(d) = &e.detail { h3 { "Detail (never sent to the client)" } (view::json(&mask_json(d), &BTreeSet::new())) }
                @if let Some(r) = &e.refusal { h3 { "Refused signature" } (view::json(&mask_json(&serde_json::to_value(r).unwrap_or(Value::Null)), &BTreeSet::new())) }
            }
            @if let Some((_, callid, event, at)) = &callback {
                h2 { "Callback" }
                p { (event) " received " (view::time(*at))
                    @if let Some(c) = callid { " · call " a #callback-call href=(format!("/console/calls/{}", urlencode(c))) { (c) } } }
            }
            @if let Some(r) = &outbound {
                h2 { "Request to Sinch" }
                p { (r.operation) " · " (r.outcome)
                    @if let Some(c) = &r.callid { " · call " a href=(format!("/console/calls/{}", urlencode(c))) { (c) } } }
                @if let Some(code) = r.error_code.and_then(|c| u32::try_from(c).ok()) { p { "Sinch error " (code) ": " (catalog_line(code)) } }
                details { summary { "As recorded" } (view::json(&mask_json(&serde_json::to_value(r).unwrap_or(Value::Null)), &BTreeSet::new())) }
            }
        }
    })
}

async fn render(ctx: &Ctx, q: &ErrorsQuery) -> Result<Markup, PageError> {
    let pool = ctx.state.store.pool();
    let reference = q.reference.trim();
    let record = if reference.is_empty() {
        None
    } else {
        Some(lookup(ctx, reference).await?)
    };
    let since = OffsetDateTime::now_utc() - time::Duration::days(1);
    let by_code = queries::errors_by_code(pool, since).await?;
    let code: Option<i32> = q.code.trim().parse().ok();
    let recent = queries::recent_errors(pool, code, 20).await?;
    let body = html! {
        form.lookup method="get" action="/console/errors" {
            label for="reference" { "Reference" }
            input type="text" id="reference" name="reference" value=(reference) placeholder="paste a reference" required;
            button type="submit" id="lookup" { "Look up" }
        }
        @if let Some(r) = record { (r) }
        section {
            h2 { "Errors of the last day by code" }
            @if by_code.is_empty() { p.muted { "No errors in the last day." } } @else {
                table #by-code { thead { tr { th { "code" } th.num { "count" } th { "latest" } th { "meaning" } } }
                    tbody { @for (c, n, last) in &by_code { tr {
                        td { a href=(format!("/console/errors?code={c}")) { (c) } " " (catalog::lookup(*c as u32).map(|i| i.status_name).unwrap_or("")) }
                        td.num { (n) } td { (view::time(*last)) } td { (catalog_line(*c as u32)) }
                    } } } }
            }
        }
        section {
            h2 { "Latest errors" @if let Some(c) = code { " with code " (c) } }
            @if recent.is_empty() { p.muted { "None." } } @else {
                table #recent { thead { tr { th { "when" } th { "code" } th { "message" } th { "request" } th { "reference" } } }
                    tbody { @for e in &recent { tr {
                        td { (view::time(e.occurred_at)) } td { (e.error_code) } td { (e.message) }
                        td { (e.path.as_deref().unwrap_or(""))
                             @if let Some(c) = &e.callid { " · " a href=(format!("/console/calls/{}", urlencode(c))) { (c) } } }
                        td { a href=(format!("/console/errors?reference={}", urlencode(&e.reference))) { code { (e.reference) } } }
                    } } } }
            }
        }
    };
    Ok(view::page(
        "Errors",
        "/console/errors",
        &ctx.session.csrf,
        false,
        body,
    ))
}
