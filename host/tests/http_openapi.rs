//! `GET /openapi.json`: served without a token, OpenAPI 3.1, describing
//! exactly the router's routes, and saying what the server really answers:
//! the statuses it lists are the ones the routes give, and the answers fit
//! their schemas.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a panic"
)]

mod http_common;

use std::collections::BTreeSet;

use http_common::{Answer, Server, change};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signoff_host::server;

/// The methods an OpenAPI path item may hold, as its keys.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// A UUID that names no request.
const NO_SUCH_ID: &str = "00000000-0000-4000-8000-000000000000";

/// Every `(METHOD, path)` the document describes.
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                found.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    found
}

fn operation<'a>(document: &'a Value, method: &str, path: &str) -> &'a Value {
    let operation = &document["paths"][path][method.to_lowercase()];
    assert!(operation.is_object(), "no {method} {path} in the document");
    operation
}

/// The value a `$ref` inside the document points at.
fn resolve<'a>(document: &'a Value, reference: &str) -> &'a Value {
    let pointer = reference
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("`{reference}` is not inside the document"));
    document
        .pointer(pointer)
        .unwrap_or_else(|| panic!("`{reference}` points at nothing"))
}

/// Follows `value` when it is a `$ref`.
fn followed<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => resolve(document, reference),
        None => value,
    }
}

/// The statuses an operation lists.
fn statuses(operation: &Value) -> BTreeSet<u16> {
    operation["responses"]
        .as_object()
        .expect("responses")
        .keys()
        .map(|status| status.parse().expect("a numeric status"))
        .collect()
}

/// A path of the document with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{id}", NO_SUCH_ID)
}

async fn fetch_document(server: &Server) -> Value {
    let answer = server.get("/openapi.json", None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    answer.body
}

#[tokio::test]
async fn the_document_is_served_without_a_token() {
    let server = Server::start_default().await;
    let answer = server.get("/openapi.json", None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let content_type = answer.headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let openapi = answer.body["openapi"].as_str().expect("an `openapi` field");
    assert!(openapi.starts_with("3.1"), "openapi: {openapi}");
    assert!(answer.body["info"]["title"].is_string());
    assert!(
        answer.headers.contains_key("x-request-id"),
        "{:?}",
        answer.headers
    );
    // What is served is the document the server builds.
    let built = serde_json::to_value(server::openapi::document()).unwrap();
    assert_eq!(answer.body, built);
    server.stop().await;
}

#[tokio::test]
async fn the_document_describes_exactly_the_routes_of_the_router() {
    let document = serde_json::to_value(server::openapi::document()).unwrap();
    let routed: BTreeSet<(String, String)> = server::routes()
        .into_iter()
        .map(|(method, path)| (method.as_str().to_owned(), path.to_owned()))
        .collect();
    let described = operations(&document);
    let undocumented: Vec<_> = routed.difference(&described).collect();
    let unrouted: Vec<_> = described.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the document: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "operations the router does not serve: {unrouted:?}"
    );
    for expected in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert!(
            described.iter().any(|(_, path)| path == expected),
            "{expected} is not described"
        );
    }
}

/// Every `/v1` operation needs a principal's token: it says so, lists 401,
/// and the server answers it 401 without one. The others need none.
#[tokio::test]
async fn operations_that_need_a_token_say_so_and_list_401() {
    let server = Server::start_default().await;
    let document = fetch_document(&server).await;
    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    for (method, path) in operations(&document) {
        let operation = operation(&document, &method, &path);
        let security = operation["security"].as_array();
        for requirement in security.into_iter().flatten() {
            for scheme in requirement.as_object().unwrap().keys() {
                assert!(
                    schemes.contains_key(scheme),
                    "{method} {path}: unknown scheme {scheme}"
                );
            }
        }
        let needs_a_principal = path.starts_with("/v1");
        let anonymous = server
            .call(
                Method::from_bytes(method.as_bytes()).unwrap(),
                &concrete(&path),
                None,
                None,
                &[],
            )
            .await;
        if needs_a_principal {
            assert_eq!(
                security.cloned(),
                Some(vec![json!({ "bearer": [] })]),
                "{method} {path}"
            );
            assert!(
                statuses(operation).contains(&401),
                "{method} {path} does not list 401"
            );
            anonymous.expect_error(401, "unauthenticated");
        } else {
            assert_ne!(
                anonymous.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path}"
            );
        }
    }
    // `/metrics` needs a token only when the server has one: optional.
    let metrics = operation(&document, "GET", "/metrics");
    assert_eq!(
        metrics["security"],
        json!([{}, { "metricsToken": [] }]),
        "{metrics}"
    );
    assert!(statuses(metrics).contains(&401));
    server.stop().await;
}

