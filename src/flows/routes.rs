//! Call routing: which flow, or which customer app (proxy mode), handles a call.
//!
//! A [`Route`] matches on the called number (`None` = default route) and optionally on a caller
//! number prefix. [`select`] picks, among the routes that match, by these rules in order:
//! 1. a route for the exact called number beats a default route;
//! 2. the longest matching caller prefix wins (no prefix counts as length 0);
//! 3. the higher `priority` wins;
//! 4. the lower `id` wins (deterministic tie-break).
//!
//! Numbers are compared after [`number_key`] (so `+4670…` and `4670…` are the same number).
//!
//! The upstream secret is a [`Secret`]: its `Debug` and `Serialize` output is [`Secret::REDACTED`],
//! so serializing a [`Route`] (e.g. in an API response) is the redacted view. Use
//! [`RouteTarget::to_storage_json`] when the full target, secret included, must be stored.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::cmp::Reverse;

use super::model::{FlowProblem, Severity};

/// Shortest accepted upstream timeout, in milliseconds.
pub const MIN_TIMEOUT_MS: u64 = 50;
/// Longest accepted upstream timeout, in milliseconds.
pub const MAX_TIMEOUT_MS: u64 = 30_000;
/// Maximum length of a route name, in characters.
pub const MAX_ROUTE_NAME_CHARS: usize = 100;

/// A routing rule: sent to store one, answered (secrets redacted) for a stored one. The
/// answers always carry `id`, `called`, `callerPrefix` and `priority`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route {
    /// Storage id (ignored on create; defaults to 0 when absent).
    #[serde(default)]
    pub id: i64,
    /// Human-readable name.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Called number (E.164, `+` optional); null: default route for any called number.
    #[serde(default)]
    pub called: Option<String>,
    /// Only calls whose caller number starts with this (1-15 digits, `+` optional) match.
    #[serde(default)]
    pub caller_prefix: Option<String>,
    /// Higher wins among otherwise equal matches.
    #[serde(default)]
    #[schema(default = 0)]
    pub priority: i32,
    /// Where matching calls go.
    pub target: RouteTarget,
    /// What the gate does with an invalid reply on this route; absent: `SVAMLGATE_GATE_MODE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_mode: Option<GateMode>,
    /// A version of the route's flow to evaluate in the shadow of every live event on this route:
    /// its reply is computed off the reply path, never sent, and compared with the reply sent
    /// (differences at `GET /admin/flows/{id}/versions/{version}/shadow`). Flow targets only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub shadow_version: Option<i32>,
}

/// What the gate does with an invalid reply.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum GateMode {
    /// Replace it with the pre-validated fallback (and record why).
    #[default]
    Enforce,
    /// Send it as it is; keep the report, count the rules, and mark the stored reply `observed`.
    /// For putting svamlgate in front of an existing app to see what the gate would do.
    Observe,
}

impl GateMode {
    /// `enforce` or `observe`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            GateMode::Enforce => "enforce",
            GateMode::Observe => "observe",
        }
    }

    /// Reads the stored text (anything else is enforce).
    pub fn parse(text: &str) -> GateMode {
        if text == "observe" {
            GateMode::Observe
        } else {
            GateMode::Enforce
        }
    }
}

/// Where a route sends its calls. JSON: `{"kind":"flow","flowId":1}` or
/// `{"kind":"upstream","url":"http://…","key":"…","secretB64":"…","timeoutMs":3000}`.
/// `Debug` and `Serialize` show the secret as [`Secret::REDACTED`].
#[derive(Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[schema(description = "Where a route sends its calls: a stored flow, or the customer's app.")]
pub enum RouteTarget {
    /// Answer from a stored flow.
    Flow {
        /// The flow's storage id.
        #[schema(rename = "flowId", minimum = 1)]
        flow_id: i64,
    },
    /// Proxy mode: forward the event to the customer's app.
    Upstream {
        /// `http://` URL of the customer's callback endpoint (https is not supported).
        url: String,
        /// Application key used to sign the forwarded request.
        key: String,
        /// Application secret (padded standard base64) used to sign the forwarded request. Stored
        /// secrets are never returned: answers show `<redacted>`, which is refused when sent back.
        #[schema(rename = "secretB64", value_type = String)]
        secret_b64: Secret,
        /// Per-route timeout in milliseconds; absent: the gate's default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(rename = "timeoutMs", minimum = 50, maximum = 30000)]
        timeout_ms: Option<u64>,
    },
}

use crate::secret::Secret;

