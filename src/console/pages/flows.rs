//! Flows and routes: the flows with their versions, a version as an indented tree of nodes and
//! transitions, the diff of two versions, the simulator, and the routes with their targets.

use std::collections::{BTreeSet, HashSet};

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use super::respond;
use crate::console::view::{self, mask_json};
use crate::console::{check_csrf, session, Ctx, PageError};
use crate::error::ApiError;
use crate::flows::engine::{self, Stage};
use crate::flows::model::FlowDoc;
use crate::flows::render::EventContext;
use crate::flows::routes::RouteTarget;
use crate::svaml::Target;

/// GET /console/flows
pub async fn list(req: HttpRequest) -> HttpResponse {
    let ctx = match session(&req) {
        Ok(c) => c,
        Err(d) => return d.into(),
    };
    respond(render_list(&ctx).await)
}

async fn render_list(ctx: &Ctx) -> Result<Markup, PageError> {
    let flows = ctx.state.store.list_flows().await?;
    let routes = ctx.state.store.list_routes().await?;
    let body = html! {
        section {
            h2 { "Flows" }
            @if flows.is_empty() { p.muted { "No flows. Create one with POST /admin/flows." } } @else {
                table #flows { thead { tr { th { "id" } th { "name" } th.num { "current version" } th { "updated" } } }
                    tbody { @for f in &flows { tr {
                        td { (f.id) } td { a href=(format!("/console/flows/{}", f.id)) { (f.name) } }
                        td.num { (f.current_version) } td { (view::time(f.updated_at)) }
                    } } } }
            }
        }
        section {
            h2 { "Routes" }
            p.muted { "Among the routes that match a call, one for its called number wins over one for any number, then the longer caller prefix, then the higher priority, then the older route." }
            @if routes.is_empty() { p.muted { "No routes: every call gets the default replies." } } @else {
                table #routes { thead { tr { th { "id" } th { "name" } th { "called" } th { "caller prefix" } th.num { "priority" } th { "target" } th { "gate" } } }
                    tbody { @for r in &routes { tr {
                        td { (r.id) } td { (r.name) }
                        td { (r.called.as_deref().unwrap_or("any (default route)")) }
                        td { (r.caller_prefix.as_deref().unwrap_or("any")) }
                        td.num { (r.priority) }
                        td { @match &r.target {
                            RouteTarget::Flow { flow_id } => { "flow " a href=(format!("/console/flows/{flow_id}")) { (flow_id) }
                                @if let Some(f) = flows.iter().find(|f| f.id == *flow_id) { " (" (f.name) ")" } }
                            RouteTarget::Upstream { url, timeout_ms, .. } => { "upstream " code { (url) }
                                @if let Some(t) = timeout_ms { " (" (t) " ms)" } }
                        } }
                        td { (r.gate_mode.map(|m| m.as_str()).unwrap_or("default")) }
                    } } } }
            }
        }
    };
    Ok(view::page(
        "Flows and routes",
        "/console/flows",
        &ctx.session.csrf,
        false,
        body,
    ))
}

/// `?version=N`.
#[derive(Deserialize)]
pub struct VersionQuery {
    version: Option<String>,
}

/// GET /console/flows/{id}
pub async fn flow(
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<VersionQuery>,
) -> HttpResponse {
    let ctx = match session(&req) {
        Ok(c) => c,
        Err(d) => return d.into(),
    };
    let version = q.version.as_deref().and_then(|v| v.parse().ok());
    respond(render_flow(&ctx, &path, version, None).await)
}

fn flow_id(s: &str) -> Result<i64, PageError> {
    s.parse()
        .ok()
        .filter(|id: &i64| *id > 0)
        .ok_or_else(|| PageError(ApiError::not_found(format!("No flow {s}"))))
}

fn node_summary(n: &crate::flows::model::Node) -> String {
    let instructions: Vec<&str> = n
        .instructions
        .as_ref()
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("name").and_then(Value::as_str))
        .collect();
    let action = n.action.get("name").and_then(Value::as_str).unwrap_or("?");
    if instructions.is_empty() {
        action.to_owned()
    } else {
        format!("{} → {action}", instructions.join(", "))
    }
}