/// Called as a client that knows only the document would call them, every
/// operation answers, with a status the document lists for it.
#[tokio::test]
async fn every_operation_answers_a_status_it_lists() {
    let server = Server::start_default().await;
    let document = fetch_document(&server).await;
    let created = server.create("alice", &change("iam")).await;
    let known_id = created["id"].as_str().unwrap().to_owned();
    for (method, path) in operations(&document) {
        let listed = statuses(operation(&document, &method, &path));
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        for target in [concrete(&path), path.replace("{id}", &known_id)] {
            let answer = server
                .call(method.clone(), &target, Some("bob"), None, &[])
                .await;
            let status = answer.status.as_u16();
            assert!(
                listed.contains(&status),
                "{method} {target} answered {status}, not among {listed:?}: {}",
                answer.text
            );
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn every_reference_in_the_document_resolves() {
    let document = serde_json::to_value(server::openapi::document()).unwrap();
    let mut references = Vec::new();
    collect_references(&document, &mut references);
    assert!(references.len() > 20, "{references:?}");
    for reference in references {
        resolve(&document, &reference);
    }
}

fn collect_references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            if let Some(Value::String(reference)) = object.get("$ref") {
                out.push(reference.clone());
            }
            object
                .values()
                .for_each(|value| collect_references(value, out));
        }
        Value::Array(items) => items
            .iter()
            .for_each(|value| collect_references(value, out)),
        _ => {}
    }
}

/// The answers of the server fit the schemas the document gives them:
/// every field they hold is named, every field required is there, and each
/// has its type.
#[tokio::test]
async fn answers_fit_their_schemas() {
    let server = Server::start_default().await;
    let document = fetch_document(&server).await;
    let fits = |method: &str, path: &str, answer: &Answer| {
        let schema = response_schema(&document, method, path, answer.status.as_u16());
        let mut problems = Vec::new();
        check(&document, schema, &answer.body, "", &mut problems);
        assert!(
            problems.is_empty(),
            "{method} {path} {}: {problems:?}\n{}",
            answer.status,
            answer.text
        );
    };

    let mut iam = change("iam");
    iam["environment"] = json!("prod");
    iam["riskScore"] = json!(40);
    iam["metadata"] = json!({ "ticket": "SEC-12", "hours": 2.5, "paged": true });
    let created = server.post("/v1/requests", "alice", Some(&iam)).await;
    fits("POST", "/v1/requests", &created);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let request = format!("/v1/requests/{id}");
    fits(
        "GET",
        "/v1/requests/{id}",
        &server.get(&request, Some("bob")).await,
    );
    let approved = server
        .post(
            &format!("{request}/approve"),
            "carol",
            Some(&json!({ "comment": "scoped" })),
        )
        .await;
    fits("POST", "/v1/requests/{id}/approve", &approved);
    let commented = server
        .post(
            &format!("{request}/comments"),
            "bob",
            Some(&json!({ "text": "see SEC-12" })),
        )
        .await;
    fits("POST", "/v1/requests/{id}/comments", &commented);
    let rejected = server
        .post(
            &format!("{request}/reject"),
            "chuck",
            Some(&json!({ "reason": "needs a ticket" })),
        )
        .await;
    fits("POST", "/v1/requests/{id}/reject", &rejected);
    let other = server.create("alice", &change("firewall")).await;
    let cancelled = server
        .post(
            &format!("/v1/requests/{}/cancel", other["id"].as_str().unwrap()),
            "alice",
            None,
        )
        .await;
    fits("POST", "/v1/requests/{id}/cancel", &cancelled);
    for query in [
        "",
        "?status=rejected",
        "?status=rejected&view=summary",
        "?limit=1",
    ] {
        let page = server
            .get(&format!("/v1/requests{query}"), Some("bob"))
            .await;
        fits("GET", "/v1/requests", &page);
    }
    let summary = server
        .get("/v1/requests?status=rejected&view=summary", Some("bob"))
        .await;
    assert!(summary.body["items"][0].get("history").is_none());

    let valid = server.post("/v1/preview", "alice", Some(&iam)).await;
    fits("POST", "/v1/preview", &valid);
    let invalid = server
        .post("/v1/preview", "alice", Some(&json!({ "policyId": "" })))
        .await;
    assert_eq!(invalid.body["valid"], false);
    fits("POST", "/v1/preview", &invalid);
    fits("GET", "/v1/me", &server.get("/v1/me", Some("alice")).await);
    let rules = server.get("/v1/rules", Some("bob")).await;
    fits("GET", "/v1/rules", &rules);
    let replaced = server
        .call(
            Method::PUT,
            "/v1/rules",
            Some("admin"),
            Some(&rules.body),
            &[],
        )
        .await;
    fits("PUT", "/v1/rules", &replaced);
    fits("GET", "/healthz", &server.get("/healthz", None).await);
    fits("GET", "/readyz", &server.get("/readyz", None).await);

    // Errors, with their bodies.
    let refused = server
        .post("/v1/requests", "alice", Some(&json!({ "title": 7 })))
        .await;
    fits("POST", "/v1/requests", &refused);
    fits(
        "GET",
        "/v1/requests/{id}",
        &server.get(&request, None).await,
    );
    let stale = server
        .call(
            Method::PUT,
            "/v1/rules",
            Some("admin"),
            Some(&rules.body),
            &[("if-match", "\"stale\"")],
        )
        .await;
    assert_eq!(
        stale.status,
        StatusCode::PRECONDITION_FAILED,
        "{}",
        stale.text
    );
    fits("PUT", "/v1/rules", &stale);
    server.stop().await;
}