impl std::fmt::Debug for RouteTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteTarget::Flow { flow_id } => {
                f.debug_struct("Flow").field("flow_id", flow_id).finish()
            }
            RouteTarget::Upstream {
                url,
                key,
                timeout_ms,
                ..
            } => f
                .debug_struct("Upstream")
                .field("url", url)
                .field("key", key)
                .field("secret_b64", &format_args!("{}", Secret::REDACTED))
                .field("timeout_ms", timeout_ms)
                .finish(),
        }
    }
}

impl RouteTarget {
    /// The full target as JSON, secret included (same shape `Deserialize` reads). For storage only.
    pub fn to_storage_json(&self) -> Value {
        match self {
            RouteTarget::Flow { flow_id } => json!({"kind": "flow", "flowId": flow_id}),
            RouteTarget::Upstream {
                url,
                key,
                secret_b64,
                timeout_ms,
            } => {
                let mut v = json!({"kind": "upstream", "url": url, "key": key,
                                   "secretB64": secret_b64.expose()});
                if let (Some(t), Some(map)) = (timeout_ms, v.as_object_mut()) {
                    map.insert("timeoutMs".to_owned(), json!(t));
                }
                v
            }
        }
    }
}

/// The comparison form of a phone number: whitespace and `-().` removed, leading `+` dropped.
pub fn number_key(n: &str) -> String {
    let cleaned: String = n
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '(' | ')' | '.'))
        .collect();
    cleaned
        .strip_prefix('+')
        .map(str::to_owned)
        .unwrap_or(cleaned)
}

/// Picks the route for a call (rules in the module docs); `None` if no route matches.
/// `called` is the event's `to.endpoint`, `caller` its `cli`.
pub fn select<'a>(
    routes: &'a [Route],
    called: Option<&str>,
    caller: Option<&str>,
) -> Option<&'a Route> {
    let called = called.map(number_key);
    let caller = caller.map(number_key);
    routes
        .iter()
        .filter_map(|r| {
            let exact = match &r.called {
                None => false,
                Some(c) if called.as_deref() == Some(number_key(c).as_str()) => true,
                Some(_) => return None,
            };
            let prefix = r
                .caller_prefix
                .as_deref()
                .map(number_key)
                .filter(|p| !p.is_empty());
            let prefix_len = match prefix {
                None => 0,
                Some(p) => match &caller {
                    Some(c) if c.starts_with(&p) => p.len(),
                    _ => return None,
                },
            };
            Some(((exact, prefix_len, r.priority, Reverse(r.id)), r))
        })
        .max_by_key(|(rank, _)| *rank)
        .map(|(_, r)| r)
}

fn error(pointer: &str, code: &'static str, message: impl Into<String>) -> FlowProblem {
    FlowProblem {
        pointer: pointer.to_owned(),
        code,
        severity: Severity::Error,
        message: message.into(),
    }
}

/// E.164 with or without its `+`.
fn is_e164ish(n: &str) -> bool {
    crate::events::is_e164(&format!("+{}", n.strip_prefix('+').unwrap_or(n)))
}

/// Strict standard base64 (padded, canonical trailing bits) that decodes to at least one byte.
pub fn is_strict_base64(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || !b.len().is_multiple_of(4) {
        return false;
    }
    let val = |c: u8| -> Option<u8> {
        match c {
            b'A'..=b'Z' => Some(c - b'A'),
            b'a'..=b'z' => Some(c - b'a' + 26),
            b'0'..=b'9' => Some(c - b'0' + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let pad = b.iter().rev().take_while(|&&c| c == b'=').count();
    if pad > 2 {
        return false;
    }
    let data = &b[..b.len() - pad];
    let mut last = 0u8;
    for &c in data {
        match val(c) {
            Some(v) => last = v,
            None => return false,
        }
    }
    match pad {
        1 => last & 0b11 == 0,
        2 => last & 0b1111 == 0,
        _ => true,
    }
}

/// Checks an upstream URL: `http(s)://host[:port][/path][?query]`, no credentials, no fragment.
fn check_url(url: &str, p: &mut Vec<FlowProblem>) {
    const PTR: &str = "/target/url";
    let lower = url.to_ascii_lowercase();
    let skip = if lower.starts_with("https://") { 8 } else { 7 };
    let Some(rest) = url
        .get(skip..)
        .filter(|_| lower.starts_with("http://") || lower.starts_with("https://"))
    else {
        p.push(error(
            PTR,
            "route-url-invalid",
            "the upstream URL must start with http:// or https://",
        ));
        return;
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) || url.contains('#') {
        p.push(error(
            PTR,
            "route-url-invalid",
            "the upstream URL must not contain whitespace, control characters or a #fragment",
        ));
        return;
    }
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.contains('@') {
        p.push(error(
            PTR,
            "route-url-invalid",
            "credentials in the upstream URL are not allowed (requests are signed instead)",
        ));
        return;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, rest)) => (h, Some(rest.strip_prefix(':').unwrap_or("invalid"))),
            None => ("", None),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, port)) => (h, Some(port)),
            None => (authority, None),
        }
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    if host.is_empty() || !port_ok {
        p.push(error(
            PTR,
            "route-url-invalid",
            "the upstream URL needs a host and, if given, a port between 1 and 65535",
        ));
    }
}

