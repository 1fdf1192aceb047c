//! Pieces the console's pages are built from: JSON shown with the violating pointers marked,
//! numbers masked as in logs, small SVG charts drawn on the server, times and the page frame.
//! Everything goes through maud, which escapes every value.

use std::collections::BTreeSet;

use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde_json::Value;
use time::OffsetDateTime;

use crate::redact::mask_number;

/// Members that hold a phone number or a user identity in events and replies.
/// `value` with phone numbers masked as in logs ([`crate::redact::mask_json`]); the original is
/// kept for an operator who reveals it.
pub fn mask_json(value: &Value) -> Value {
    let mut masked = value.clone();
    crate::redact::mask_json(&mut masked);
    masked
}

/// A number for display: masked unless `reveal`.
pub fn number(s: &str, reveal: bool) -> String {
    if reveal {
        s.to_owned()
    } else {
        mask_number(s)
    }
}

/// JSON pretty-printed as HTML, with the subtrees at `marked` pointers in `<mark>` (the first one
/// gets the id `violation`, so the page can scroll to it).
pub fn json(value: &Value, marked: &BTreeSet<String>) -> Markup {
    let mut out = String::new();
    let mut first = true;
    write_json(value, "", 0, marked, &mut first, &mut out);
    html! { pre.json { (PreEscaped(out)) } }
}

fn esc(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

fn pointer_token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn write_json(
    v: &Value,
    pointer: &str,
    depth: usize,
    marked: &BTreeSet<String>,
    first: &mut bool,
    out: &mut String,
) {
    let mark = marked.contains(pointer);
    if mark {
        if *first {
            out.push_str("<mark class=\"violation\" id=\"violation\" title=\"");
            *first = false;
        } else {
            out.push_str("<mark class=\"violation\" title=\"");
        }
        esc(
            if pointer.is_empty() {
                "(root)"
            } else {
                pointer
            },
            out,
        );
        out.push_str("\">");
    }
    let pad = "  ".repeat(depth + 1);
    let close_pad = "  ".repeat(depth);
    match v {
        Value::Object(o) if !o.is_empty() => {
            out.push_str("{\n");
            let n = o.len();
            for (i, (k, x)) in o.iter().enumerate() {
                out.push_str(&pad);
                out.push_str("<span class=\"k\">");
                let key = serde_json::to_string(k).unwrap_or_default();
                esc(&key, out);
                out.push_str("</span>: ");
                let p = format!("{pointer}/{}", pointer_token(k));
                write_json(x, &p, depth + 1, marked, first, out);
                if i + 1 < n {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&close_pad);
            out.push('}');
        }
        Value::Array(a) if !a.is_empty() => {
            out.push_str("[\n");
            let n = a.len();
            for (i, x) in a.iter().enumerate() {
                out.push_str(&pad);
                let p = format!("{pointer}/{i}");
                write_json(x, &p, depth + 1, marked, first, out);
                if i + 1 < n {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&close_pad);
            out.push(']');
        }
        Value::String(_) => {
            out.push_str("<span class=\"s\">");
            esc(&v.to_string(), out);
            out.push_str("</span>");
        }
        other => {
            out.push_str("<span class=\"v\">");
            esc(&other.to_string(), out);
            out.push_str("</span>");
        }
    }
    if mark {
        out.push_str("</mark>");
    }
}

/// The pointers of a report's violations whose target exists in `doc` (a missing member is marked
/// at its parent).
pub fn violation_pointers(report: &Value, doc: &Value) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for v in report["violations"].as_array().into_iter().flatten() {
        let Some(p) = v["pointer"].as_str() else {
            continue;
        };
        let mut p = p.to_owned();
        loop {
            if doc.pointer(&p).is_some() || p.is_empty() {
                set.insert(p);
                break;
            }
            match p.rfind('/') {
                Some(i) => p.truncate(i),
                None => p.clear(),
            }
        }
    }
    set
}

/// A validation report as a table (pointer, rule, message, Sinch source).
pub fn report(report: &Value) -> Markup {
    let violations = report["violations"].as_array().cloned().unwrap_or_default();
    html! {
        @if report["valid"].as_bool() == Some(true) && violations.is_empty() {
            p.ok { "Valid: no findings." }
        } @else {
            p { @if report["valid"].as_bool() == Some(true) { span.ok { "valid" } } @else { span.bad { "invalid" } }
                " · " (report["errorCount"].as_u64().unwrap_or(0)) " error(s), "
                (report["warningCount"].as_u64().unwrap_or(0)) " warning(s)" }
            table.report {
                thead { tr { th { "severity" } th { "pointer" } th { "rule" } th { "message" } th { "source" } } }
                tbody {
                    @for v in &violations {
                        tr {
                            td { span class=(format!("sev-{}", v["severity"].as_str().unwrap_or(""))) { (v["severity"].as_str().unwrap_or("")) } }
                            td { code { (v["pointer"].as_str().filter(|p| !p.is_empty()).unwrap_or("(root)")) } }
                            td { code { (v["code"].as_str().unwrap_or("")) } }
                            td { (v["message"].as_str().unwrap_or(""))
                                @if let Some(e) = v["expected"].as_str() { br; small { "expected: " (e) } }
                                @if let Some(f) = v["found"].as_str() { br; small { "found: " (f) } }
                                @if let Some(h) = v["hint"].as_str() { br; small { "hint: " (h) } } }
                            td { (source(v["source"].as_str().unwrap_or(""))) }
                        }
                    }
                }
            }
        }
    }
}

/// A rule's source: a link when it is a URL.
pub fn source(s: &str) -> Markup {
    html! {
        @if s.starts_with("https://") { a href=(s) rel="noreferrer" { (s) } } @else { (s) }
    }
}

/// `2026-11-25 10:00:05.123 UTC`.
pub fn time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03} UTC",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// `1.234 ms` from microseconds.
pub fn latency(us: Option<i64>) -> String {
    match us {
        Some(us) => format!("{:.3} ms", us as f64 / 1000.0),
        None => "–".to_owned(),
    }
}

/// One series of a chart.
pub struct Series<'a> {
    /// Legend.
    pub name: &'a str,
    /// CSS class of the line.
    pub class: &'a str,
    /// One value per bucket.
    pub values: Vec<f64>,
}

