//! The OpenAPI document at `GET /admin/openapi.json`, asked of the running app: well formed, every
//! documented operation is routed, every admin route the app registers is documented with its
//! method and the schemas of its bodies, and the bodies match those schemas.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

/// Where the document puts the callback endpoint: the default of SVAMLGATE_CALLBACK_PATH (checked
/// below).
const DOCUMENTED_CALLBACK_PATH: &str = "/sinch/callback";
const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// `(METHOD, path with every `{param}` replaced by `{}`)`.
type Op = (String, String);

fn normalise(path: &str) -> String {
    regex::Regex::new(r"\{[^}]*\}")
        .unwrap()
        .replace_all(path, "{}")
        .into_owned()
}

/// The admin routes as the handlers declare them in the source: every `#[get("…")]`-style route
/// attribute in `src/http/admin*.rs` and `src/http/openapi.rs` (the admin handlers and the
/// document's own; mounted under `/admin`). Read from the
/// code, not from the registration or the document, so a handler that is written but not
/// registered, or registered but not documented, shows up as a difference.
fn declared_admin_routes() -> BTreeSet<Op> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let attr = regex::Regex::new(r#"#\[(get|post|put|delete|patch)\("([^"]+)"\)\]"#).unwrap();
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("src/http") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !((name.starts_with("admin") && name.ends_with(".rs")) || name == "openapi.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("reading a handler file");
        for c in attr.captures_iter(&text) {
            out.insert((c[1].to_uppercase(), normalise(&format!("/admin{}", &c[2]))));
        }
    }
    assert!(
        !out.is_empty(),
        "no admin route attributes found in {dir:?}"
    );
    out
}

/// Every operation of the document: (method, normalised path, raw path, operation).
fn operations(doc: &Value) -> Vec<(String, String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            assert!(
                METHODS.contains(&method.as_str()) || method == "parameters",
                "unexpected key {method} in {path}"
            );
            if METHODS.contains(&method.as_str()) {
                out.push((
                    method.to_uppercase(),
                    normalise(path),
                    path.clone(),
                    op.clone(),
                ));
            }
        }
    }
    out
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.strip_prefix('#').expect("local $ref"))
            .unwrap_or_else(|| panic!("dangling $ref {r}")),
        None => v,
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", Value::String(s)) => out.push(s.clone()),
                    _ => collect_refs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

async fn document(app: &TestApp) -> Value {
    let res = app.admin_get("/admin/openapi.json").await;
    assert_eq!(res.status, 200);
    assert!(res
        .header("content-type")
        .unwrap_or("")
        .starts_with("application/json"));
    res.json()
}

#[actix_web::test]
async fn document_is_well_formed() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "svamlgate admin API");
    let scheme = &doc["components"]["securitySchemes"]["adminToken"];
    assert_eq!(
        (&scheme["type"], &scheme["scheme"]),
        (&json!("http"), &json!("bearer"))
    );
    assert_eq!(doc["security"], json!([{"adminToken": []}]));

    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 50, "{}", refs.len());
    for r in &refs {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("non-local $ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
        // Every reference names a component: a schema or a shared response.
        let named = ["#/components/schemas/", "#/components/responses/"]
            .iter()
            .find_map(|prefix| r.strip_prefix(prefix));
        assert!(
            named.is_some_and(|name| !name.is_empty() && !name.contains('/')),
            "$ref {r} does not name a component"
        );
    }
    // Each component is a definition, not a reference standing for one.
    for section in ["schemas", "responses"] {
        for (name, component) in doc["components"][section].as_object().expect(section) {
            assert!(
                component.get("$ref").is_none(),
                "{section}/{name} is only a reference: {component}"
            );
        }
    }

    let param_re = regex::Regex::new(r"\{([^}]+)\}").unwrap();
    let mut ids = BTreeSet::new();
    for (method, _, path, op) in operations(&doc) {
        let what = format!("{method} {path}");
        let id = op["operationId"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "{what}: no operationId");
        assert!(
            ids.insert(id.to_owned()),
            "{what}: duplicate operationId {id}"
        );
        assert!(
            !op["summary"].as_str().unwrap_or_default().is_empty(),
            "{what}: no summary"
        );
        let responses = op["responses"].as_object().expect("responses");
        assert!(!responses.is_empty(), "{what}: no responses");
        assert!(
            responses.keys().any(|k| k.starts_with('2')),
            "{what}: no success response"
        );
        for (status, r) in responses {
            assert!(
                !resolve(&doc, r)["description"]
                    .as_str()
                    .unwrap_or_default()
                    .is_empty(),
                "{what} {status}: no description"
            );
        }
        // Every path template parameter is declared, and nothing else is declared in the path.
        let declared: BTreeSet<String> = op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| resolve(&doc, p))
                    .filter(|p| p["in"] == "path")
                    .map(|p| {
                        assert_eq!(p["required"], true, "{what}: path parameter not required");
                        p["name"].as_str().unwrap().to_owned()
                    })
                    .collect()
            })
            .unwrap_or_default();
        let in_template: BTreeSet<String> = param_re
            .captures_iter(&path)
            .map(|c| c[1].to_owned())
            .collect();
        assert_eq!(declared, in_template, "{what}: path parameters");
        // Admin operations answer 401 and 403 from the auth middleware; service ones need no token.
        if path.starts_with("/admin/") {
            assert!(op.get("security").is_none(), "{what}: overrides security");
            for status in ["401", "403"] {
                assert!(responses.contains_key(status), "{what}: no {status}");
            }
        } else {
            assert_eq!(op["security"], json!([]), "{what}: needs no admin token");
        }
    }
    assert!(ids.len() >= 18, "{ids:?}");
}