/// The JSON schema of the answer `status` of an operation.
fn response_schema<'a>(document: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let response = &operation(document, method, path)["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {path} does not list {status}"
    );
    let response = followed(document, response);
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} {status} has no JSON schema: {response}"
    );
    schema
}

/// The problems of `value` against `schema`: the subset of JSON Schema the
/// document uses (references, `anyOf`/`oneOf`, types, enums, properties,
/// required fields, items, maps). A field that the schema does not name is
/// a problem too, unless the schema is a map: the server must not send what
/// the document does not say.
fn check(document: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    let schema = followed(document, schema);
    for keyword in ["anyOf", "oneOf"] {
        if let Some(branches) = schema[keyword].as_array() {
            let fits_one = branches.iter().any(|branch| {
                let mut found = Vec::new();
                check(document, branch, value, at, &mut found);
                found.is_empty()
            });
            if !fits_one {
                problems.push(format!("{at}: fits no branch of {keyword}"));
            }
            return;
        }
    }
    if let Some(types) = types_of(schema) {
        let kind = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(number) if number.is_i64() || number.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let fits = types
            .iter()
            .any(|expected| *expected == kind || (*expected == "number" && kind == "integer"));
        if !fits {
            problems.push(format!("{at}: a {kind}, not {types:?}"));
            return;
        }
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        problems.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    match value {
        Value::Object(fields) => {
            let named = schema["properties"].as_object();
            let map_of = schema
                .get("additionalProperties")
                .filter(|map| map.is_object());
            for (field, inner) in fields {
                let path = format!("{at}.{field}");
                match named.and_then(|named| named.get(field)).or(map_of) {
                    Some(inner_schema) => check(document, inner_schema, inner, &path, problems),
                    None if named.is_some() => {
                        problems.push(format!("{path}: not in the schema"));
                    }
                    // A free-form object, such as an error's `details`.
                    None => {}
                }
            }
            for required in schema["required"].as_array().into_iter().flatten() {
                let required = required.as_str().unwrap();
                if !fields.contains_key(required) {
                    problems.push(format!("{at}.{required}: required, missing"));
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (position, item) in items.iter().enumerate() {
                    check(
                        document,
                        item_schema,
                        item,
                        &format!("{at}[{position}]"),
                        problems,
                    );
                }
            }
        }
        _ => {}
    }
}

/// The `type` of a schema, as a list (3.1 allows `["string", "null"]`).
fn types_of(schema: &Value) -> Option<Vec<&str>> {
    match &schema["type"] {
        Value::String(kind) => Some(vec![kind.as_str()]),
        Value::Array(kinds) => Some(kinds.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

/// An empty query parameter means the parameter is absent (the contract):
/// each query parameter's schema admits the empty string beside its own,
/// and the server answers such a call as if the parameter were not given.
#[tokio::test]
async fn every_query_parameter_admits_the_empty_string() {
    let server = Server::start_default().await;
    let document = fetch_document(&server).await;
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                if parameter["in"] != "query" {
                    continue;
                }
                let either = parameter["schema"]["anyOf"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{method} {path} {parameter}"));
                assert!(
                    either.contains(&serde_json::json!({ "type": "string", "maxLength": 0 })),
                    "{method} {path} {parameter}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 9, "only {checked} query parameters");
    for path in ["/v1/requests?limit=&status=&q=", "/v1/events?limit=&after="] {
        let answer = server.get(path, Some("alice")).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text);
    }
    server.stop().await;
}