/// The flow as an indented tree from `start` (and the ACE and fallback nodes), following `next`;
/// a node met again is a link up, not a new subtree.
fn tree(flow: &FlowDoc) -> Markup {
    fn walk(flow: &FlowDoc, id: &str, seen: &mut HashSet<String>) -> Markup {
        let node = flow.nodes.get(id);
        let first = seen.insert(id.to_owned());
        html! {
            span.node { code { (id) } }
            @match node {
                None => { " " span.bad { "(missing node)" } }
                Some(n) if first => {
                    " " span.muted { (node_summary(n)) }
                    @if !n.description.is_empty() { " — " (n.description) }
                    @if !n.next.is_empty() {
                        ul { @for (on, to) in &n.next { li { span.on { "on " code { (on) } } " → " (walk(flow, to, seen)) } } }
                    }
                }
                Some(_) => { " " span.muted { "(shown above)" } }
            }
        }
    }
    let mut seen = HashSet::new();
    let mut roots = vec![("ICE", flow.start.clone())];
    if let Some(a) = &flow.ace {
        roots.push(("ACE", a.clone()));
    }
    if let Some(f) = &flow.fallback_node {
        roots.push(("unhandled PIE", f.clone()));
    }
    let reachable = flow.reachable();
    let unreachable: Vec<&String> = flow
        .nodes
        .keys()
        .filter(|k| !reachable.contains(k.as_str()))
        .collect();
    html! {
        ul.tree #tree {
            @for (label, id) in &roots { li { span.on { (label) } " → " (walk(flow, id, &mut seen)) } }
        }
        @if !unreachable.is_empty() { p.warn { "Unreachable nodes: " @for u in &unreachable { code { (u) } " " } } }
    }
}

const SAMPLE_EVENT: &str = r#"{"event": "ice", "callid": "simulated-1", "version": 1,
 "cli": "46708168731", "to": {"type": "did", "endpoint": "+46700000000"}}"#;

async fn render_flow(
    ctx: &Ctx,
    id: &str,
    version: Option<i32>,
    sim: Option<(&SimulateForm, Markup)>,
) -> Result<Markup, PageError> {
    let id = flow_id(id)?;
    let store = &ctx.state.store;
    let Some(summary) = store.get_flow(id).await? else {
        return Err(PageError(ApiError::not_found(format!("No flow {id}"))));
    };
    let Some((version, document)) = store.flow_document(id, version).await? else {
        return Err(PageError(ApiError::not_found(format!(
            "Flow {id} has no such version"
        ))));
    };
    let versions = store.flow_versions(id).await?;
    let parsed: Option<FlowDoc> = serde_json::from_value(document.clone()).ok();
    let previous = versions.iter().copied().filter(|v| *v < version).max();
    let form = sim.as_ref().map(|(f, _)| *f);
    let body = html! {
        p { "Flow " (id) " · current version " (summary.current_version) " · versions: "
            @for v in &versions { a href=(format!("/console/flows/{id}?version={v}")) class=[(*v == version).then_some("active")] { "v" (v) } " " } }
        @if let Some(p) = previous { p { a #diff-link href=(format!("/console/flows/{id}/diff?a={p}&b={version}")) { "Diff v" (p) " → v" (version) } } }
        form.diff method="get" action=(format!("/console/flows/{id}/diff")) {
            "Diff " select name="a" { @for v in &versions { option value=(v) selected[Some(*v) == previous] { "v" (v) } } }
            " → " select name="b" { @for v in &versions { option value=(v) selected[*v == version] { "v" (v) } } }
            " " button type="submit" { "Show diff" }
        }
        section {
            h2 { "Version " (version) " as a tree" }
            @if let Some(f) = &parsed { (tree(f)) } @else { p.bad { "This version does not read as a flow document." } }
        }
        section {
            h2 { "Simulate" }
            form.simulate method="post" action=(format!("/console/flows/{id}/simulate")) {
                input type="hidden" name="csrf" value=(ctx.session.csrf);
                input type="hidden" name="version" value=(version);
                label { "Current node (for a PIE) " input type="text" name="node" value=(form.map(|f| f.node.as_str()).unwrap_or("")); }
                textarea name="event" id="sim-event" rows="6" spellcheck="false" { (form.map(|f| f.event.as_str()).unwrap_or(SAMPLE_EVENT)) }
                button type="submit" id="simulate" { "Simulate v" (version) }
            }
            @if let Some((_, result)) = &sim { (result) }
        }
        details { summary { "Document" } (view::json(&document, &BTreeSet::new())) }
    };
    Ok(view::page(
        &format!("Flow {}", summary.name),
        "/console/flows",
        &ctx.session.csrf,
        false,
        body,
    ))
}

/// `?a=N&b=M`.
#[derive(Deserialize)]
pub struct DiffQuery {
    a: Option<String>,
    b: Option<String>,
}

/// GET /console/flows/{id}/diff
pub async fn diff(
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<DiffQuery>,
) -> HttpResponse {
    let ctx = match session(&req) {
        Ok(c) => c,
        Err(d) => return d.into(),
    };
    respond(render_diff(&ctx, &path, &q).await)
}

async fn render_diff(ctx: &Ctx, id: &str, q: &DiffQuery) -> Result<Markup, PageError> {
    let id = flow_id(id)?;
    let store = &ctx.state.store;
    let version = |s: &Option<String>| s.as_deref().and_then(|v| v.parse::<i32>().ok());
    let (Some(a), Some(b)) = (version(&q.a), version(&q.b)) else {
        return Err(PageError(ApiError::missing_parameter(
            "Give two versions: ?a=1&b=2",
        )));
    };
    let (Some((_, da)), Some((_, db))) = (
        store.flow_document(id, Some(a)).await?,
        store.flow_document(id, Some(b)).await?,
    ) else {
        return Err(PageError(ApiError::not_found(format!(
            "Flow {id} has no version {a} or {b}"
        ))));
    };
    let ta = serde_json::to_string_pretty(&da).unwrap_or_default();
    let tb = serde_json::to_string_pretty(&db).unwrap_or_default();
    let diff = similar::TextDiff::from_lines(&ta, &tb);
    let body = html! {
        p { a href=(format!("/console/flows/{id}?version={b}")) { "Back to the flow" } }
        @if ta == tb { p.muted { "The two versions are identical." } }
        table.diff #diff { tbody {
            @for change in diff.iter_all_changes() {
                @let (class, sign) = match change.tag() {
                    similar::ChangeTag::Delete => ("del", "-"),
                    similar::ChangeTag::Insert => ("ins", "+"),
                    similar::ChangeTag::Equal => ("eq", " "),
                };
                tr class=(class) {
                    td.ln { (change.old_index().map(|i| (i + 1).to_string()).unwrap_or_default()) }
                    td.ln { (change.new_index().map(|i| (i + 1).to_string()).unwrap_or_default()) }
                    td { pre { (sign) " " (change.value().trim_end_matches('\n')) } }
                }
            }
        } }
    };
    Ok(view::page(
        &format!("Flow {id}: v{a} → v{b}"),
        "/console/flows",
        &ctx.session.csrf,
        false,
        body,
    ))
}