/// A value for a path parameter: "1" for integers, "x" otherwise.
fn sample(doc: &Value, op: &Value, name: &str) -> &'static str {
    let param = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| resolve(doc, p))
        .find(|p| p["name"] == name && p["in"] == "path")
        .unwrap_or_else(|| panic!("undeclared path parameter {name}"));
    if param["schema"]["type"] == "integer" {
        "1"
    } else {
        "x"
    }
}

/// Whether the response is the default service's 404 (no route matched).
fn unrouted(res: &crate::helpers::Response) -> bool {
    res.status == 404
        && serde_json::from_slice::<Value>(&res.body)
            .ok()
            .and_then(|j| j["message"].as_str().map(|m| m.starts_with("No route for")))
            .unwrap_or(false)
}

#[actix_web::test]
async fn every_documented_operation_is_routed() {
    let app = spawn_app().await;
    let doc = document(&app).await;

    // The check below can tell a missing route apart.
    for (method, path) in [("PATCH", "/admin/flows/1"), ("GET", "/admin/nowhere")] {
        let res = app.admin_send(method, path, None).await;
        assert!(unrouted(&res), "{method} {path}: {}", res.status);
    }

    let param_re = regex::Regex::new(r"\{([^}]+)\}").unwrap();
    let ops = operations(&doc);
    let documented_admin: BTreeSet<Op> = ops
        .iter()
        .filter(|(_, p, _, _)| p.starts_with("/admin/"))
        .map(|(m, p, _, _)| (m.clone(), p.clone()))
        .collect();
    assert_eq!(documented_admin, declared_admin_routes());
    for (method, _, path, op) in ops {
        let concrete = param_re
            .replace_all(&path, |c: &regex::Captures| sample(&doc, &op, &c[1]))
            .into_owned();
        let concrete = if path == DOCUMENTED_CALLBACK_PATH {
            app.config.callback_path.clone()
        } else {
            concrete
        };
        let body = op.get("requestBody").map(|_| json!({}));
        let res = app.admin_send(&method, &concrete, body.as_ref()).await;
        assert!(
            !unrouted(&res),
            "{method} {path} (sent as {concrete}) is not routed: {}",
            String::from_utf8_lossy(&res.body)
        );
        assert_ne!(res.status, 405, "{method} {concrete}");
    }
}

/// Whether `schema` is, or wraps, a reference to a named schema of the document.
fn names_a_schema(doc: &Value, schema: &Value) -> bool {
    let mut refs = Vec::new();
    collect_refs(schema, &mut refs);
    !refs.is_empty()
        && refs.iter().all(|r| {
            r.starts_with("#/components/schemas/")
                && doc.pointer(r.trim_start_matches('#')).is_some()
        })
}

