//! docs/API.md and `/openapi.json` describe the same routes: every operation
//! of the document has its heading in docs/API.md (`` ### `METHOD /path` ``),
//! and every such heading is an operation of the document.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a panic"
)]

use std::collections::BTreeSet;

use serde_json::Value;

const API_MD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/API.md");

const METHODS: [&str; 8] = [
    "GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE",
];

/// The `(METHOD, path)` of every route heading of `markdown`: a heading
/// whose text starts with `` `METHOD /path `` (a query string after the
/// path is an example of its parameters, not part of the route).
fn route_headings(markdown: &str) -> BTreeSet<(String, String)> {
    markdown
        .lines()
        .filter_map(|line| line.strip_prefix('#'))
        .map(|heading| heading.trim_start_matches('#').trim())
        .filter_map(|heading| heading.strip_prefix('`'))
        .filter_map(|code| {
            let code = code.split('`').next()?;
            let (method, target) = code.split_once(' ')?;
            METHODS.contains(&method).then(|| {
                let path = target.split('?').next().unwrap_or(target);
                (method.to_owned(), path.trim().to_owned())
            })
        })
        .collect()
}

fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method.to_lowercase()).is_some() {
                found.insert((method.to_owned(), path.clone()));
            }
        }
    }
    found
}

#[test]
fn the_route_headings_are_read_as_routes() {
    let markdown = "## Requests\n\n### `POST /v1/requests`\n\n\
        ### `GET /v1/requests?status=&limit=`\n\n\
        ### `POST /v1/requests/{id}/approve` `{ \"comment\"? }`\n\n\
        ### The sweeper\n\n#### `GET /healthz`\n\n`GET /not-a-heading`\n";
    let found: Vec<(String, String)> = route_headings(markdown).into_iter().collect();
    let expected: Vec<(String, String)> = [
        ("GET", "/healthz"),
        ("GET", "/v1/requests"),
        ("POST", "/v1/requests"),
        ("POST", "/v1/requests/{id}/approve"),
    ]
    .into_iter()
    .map(|(method, path)| (method.to_owned(), path.to_owned()))
    .collect();
    assert_eq!(found, expected);
}

#[test]
fn docs_api_md_and_the_openapi_document_describe_the_same_routes() {
    let markdown = std::fs::read_to_string(API_MD).expect("docs/API.md");
    let documented = route_headings(&markdown);
    let document =
        serde_json::to_value(signoff_host::server::openapi::document()).expect("the document");
    let described = operations(&document);
    assert!(
        described.len() >= 15,
        "the document describes too little: {described:?}"
    );
    let missing_from_docs: Vec<_> = described.difference(&documented).collect();
    let missing_from_document: Vec<_> = documented.difference(&described).collect();
    assert!(
        missing_from_docs.is_empty(),
        "operations of /openapi.json without a heading in docs/API.md: {missing_from_docs:?}"
    );
    assert!(
        missing_from_document.is_empty(),
        "headings of docs/API.md that /openapi.json does not describe: {missing_from_document:?}"
    );
}