/// The simulator form.
#[derive(Deserialize)]
pub struct SimulateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    node: String,
    #[serde(default)]
    event: String,
}

/// POST /console/flows/{id}/simulate: the flow's decision for the event, through the gate, as
/// `POST /admin/flows/{id}/simulate` makes it.
pub async fn simulate(
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<SimulateForm>,
) -> HttpResponse {
    let ctx = match session(&req) {
        Ok(c) => c,
        Err(d) => return d.into(),
    };
    if let Err(e) = check_csrf(&ctx, &form.csrf) {
        return e.error_response();
    }
    let version: Option<i32> = form.version.trim().parse().ok();
    let result = match flow_id(&path) {
        Ok(id) => simulation(&ctx, id, version, &form).await,
        Err(e) => return e.error_response(),
    };
    respond(render_flow(&ctx, &path, version, Some((&*form, result))).await)
}

async fn simulation(ctx: &Ctx, id: i64, version: Option<i32>, form: &SimulateForm) -> Markup {
    let state = &ctx.state;
    let event = serde_json::from_str::<Value>(&form.event)
        .ok()
        .and_then(|v| crate::events::parse_value(v).ok());
    let Some(stage) = event.as_ref().and_then(Stage::of) else {
        return html! { p.bad #sim-error { "The event must be JSON with \"event\": ice, ace or pie." } };
    };
    let target = match stage {
        Stage::Ice => Target::Ice,
        Stage::Ace => Target::Ace,
        Stage::Pie { .. } => Target::Pie,
    };
    let (version, flow) = match state.live.flow_or_load(&state.store, id, version).await {
        Ok(Some(f)) => f,
        Ok(None) => return html! { p.bad #sim-error { "No such flow version." } },
        Err(e) => return html! { p.bad #sim-error { "Could not load the flow: " (e.to_string()) } },
    };
    let ctx_vars = event.as_ref().map(EventContext::of).unwrap_or_default();
    let node = Some(form.node.trim()).filter(|n| !n.is_empty());
    let d = engine::decide(&flow, &stage, node, &ctx_vars);
    let verdict = state.gate.pass(target, d.svaml.clone());
    let report = serde_json::to_value(verdict.report.masked()).unwrap_or(Value::Null);
    let candidate = mask_json(&d.svaml);
    html! {
        div #sim-result {
            p { "v" (version) " answers with node " code { (d.node.as_deref().unwrap_or("(default)")) } " (" (d.via) ") · "
                @if verdict.passed { span.ok { "passes the gate" } } @else { span.bad { "refused by the gate: the fallback would go out" } } }
            (view::json(&candidate, &view::violation_pointers(&report, &candidate)))
            (view::report(&report))
        }
    }
}