#[actix_web::test]
async fn every_registered_route_is_documented() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let ops = operations(&doc);
    let documented: BTreeSet<Op> = ops
        .iter()
        .map(|(m, p, _, _)| (m.clone(), p.clone()))
        .collect();
    assert_eq!(documented.len(), ops.len());

    // The admin routes as the app registers them (the same registration the server routes with).
    let registered: Vec<Op> = svamlgate::http::admin_routes()
        .into_iter()
        .map(|(m, p)| (m, normalise(&p)))
        .collect();
    let registered_set: BTreeSet<Op> = registered.iter().cloned().collect();
    assert_eq!(
        registered.len(),
        registered_set.len(),
        "a route is registered twice"
    );
    assert!(registered_set.contains(&("GET".into(), "/admin/events".into())));
    assert!(registered_set.contains(&("DELETE".into(), "/admin/routes/{}".into())));
    assert_eq!(registered_set, declared_admin_routes());
    let documented_admin: BTreeSet<Op> = documented
        .iter()
        .filter(|(_, p)| p.starts_with("/admin/"))
        .cloned()
        .collect();
    assert_eq!(documented_admin, registered_set);

    // Every JSON body an admin route takes or answers with names its schema.
    for (method, _, path, op) in &ops {
        if !path.starts_with("/admin/") {
            continue;
        }
        let what = format!("{method} {path}");
        if let Some(body) = op.get("requestBody") {
            let schema = &resolve(&doc, body)["content"]["application/json"]["schema"];
            assert!(
                names_a_schema(&doc, schema),
                "{what}: request body {schema}"
            );
        }
        for (status, res) in op["responses"].as_object().expect("responses") {
            let schema = &resolve(&doc, res)["content"]["application/json"]["schema"];
            if schema.is_null() {
                assert!(status == "204", "{what} {status}: no JSON schema: {res}");
                continue;
            }
            if path == "/admin/openapi.json" {
                continue; // this document
            }
            assert!(names_a_schema(&doc, schema), "{what} {status}: {schema}");
        }
    }

    // Outside /admin: health, readiness, metrics and the callback endpoint at its default path.
    assert_eq!(
        svamlgate::config::ServeArgs::for_tests().callback_path,
        DOCUMENTED_CALLBACK_PATH
    );
    let service: BTreeSet<Op> = [
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("POST", DOCUMENTED_CALLBACK_PATH),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_owned(), p.to_owned()))
    .collect();
    let documented_service: BTreeSet<Op> = documented
        .iter()
        .filter(|(_, p)| !p.starts_with("/admin/"))
        .cloned()
        .collect();
    assert_eq!(documented_service, service);
}

/// Validates requests and responses against the document's schemas.
struct Checker<'a> {
    app: &'a TestApp,
    doc: &'a Value,
}

impl Checker<'_> {
    fn operation(&self, method: &str, template: &str) -> &Value {
        let op = &self.doc["paths"][template][method.to_lowercase()];
        assert!(op.is_object(), "{method} {template} is not documented");
        op
    }

    /// Problems of `value` against `schema` (which may `$ref` the document's components).
    fn problems(&self, schema: &Value, value: &Value) -> Vec<String> {
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.doc["components"],
            "allOf": [schema],
        });
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&root)
            .unwrap_or_else(|e| panic!("schema {schema} does not compile: {e}"));
        validator
            .iter_errors(value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    /// Asserts that `status` is documented for the operation and that `body` matches its schema.
    fn check_value(&self, method: &str, template: &str, status: u16, body: &Value) {
        let op = self.operation(method, template);
        let documented = op["responses"].get(status.to_string()).unwrap_or_else(|| {
            panic!("{method} {template}: status {status} is not documented: {body}")
        });
        let documented = resolve(self.doc, documented);
        let schema = &documented["content"]["application/json"]["schema"];
        assert!(
            schema.is_object(),
            "{method} {template} {status}: no JSON schema"
        );
        let problems = self.problems(schema, body);
        assert!(
            problems.is_empty(),
            "{method} {template} {status}: {problems:#?}\n{body:#}"
        );
    }

    /// Checks a response: documented status, and a body matching its schema (or no body at all).
    fn check(&self, method: &str, template: &str, res: &crate::helpers::Response) -> Value {
        if res.body.is_empty() {
            let op = self.operation(method, template);
            assert!(
                op["responses"].get(res.status.to_string()).is_some(),
                "{method} {template}: status {} is not documented",
                res.status
            );
            return Value::Null;
        }
        let body = res.json();
        self.check_value(method, template, res.status, &body);
        body
    }

    /// Sends an admin request (the body checked against the documented request schema first).
    async fn send(
        &self,
        method: &str,
        template: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        if let Some(b) = body {
            let schema = &self.operation(method, template)["requestBody"]["content"]
                ["application/json"]["schema"];
            assert!(schema.is_object(), "{method} {template}: no request schema");
            let problems = self.problems(schema, b);
            assert!(
                problems.is_empty(),
                "{method} {template} request: {problems:#?}"
            );
        }
        let res = self.app.admin_send(method, path, body).await;
        let status = res.status;
        (status, self.check(method, template, &res))
    }
}