/// A small line chart (SVG, no script): `series` over `buckets` buckets, labelled at both ends.
pub fn chart(title: &str, start: &str, end: &str, series: &[Series<'_>]) -> Markup {
    const W: f64 = 600.0;
    const H: f64 = 120.0;
    const PAD: f64 = 4.0;
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0f64, f64::max);
    let top = if max <= 0.0 { 1.0 } else { max };
    html! {
        figure.chart {
            figcaption { (title) " · peak " (max as u64) " per bucket" }
            svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {W} {}", H + 16.0)) role="img" aria-label=(title) {
                line.axis x1="0" y1=(H) x2=(W) y2=(H) {}
                @for s in series {
                    @let n = s.values.len().max(2) as f64 - 1.0;
                    @let points = s.values.iter().enumerate().map(|(i, v)| {
                        format!("{:.1},{:.1}", i as f64 * W / n, H - PAD - (v / top) * (H - 2.0 * PAD))
                    }).collect::<Vec<_>>().join(" ");
                    polyline class=(format!("line {}", s.class)) points=(points) { title { (s.name) } }
                }
                text.tick x="0" y=(H + 14.0) { (start) }
                text.tick.end x=(W) y=(H + 14.0) { (end) }
            }
            ul.legend { @for s in series { li class=(s.class) { (s.name) ": " (s.values.iter().sum::<f64>() as u64) } } }
        }
    }
}

/// The navigation entries: (path, label).
const NAV: [(&str, &str); 5] = [
    ("/console", "Overview"),
    ("/console/calls", "Calls"),
    ("/console/errors", "Errors"),
    ("/console/gate", "Gate"),
    ("/console/flows", "Flows & routes"),
];

/// The frame of every page after login: navigation, logout form (with its CSRF token), content.
pub fn page(title: &str, active: &str, csrf: &str, refresh: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · svamlgate console" }
                link rel="icon" href="/console/static/favicon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/console/static/console.css";
                script src="/console/static/console.js" defer {}
            }
            body data-refresh=[refresh.then_some("10")] {
                header {
                    span.brand { "svamlgate" }
                    nav { @for (href, label) in NAV {
                        a href=(href) class=[(href == active).then_some("active")] { (label) }
                    } }
                    @if refresh {
                        label.refresh { input type="checkbox" id="autorefresh" checked; " auto-refresh" }
                    }
                    form.logout method="post" action="/console/logout" {
                        input type="hidden" name="csrf" value=(csrf);
                        button type="submit" { "Log out" }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// A page outside the session (login, errors before login).
pub fn bare_page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · svamlgate console" }
                link rel="icon" href="/console/static/favicon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/console/static/console.css";
            }
            body.bare { main { h1 { (title) } (body) } }
        }
    }
}

/// A copy-to-clipboard button for the text of element `id`.
pub fn copy_button(id: &str) -> Markup {
    html! { button.copy type="button" data-copy=(id) { "Copy" } }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_is_escaped_and_pointers_marked() {
        let doc = json!({"instructions": [{"name": "say", "text": "<script>alert(1)</script>"}], "action": {"name": "x"}});
        let marked: BTreeSet<String> = ["/action/name".to_owned()].into();
        let html = json(&doc, &marked).into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(
            html.contains("id=\"violation\" title=\"/action/name\""),
            "{html}"
        );
    }

    #[test]
    fn missing_members_are_marked_at_the_parent() {
        let doc = json!({"action": {}});
        let report =
            json!({"violations": [{"pointer": "/action/name"}, {"pointer": "/instructions/3"}]});
        let set = violation_pointers(&report, &doc);
        assert_eq!(set, ["".to_owned(), "/action".to_owned()].into());
    }

    #[test]
    fn numbers_are_masked_ids_kept() {
        let v = json!({"cli": "46708168731", "callid": "4670816873100", "to": {"type": "did", "endpoint": "+46700000000"},
                       "custom": "call me at 46700000000"});
        let m = mask_json(&v);
        assert_eq!(m["cli"], "467******31");
        assert_eq!(m["callid"], "4670816873100");
        assert_eq!(m["to"]["endpoint"], "+467******00");
        assert_eq!(m["to"]["type"], "did");
        assert_eq!(m["custom"], "call me at 467******00");
    }
}