impl Route {
    /// Validates the route; problem pointers are relative to the route's JSON
    /// (e.g. `/target/secretB64`). All problems are errors.
    pub fn validate(&self) -> Vec<FlowProblem> {
        let mut p = Vec::new();
        check_name(&self.name, &mut p);
        self.check_match(&mut p);
        match &self.target {
            RouteTarget::Flow { flow_id } => {
                if *flow_id <= 0 {
                    p.push(error(
                        "/target/flowId",
                        "route-flow-id-invalid",
                        "`flowId` must be a positive flow id",
                    ));
                }
                if self.shadow_version.is_some_and(|v| v < 1) {
                    p.push(error(
                        "/shadowVersion",
                        "route-shadow-version-invalid",
                        "`shadowVersion` must be a version number of the route's flow (1, 2, …)",
                    ));
                }
            }
            RouteTarget::Upstream {
                url,
                key,
                secret_b64,
                timeout_ms,
            } => {
                if self.shadow_version.is_some() {
                    p.push(error(
                        "/shadowVersion",
                        "route-shadow-without-flow",
                        "only a route to a flow can shadow a flow version",
                    ));
                }
                check_url(url, &mut p);
                check_credentials(key, secret_b64, &mut p);
                if let Some(t) = timeout_ms {
                    if !(MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(t) {
                        p.push(error(
                            "/target/timeoutMs",
                            "route-timeout-invalid",
                            format!(
                                "`timeoutMs` must be between {MIN_TIMEOUT_MS} and {MAX_TIMEOUT_MS}"
                            ),
                        ));
                    }
                }
            }
        }
        p
    }

    /// What the route matches on: the called number and the caller's prefix.
    fn check_match(&self, p: &mut Vec<FlowProblem>) {
        if let Some(called) = &self.called {
            if !is_e164ish(called) {
                p.push(error(
                    "/called",
                    "route-called-invalid",
                    "`called` must be an E.164 number such as +46708168731 (2-15 digits, `+` \
                     optional, no separators); use null for the default route",
                ));
            }
        }
        if let Some(prefix) = &self.caller_prefix {
            let digits = prefix.strip_prefix('+').unwrap_or(prefix);
            if !(1..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                p.push(error(
                    "/callerPrefix",
                    "route-caller-prefix-invalid",
                    "`callerPrefix` must be 1-15 digits, `+` optional; use null for any caller",
                ));
            }
        }
    }
}

fn check_name(name: &str, p: &mut Vec<FlowProblem>) {
    if name.trim().is_empty() {
        p.push(error(
            "/name",
            "route-name-empty",
            "the route needs a non-empty name",
        ));
    } else if name.chars().count() > MAX_ROUTE_NAME_CHARS {
        p.push(error(
            "/name",
            "route-name-too-long",
            format!("the route name is longer than {MAX_ROUTE_NAME_CHARS} characters"),
        ));
    }
}

/// The application key and secret an upstream route signs with.
fn check_credentials(key: &str, secret_b64: &Secret, p: &mut Vec<FlowProblem>) {
    if key.trim().is_empty() {
        p.push(error(
            "/target/key",
            "route-key-empty",
            "the application key is empty",
        ));
    } else if key
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ':')
    {
        p.push(error(
            "/target/key",
            "route-key-invalid",
            "the application key must not contain whitespace or `:`",
        ));
    }
    if secret_b64.is_redacted() {
        p.push(error(
            "/target/secretB64",
            "route-secret-redacted",
            "send the application secret itself: stored secrets are never returned",
        ));
    } else if !is_strict_base64(secret_b64.expose()) {
        p.push(error(
            "/target/secretB64",
            "route-secret-invalid",
            "the application secret must be non-empty, padded standard base64",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: i64, called: Option<&str>, prefix: Option<&str>, priority: i32) -> Route {
        Route {
            id,
            name: format!("r{id}"),
            called: called.map(str::to_owned),
            caller_prefix: prefix.map(str::to_owned),
            priority,
            target: RouteTarget::Flow { flow_id: id },
            gate_mode: None,
            shadow_version: None,
        }
    }

    fn pick(routes: &[Route], called: Option<&str>, caller: Option<&str>) -> Option<i64> {
        select(routes, called, caller).map(|r| r.id)
    }

    #[test]
    fn select_precedence() {
        let routes = vec![
            r(1, None, None, 0),
            r(2, Some("+46708000000"), None, 0),
            r(3, Some("46708000000"), Some("+4670"), 0),
            r(4, Some("+46708000000"), Some("46"), 5),
            r(5, None, Some("1"), 0),
            r(6, Some("+15550100001"), None, 1),
            r(7, Some("+15550100001"), None, 1),
            r(8, Some("+15550100001"), None, 0),
        ];
        // exact called + longest prefix beats higher priority with shorter prefix
        assert_eq!(
            pick(&routes, Some("+46708000000"), Some("46701234567")),
            Some(3)
        );
        // only the shorter prefix matches
        assert_eq!(pick(&routes, Some("46708000000"), Some("+4680")), Some(4));
        // no prefix matches → exact route without prefix
        assert_eq!(
            pick(&routes, Some("+46708000000"), Some("private")),
            Some(2)
        );
        assert_eq!(pick(&routes, Some("+46708000000"), None), Some(2));
        // exact called beats a default route with a matching prefix
        assert_eq!(
            pick(&routes, Some("+15550100001"), Some("+15551234")),
            Some(6)
        );
        // priority, then lowest id
        assert_eq!(pick(&routes, Some("1 555 010 0001"), None), Some(6));
        // unknown called number → default routes
        assert_eq!(pick(&routes, Some("+4911"), Some("+12025550100")), Some(5));
        assert_eq!(pick(&routes, Some("+4911"), Some("+4412")), Some(1));
        assert_eq!(pick(&routes, None, None), Some(1));
        assert_eq!(pick(&routes[1..2], Some("+4911"), None), None);
        assert_eq!(pick(&[], Some("+4911"), None), None);
        // an empty prefix is no prefix
        let empty_prefix = vec![r(9, None, Some(""), 0)];
        assert_eq!(pick(&empty_prefix, None, None), Some(9));
    }

    fn upstream(url: &str, key: &str, secret: &str, timeout_ms: Option<u64>) -> Route {
        Route {
            id: 1,
            name: "proxy".into(),
            called: Some("+46708000000".into()),
            caller_prefix: None,
            priority: 0,
            target: RouteTarget::Upstream {
                url: url.into(),
                key: key.into(),
                secret_b64: Secret::new(secret),
                timeout_ms,
            },
            gate_mode: None,
            shadow_version: None,
        }
    }

    fn codes(p: &[FlowProblem]) -> Vec<(&str, &str)> {
        p.iter().map(|x| (x.pointer.as_str(), x.code)).collect()
    }

    #[test]
    fn validation() {
        let ok = upstream(
            "http://app.example.com:8080/sinch?x=1",
            "app-key",
            "BeIukql3pTKJ8RGL5zo0DA==",
            Some(3000),
        );
        assert_eq!(ok.validate(), vec![]);
        assert_eq!(
            upstream("http://[::1]:80/", "k", "AAAA", None).validate(),
            vec![]
        );
        assert_eq!(
            upstream("http://[::1]", "k", "AAAA", None).validate(),
            vec![]
        );
        assert_eq!(
            upstream("HTTP://127.0.0.1:9/x", "k", "AAAA", None).validate(),
            vec![]
        );
        assert_eq!(r(1, None, Some("+46"), 0).validate(), vec![]);

        let cases: Vec<(Route, Vec<(&str, &str)>)> = vec![
            (
                upstream("ftp://a", "k", "AAAA", None),
                vec![("/target/url", "route-url-invalid")],
            ),
            (
                upstream("http://", "k", "AAAA", None),
                vec![("/target/url", "route-url-invalid")],
            ),
            (
                upstream("http://u:p@a/", "k", "AAAA", None),
                vec![("/target/url", "route-url-invalid")],
            ),
            (
                upstream("http://a:99999/", "k", "AAAA", None),
                vec![("/target/url", "route-url-invalid")],
            ),
            (
                upstream("http://[::1/", "k", "AAAA", None),
                vec![("/target/url", "route-url-invalid")],
            ),
            (
                upstream("http://[::1]x/", "k", "AAAA", None),
                vec![("/target/url", "route-url-invalid")],
            ),
            (
                upstream("http://a/ b", "k", "AAAA", None),
                vec![("/target/url", "route-url-invalid")],
            ),
            (
                upstream("http://a/", " ", "AAAA", None),
                vec![("/target/key", "route-key-empty")],
            ),
            (
                upstream("http://a/", "a:b", "AAAA", None),
                vec![("/target/key", "route-key-invalid")],
            ),
            (
                upstream("http://a/", "k", "app-secret", None),
                vec![("/target/secretB64", "route-secret-invalid")],
            ),
            (
                upstream("http://a/", "k", "BeIukql3pTKJ8RGL5zo0DB==", None),
                vec![("/target/secretB64", "route-secret-invalid")],
            ),
            (
                upstream("http://a/", "k", "<redacted>", None),
                vec![("/target/secretB64", "route-secret-redacted")],
            ),
            (
                upstream("http://a/", "k", "AAAA", Some(10)),
                vec![("/target/timeoutMs", "route-timeout-invalid")],
            ),
            (
                r(0, Some("0046"), Some("x1"), 0),
                vec![
                    ("/called", "route-called-invalid"),
                    ("/callerPrefix", "route-caller-prefix-invalid"),
                    ("/target/flowId", "route-flow-id-invalid"),
                ],
            ),
            (
                Route {
                    name: String::new(),
                    ..r(1, Some(""), None, 0)
                },
                vec![
                    ("/name", "route-name-empty"),
                    ("/called", "route-called-invalid"),
                ],
            ),
        ];
        for (route, want) in cases {
            assert_eq!(codes(&route.validate()), want, "{route:?}");
        }
    }

    #[test]
    fn base64_strictness() {
        for good in [
            "AAAA",
            "BeIukql3pTKJ8RGL5zo0DA==",
            "JViE5vDor0Sw3WllZka15Q==",
            "bXkta2V5LXNlY3JldA==",
            "QUI=",
        ] {
            assert!(is_strict_base64(good), "{good}");
        }
        for bad in [
            "", "A", "AAA", "AA=A", "A===", "QUJ=", "QR==", "ab-_", "AAAA\n",
        ] {
            assert!(!is_strict_base64(bad), "{bad}");
        }
    }

    #[test]
    fn secret_is_redacted_in_debug_and_json_but_kept_for_storage() {
        let route = upstream("http://a/", "k", "BeIukql3pTKJ8RGL5zo0DA==", Some(3000));
        let dbg = format!("{route:?}");
        assert!(!dbg.contains("BeIukql3"), "{dbg}");
        assert!(dbg.contains("<redacted>"), "{dbg}");
        let json = serde_json::to_value(&route).unwrap();
        assert_eq!(
            json,
            json!({"id": 1, "name": "proxy", "called": "+46708000000", "callerPrefix": null,
                   "priority": 0, "target": {"kind": "upstream", "url": "http://a/", "key": "k",
                   "secretB64": "<redacted>", "timeoutMs": 3000}})
        );
        // a redacted document sent back is caught by validation
        let back: Route = serde_json::from_value(json).unwrap();
        assert_eq!(
            codes(&back.validate()),
            vec![("/target/secretB64", "route-secret-redacted")]
        );
        // storage form round-trips
        let stored = route.target.to_storage_json();
        assert_eq!(stored["secretB64"], "BeIukql3pTKJ8RGL5zo0DA==");
        let target: RouteTarget = serde_json::from_value(stored).unwrap();
        assert_eq!(target, route.target);
        assert_eq!(
            RouteTarget::Flow { flow_id: 3 }.to_storage_json(),
            json!({"kind": "flow", "flowId": 3})
        );
    }

    #[test]
    fn deserialize_shapes() {
        let route: Route = serde_json::from_value(json!({
            "name": "default", "target": {"kind": "flow", "flowId": 7}
        }))
        .unwrap();
        assert_eq!(
            route,
            Route {
                id: 0,
                name: "default".into(),
                called: None,
                caller_prefix: None,
                priority: 0,
                target: RouteTarget::Flow { flow_id: 7 },
                gate_mode: None,
                shadow_version: None,
            }
        );
        let err = serde_json::from_value::<Route>(json!({
            "name": "x", "target": {"kind": "flow", "flowId": 7, "extra": 1}
        }))
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `extra`"), "{err}");
        let err = serde_json::from_value::<Route>(json!({
            "name": "x", "target": {"kind": "lambda"}
        }))
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `lambda`"),
            "{err}"
        );
    }

    #[test]
    fn number_keys() {
        assert_eq!(number_key(" +1 (555) 010-0001 "), "15550100001");
        assert_eq!(number_key("46708"), "46708");
        assert_eq!(number_key("private"), "private");
    }
}