#[actix_web::test]
async fn bodies_match_the_documented_schemas() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let c = Checker {
        app: &app,
        doc: &doc,
    };
    c.check_value("GET", "/admin/openapi.json", 200, &doc);

    // Service endpoints.
    for path in ["/healthz", "/readyz"] {
        let res = app.get(path, None).await;
        assert_eq!(res.status, 200, "{path}");
        c.check("GET", path, &res);
    }
    let ice = crate::helpers::fixture("sinch/ice-java-sdk-1.json");
    let callid = serde_json::from_slice::<Value>(&ice).unwrap()["callid"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app.post_signed(&ice).await;
    assert_eq!(res.status, 200);
    c.check("POST", DOCUMENTED_CALLBACK_PATH, &res);
    let refused = app
        .post_raw(
            &app.config.callback_path,
            &ice,
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(refused.status, 401);
    let refusal = c.check("POST", DOCUMENTED_CALLBACK_PATH, &refused);

    // Recorded callbacks and errors.
    let (status, page) = c
        .send("GET", "/admin/events", "/admin/events?limit=1", None)
        .await;
    assert_eq!((status, page["items"].as_array().unwrap().len()), (200, 1));
    let (status, _) = c
        .send("GET", "/admin/events", "/admin/events?limit=0", None)
        .await;
    assert_eq!(status, 400);
    let encoded = callid.replace(' ', "%20");
    let (status, timeline) = c
        .send(
            "GET",
            "/admin/calls/{callid}",
            &format!("/admin/calls/{encoded}"),
            None,
        )
        .await;
    assert_eq!(
        (status, timeline["events"].as_array().unwrap().len()),
        (200, 1)
    );
    let (status, _) = c
        .send("GET", "/admin/calls/{callid}", "/admin/calls/nope", None)
        .await;
    assert_eq!(status, 404);
    let stored = app.wait_error(refusal["reference"].as_str().unwrap()).await;
    assert!(stored["refusal"].is_object(), "{stored}");
    c.check_value("GET", "/admin/errors/{reference}", 200, &stored);
    let (status, codes) = c
        .send("GET", "/admin/error-codes", "/admin/error-codes", None)
        .await;
    assert_eq!(status, 200);
    assert!(codes["errorCodes"].as_array().unwrap().len() > 20);

    // SVAML validation.
    let svaml = json!({"action": {"name": "hangup"}, "bogus": 1});
    for (query, status) in [
        ("?event=ice", 200),
        ("?event=ice&strict=true", 200),
        ("", 400),
        ("?event=dice", 400),
    ] {
        let (got, _) = c
            .send(
                "POST",
                "/admin/svaml/validate",
                &format!("/admin/svaml/validate{query}"),
                Some(&svaml),
            )
            .await;
        assert_eq!(got, status, "{query}");
    }

    // Flows.
    let flow: Value = serde_json::from_slice(&crate::helpers::fixture("flows/ivr.json")).unwrap();
    let (status, saved) = c
        .send("POST", "/admin/flows", "/admin/flows", Some(&flow))
        .await;
    assert_eq!(status, 201);
    let id = saved["flow"]["id"].as_i64().unwrap();
    let one = format!("/admin/flows/{id}");
    let (status, _) = c
        .send("POST", "/admin/flows", "/admin/flows", Some(&flow))
        .await;
    assert_eq!(status, 409);
    let (status, refused) = c
        .send(
            "POST",
            "/admin/flows",
            "/admin/flows",
            Some(&json!({"name": "b", "start": "nope", "nodes": {"a": {"action": {"name": "hangup"}}}})),
        )
        .await;
    assert_eq!(status, 400);
    let details = &refused["details"];
    assert_eq!(details["valid"], false);
    let problems = c.problems(&json!({"$ref": "#/components/schemas/FlowCheck"}), details);
    assert!(problems.is_empty(), "{problems:#?}");
    let (status, _) = c.send("PUT", "/admin/flows/{id}", &one, Some(&flow)).await;
    assert_eq!(status, 200);
    for (path, status) in [
        (one.clone(), 200),
        (format!("{one}?version=1"), 200),
        (format!("{one}?version=9"), 404),
        (format!("{one}?version=x"), 400),
        ("/admin/flows/x".to_owned(), 400),
    ] {
        let (got, _) = c.send("GET", "/admin/flows/{id}", &path, None).await;
        assert_eq!(got, status, "{path}");
    }
    let (status, _) = c.send("GET", "/admin/flows", "/admin/flows", None).await;
    assert_eq!(status, 200);
    let (status, _) = c
        .send(
            "GET",
            "/admin/flows/{id}/export",
            &format!("{one}/export"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let ice_event: Value = serde_json::from_slice(&ice).unwrap();
    let (status, sim) = c
        .send(
            "POST",
            "/admin/flows/{id}/simulate",
            &format!("{one}/simulate"),
            Some(&json!({"event": ice_event, "version": 1, "context": {"caller": "+46708168731"}})),
        )
        .await;
    assert_eq!((status, &sim["passed"]), (200, &json!(true)));

    // Routes.
    let flow_route =
        json!({"name": "main", "called": "+15550100", "target": {"kind": "flow", "flowId": id}});
    let upstream = json!({"name": "app", "callerPrefix": "+46", "priority": 2,
        "target": {"kind": "upstream", "url": "http://127.0.0.1:9/cb", "key": "k",
                   "secretB64": "c2VjcmV0", "timeoutMs": 500}});
    let mut route_ids = Vec::new();
    for route in [&flow_route, &upstream] {
        let (status, saved) = c
            .send("POST", "/admin/routes", "/admin/routes", Some(route))
            .await;
        assert_eq!(status, 201);
        route_ids.push(saved["id"].as_i64().unwrap());
    }
    let (status, _) = c
        .send("POST", "/admin/routes", "/admin/routes", Some(&upstream))
        .await;
    assert_eq!(status, 409);
    let (status, _) = c
        .send(
            "POST",
            "/admin/routes",
            "/admin/routes",
            Some(&json!({"name": "x", "target": {"kind": "flow", "flowId": 999}})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, list) = c.send("GET", "/admin/routes", "/admin/routes", None).await;
    assert_eq!((status, list["items"].as_array().unwrap().len()), (200, 2));
    let route_path = format!("/admin/routes/{}", route_ids[1]);
    let (status, got) = c.send("GET", "/admin/routes/{id}", &route_path, None).await;
    assert_eq!(status, 200);
    let (status, _) = c
        .send("PUT", "/admin/routes/{id}", &route_path, Some(&got))
        .await;
    assert_eq!(status, 400, "a redacted secret sent back is refused");
    let (status, _) = c
        .send("PUT", "/admin/routes/{id}", &route_path, Some(&upstream))
        .await;
    assert_eq!(status, 200);
    let (status, _) = c.send("DELETE", "/admin/flows/{id}", &one, None).await;
    assert_eq!(status, 409, "the flow is still routed to");
    for rid in &route_ids {
        let path = format!("/admin/routes/{rid}");
        let (status, _) = c.send("DELETE", "/admin/routes/{id}", &path, None).await;
        assert_eq!(status, 204);
        let (status, _) = c.send("DELETE", "/admin/routes/{id}", &path, None).await;
        assert_eq!(status, 404);
    }
    let (status, _) = c.send("DELETE", "/admin/flows/{id}", &one, None).await;
    assert_eq!(status, 204);
}

/// Every route string the source registers, however it is registered: handler attributes
/// (`#[get("…")]`), `web::resource("…")`, `.route("…", …)`, and scopes (`scope("…")`). Scopes
/// are returned apart, to be put in front of the others. Read from all of `src/`, so a route
/// registered anywhere, documented or not, is a candidate for [`answering_routes`].
fn route_strings_in_source() -> (BTreeSet<String>, BTreeSet<String>) {
    let route = regex::Regex::new(
        r#"(?:#\[(?:get|post|put|delete|patch)\(|resource\(|\.route\()\s*"(/[^"]*)""#,
    )
    .unwrap();
    let scope = regex::Regex::new(r#"scope\(\s*"(/[^"]*)""#).unwrap();
    let (mut paths, mut scopes) = (BTreeSet::new(), BTreeSet::new());
    let mut dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("reading src/") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("reading a source file");
                paths.extend(route.captures_iter(&text).map(|c| c[1].to_owned()));
                scopes.extend(scope.captures_iter(&text).map(|c| c[1].to_owned()));
            }
        }
    }
    (paths, scopes)
}

/// Whether the answer refuses the method on a path that exists: 405, or the callback path's own
/// refusal of anything but POST (a Sinch envelope, "Method … is not allowed on the callback path").
fn refused_method(res: &crate::helpers::Response) -> bool {
    res.status == 405
        || serde_json::from_slice::<Value>(&res.body)
            .ok()
            .and_then(|j| {
                j["message"]
                    .as_str()
                    .map(|m| m.starts_with("Method ") && m.contains(" is not allowed"))
            })
            .unwrap_or(false)
}

/// The routes that answer on the running app, `(METHOD, normalised path)`: every candidate path
/// (the document's, and every route string of the source, alone and under every scope) asked
/// with every method; a route answers when the answer is neither the default service's "No route
/// for" nor a refused method ([`refused_method`]). The console's HTML pages (`/console…`) are
/// left out: they are not part of the document by design.
async fn answering_routes(app: &TestApp, doc: &Value) -> BTreeSet<Op> {
    let (paths, scopes) = route_strings_in_source();
    assert!(
        scopes.contains("/admin") && paths.len() >= 10,
        "the source scan finds the routes: {scopes:?} {paths:?}"
    );
    let mut candidates: BTreeSet<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(|p| normalise(p))
        .collect();
    for p in &paths {
        candidates.insert(normalise(p));
        for s in &scopes {
            candidates.insert(normalise(&format!("{s}{p}")));
        }
    }
    let mut answering = BTreeSet::new();
    for template in candidates {
        if template.starts_with("/console") {
            continue;
        }
        let concrete = if template == DOCUMENTED_CALLBACK_PATH {
            app.config.callback_path.clone()
        } else {
            template.replace("{}", "1")
        };
        for method in METHODS {
            let m = actix_web::http::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let req = app.client.request(m, app.url(&concrete)).insert_header((
                "authorization",
                format!("Bearer {}", crate::helpers::ADMIN_TOKEN),
            ));
            let mut res = match method {
                "get" | "delete" => req.send().await,
                _ => req.send_json(&json!({})).await,
            }
            .expect("request failed");
            let body = res.body().limit(10 << 20).await.expect("reading body");
            let res = crate::helpers::Response {
                status: res.status().as_u16(),
                headers: Vec::new(),
                body: body.to_vec(),
            };
            if !unrouted(&res) && !refused_method(&res) {
                answering.insert((method.to_uppercase(), template.clone()));
            }
        }
    }
    answering
}

/// The document against what answers: every (method, path) the running app answers is in the
/// document, and every documented operation answers. No count: a route added anywhere without
/// documentation (a `.route(…)` in a `configure`, a handler in a new file) makes it fail.
#[actix_web::test]
async fn the_document_lists_exactly_the_routes_that_answer() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let documented: BTreeSet<Op> = operations(&doc)
        .into_iter()
        .map(|(m, p, _, _)| (m, p))
        .collect();
    let answering = answering_routes(&app, &doc).await;
    let undocumented: Vec<&Op> = answering.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes that answer but are not in the OpenAPI document: {undocumented:?}"
    );
    let silent: Vec<&Op> = documented.difference(&answering).collect();
    assert!(
        silent.is_empty(),
        "documented operations that do not answer: {silent:?}"
    );
}
