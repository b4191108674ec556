//! The HTTP scenarios every backend runs: each takes the [`Backend`] to
//! start its servers on, so `http_api` runs them over the in-memory cache
//! and `http_redis` over a real `redis-server`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Backend, CROWD, Server, change, rules_json, token};

/// The id of a stored request.
pub fn id(request: &Value) -> String {
    request["id"].as_str().expect("an id").to_owned()
}

pub async fn a_request_lives_its_whole_life_over_http(backend: &Backend) {
    let server = backend.start().await;

    // Two stages: two security reviewers, then the lead.
    let mut iam = change("iam");
    iam["environment"] = json!("prod");
    let created = server.post("/v1/requests", "alice", Some(&iam)).await;
    let location = created.headers["location"].to_str().unwrap().to_owned();
    let request = created.expect(201).clone();
    assert_eq!(request["status"], "pending");
    assert_eq!(request["level"], "security");
    assert_eq!(request["stage"], "security-review");
    assert_eq!(request["requestedBy"], "alice");
    assert_eq!(request["levelExplanation"]["decidingRule"], "iam-prod");
    let path = format!("/v1/requests/{}", id(&request));
    assert_eq!(location, path);

    let first = server
        .post(
            &format!("{path}/approve"),
            "carol",
            Some(&json!({ "comment": "looks fine" })),
        )
        .await;
    assert_eq!(first.expect(200)["stage"], "security-review");
    let second = server.post(&format!("{path}/approve"), "chuck", None).await;
    assert_eq!(second.expect(200)["stage"], "lead-signoff");
    let done = server.post(&format!("{path}/approve"), "dave", None).await;
    let done = done.expect(200);
    assert_eq!(done["status"], "approved");
    assert!(done.get("stage").is_none());
    let approvals: Vec<&str> = done["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|approval| approval["by"].as_str().unwrap())
        .collect();
    assert_eq!(approvals, ["carol", "chuck", "dave"]);
    assert_eq!(done["approvals"][0]["comment"], "looks fine");
    let fetched = server.get(&path, Some("bob")).await;
    assert_eq!(fetched.expect(200), done);

    // Rejected with a reason.
    let peer = server.create("alice", &change("network")).await;
    assert_eq!(peer["level"], "peer");
    let peer_path = format!("/v1/requests/{}", id(&peer));
    let rejected = server
        .post(
            &format!("{peer_path}/reject"),
            "bob",
            Some(&json!({ "reason": "  not now  " })),
        )
        .await;
    let rejected = rejected.expect(200);
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["rejection"]["by"], "bob");
    assert_eq!(rejected["rejection"]["reason"], "not now");

    // Cancelled by its requester, with no body and no content type.
    let mine = server.create("alice", &change("network")).await;
    let mine_path = format!("/v1/requests/{}", id(&mine));
    let cancelled = server
        .post(&format!("{mine_path}/cancel"), "alice", None)
        .await;
    assert_eq!(cancelled.expect(200)["status"], "cancelled");

    // Comments, on a terminal request too.
    let commented = server
        .post(
            &format!("{mine_path}/comments"),
            "bob",
            Some(&json!({ "text": "ok, later then" })),
        )
        .await;
    let commented = commented.expect(200);
    assert_eq!(commented["status"], "cancelled");
    let last = commented["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["action"], "comment");
    assert_eq!(last["actor"], "bob");
    assert_eq!(last["comment"], "ok, later then");
    assert_eq!(
        commented["version"].as_u64().unwrap(),
        cancelled.body["version"].as_u64().unwrap() + 1
    );

    // Auto-approved documentation change.
    let docs = server.create("alice", &change("docs")).await;
    assert_eq!(docs["status"], "approved");
    assert_eq!(docs["level"], "auto");

    // Listings by status.
    let approved = server
        .get("/v1/requests?status=approved", Some("bob"))
        .await;
    let approved = approved.expect(200);
    let ids: HashSet<String> = approved["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id)
        .collect();
    assert!(ids.contains(&id(&request)) && ids.contains(&id(&docs)));
    assert!(approved.get("nextCursor").is_none());
    let listed = server
        .get("/v1/requests?status=rejected", Some("bob"))
        .await;
    assert_eq!(listed.expect(200)["items"][0]["id"], peer["id"]);
    server.stop().await;
}

pub async fn listing_pages_through_a_policy_type(backend: &Backend) {
    let server = backend.start().await;
    let mut created = HashSet::new();
    for index in 0..7 {
        let mut network = change("network");
        network["title"] = json!(format!("change {index}"));
        created.insert(id(&server.create("alice", &network).await));
    }
    for _ in 0..3 {
        server.create("alice", &change("firewall")).await;
    }
    let mut seen = Vec::new();
    let mut query = "/v1/requests?policyType=network&limit=3".to_owned();
    let mut pages = 0;
    loop {
        let page = server.get(&query, Some("bob")).await;
        let page = page.expect(200).clone();
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        for item in items {
            assert_eq!(item["change"]["policyType"], "network");
            assert_eq!(item["status"], "pending");
            seen.push(id(item));
        }
        match page.get("nextCursor").and_then(Value::as_str) {
            Some(cursor) => {
                query = format!("/v1/requests?policyType=network&limit=3&cursor={cursor}");
            }
            None => break,
        }
        assert!(pages < 10, "the listing does not end");
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), created);
    assert_eq!(pages, 3);

    // Defaults: pending, every type; empty parameters mean absent.
    let all = server
        .get("/v1/requests?status=&cursor=", Some("bob"))
        .await;
    assert_eq!(all.expect(200)["items"].as_array().unwrap().len(), 10);

    // A cursor is bound to its filter; parameters are checked.
    let first = server
        .get("/v1/requests?policyType=network&limit=3", Some("bob"))
        .await;
    let cursor = first.body["nextCursor"].as_str().unwrap().to_owned();
    server
        .get(
            &format!("/v1/requests?policyType=firewall&cursor={cursor}"),
            Some("bob"),
        )
        .await
        .expect_error(400, "invalid_request");
    for bad in [
        "/v1/requests?limit=0",
        "/v1/requests?limit=501",
        "/v1/requests?limit=ten",
        "/v1/requests?status=done",
        "/v1/requests?cursor=garbage",
        "/v1/requests?sort=asc",
        "/v1/requests?limit=2&limit=3",
    ] {
        let answer = server.get(bad, Some("bob")).await;
        answer.expect_error(400, "invalid_request");
        assert!(answer.body["error"]["details"].is_array(), "{bad}");
    }
    // A well-formed cursor whose position holds a NUL was forged: 400 on
    // every cache, never a 503 from a store that cannot hold such a key.
    let forged = signoff_core::listing::encode(
        &signoff_core::ListQuery::default(),
        &signoff_core::IndexEntry {
            sort_key: "1\0x".to_owned(),
            member: "id".to_owned(),
        },
    );
    server
        .get(&format!("/v1/requests?cursor={forged}"), Some("bob"))
        .await
        .expect_error(400, "invalid_request");
    let unknown = server.get("/v1/requests?sort=asc", Some("bob")).await;
    assert_eq!(unknown.body["error"]["details"][0]["path"], "sort");
    assert_eq!(unknown.body["error"]["details"][0]["code"], "unknown_field");
    server.stop().await;
}

pub async fn preview_validates_and_explains_without_storing(backend: &Backend) {
    let server = backend.start().await;
    let mut risky = change("network");
    risky["riskScore"] = json!(85);
    let preview = server.post("/v1/preview", "alice", Some(&risky)).await;
    let preview = preview.expect(200);
    assert_eq!(preview["valid"], true);
    assert_eq!(preview["errors"], json!([]));
    assert_eq!(preview["level"], "security");
    assert_eq!(preview["explanation"]["decidingRule"], "risky");

    let invalid =
        json!({ "policyId": "", "policyType": "Bad Type", "changeKind": "rename", "extra": 1 });
    let preview = server.post("/v1/preview", "alice", Some(&invalid)).await;
    let preview = preview.expect(200);
    assert_eq!(preview["valid"], false);
    assert_eq!(preview["level"], Value::Null);
    assert_eq!(preview["explanation"], Value::Null);
    let paths: Vec<&str> = preview["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["path"].as_str().unwrap())
        .collect();
    for path in [
        "policyId",
        "policyType",
        "changeKind",
        "title",
        "justification",
        "extra",
    ] {
        assert!(paths.contains(&path), "{path} not in {paths:?}");
    }
    let listed = server.get("/v1/requests", Some("alice")).await;
    assert_eq!(listed.expect(200)["items"], json!([]));
    server.stop().await;
}

pub async fn every_error_code_of_section_7(backend: &Backend) {
    let server = backend.start().await;

    // 400 with every validation item.
    let bad = server
        .post(
            "/v1/requests",
            "alice",
            Some(&json!({ "policyType": "iam", "changeKind": "update", "riskScore": 101 })),
        )
        .await;
    bad.expect_error(400, "invalid_request");
    let details = bad.body["error"]["details"].as_array().unwrap();
    let paths: Vec<&str> = details
        .iter()
        .map(|item| item["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["policyId", "title", "justification", "riskScore"]);
    assert!(
        details
            .iter()
            .all(|item| item["code"].is_string() && item["message"].is_string())
    );
    server
        .post("/v1/requests", "alice", None)
        .await
        .expect_error(400, "invalid_request");

    // 401.
    server
        .get("/v1/requests", None)
        .await
        .expect_error(401, "unauthenticated");

    // 404: an unknown request, a non-UUID id, an unknown route.
    let missing = "/v1/requests/00000000-0000-4000-8000-000000000000";
    server
        .get(missing, Some("bob"))
        .await
        .expect_error(404, "not_found");
    server
        .get("/v1/requests/not-a-uuid", Some("bob"))
        .await
        .expect_error(404, "not_found");
    server
        .post(&format!("{missing}/approve"), "bob", None)
        .await
        .expect_error(404, "not_found");
    server
        .get("/v2/anything", Some("bob"))
        .await
        .expect_error(404, "not_found");
    server
        .get("/v1/requests/a/b/c", Some("bob"))
        .await
        .expect_error(404, "not_found");
    server
        .call(Method::POST, "/nope", None, None, &[])
        .await
        .expect_error(404, "not_found");

    // 405 on known routes.
    for (method, path) in [
        (Method::DELETE, "/v1/requests"),
        (Method::PUT, "/v1/requests"),
        (Method::GET, "/v1/preview"),
        (Method::POST, "/v1/rules"),
        (Method::POST, "/healthz"),
        (Method::GET, &format!("{missing}/approve")),
    ] {
        server
            .call(method, path, Some("bob"), None, &[])
            .await
            .expect_error(405, "method_not_allowed");
    }

    // 403: self approval, not eligible, forbidden cancel.
    let request = server.create("alice", &change("network")).await;
    let path = format!("/v1/requests/{}", id(&request));
    server
        .post(&format!("{path}/approve"), "alice", None)
        .await
        .expect_error(403, "self_approval");
    server
        .post(
            &format!("{path}/reject"),
            "alice",
            Some(&json!({ "reason": "mine" })),
        )
        .await
        .expect_error(403, "self_approval");
    server
        .post(&format!("{path}/approve"), "carol", None)
        .await
        .expect_error(403, "not_eligible");
    server
        .post(&format!("{path}/cancel"), "bob", None)
        .await
        .expect_error(403, "forbidden");

    // 409: already approved (two approvals needed at the first stage).
    let mut iam = change("iam");
    iam["environment"] = json!("prod");
    let two = server.create("alice", &iam).await;
    let two_path = format!("/v1/requests/{}", id(&two));
    server
        .post(&format!("{two_path}/approve"), "carol", None)
        .await
        .expect(200);
    server
        .post(&format!("{two_path}/approve"), "carol", None)
        .await
        .expect_error(409, "already_approved");
    server
        .post(
            &format!("{two_path}/reject"),
            "carol",
            Some(&json!({ "reason": "changed my mind" })),
        )
        .await
        .expect_error(409, "already_approved");

    // 409: not pending.
    server
        .post(&format!("{path}/cancel"), "alice", None)
        .await
        .expect(200);
    server
        .post(&format!("{path}/approve"), "bob", None)
        .await
        .expect_error(409, "not_pending");
    server
        .post(&format!("{path}/cancel"), "alice", None)
        .await
        .expect_error(409, "not_pending");

    // 409: expired (the `brief` level lives one second).
    let brief = server.create("alice", &change("ephemeral")).await;
    let brief_path = format!("/v1/requests/{}", id(&brief));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    server
        .post(&format!("{brief_path}/approve"), "bob", None)
        .await
        .expect_error(409, "expired");

    // 413, 415.
    let huge = format!("{{\"title\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let answer = Server::answer(
        server
            .client
            .post(format!("{}/v1/requests", server.base))
            .bearer_auth(token("alice"))
            .header("content-type", "application/json")
            .body(huge)
            .send()
            .await
            .unwrap(),
    )
    .await;
    answer.expect_error(413, "payload_too_large");
    let answer = Server::answer(
        server
            .client
            .post(format!("{}/v1/requests", server.base))
            .bearer_auth(token("alice"))
            .header("content-type", "text/plain")
            .body(change("network").to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    answer.expect_error(415, "unsupported_media_type");

    // Which error wins: 401 before the body, the body before 404.
    let answer = Server::answer(
        server
            .client
            .post(format!("{}/v1/requests", server.base))
            .header("content-type", "text/plain")
            .body("{")
            .send()
            .await
            .unwrap(),
    )
    .await;
    answer.expect_error(401, "unauthenticated");
    server
        .post(&format!("{missing}/reject"), "bob", Some(&json!({})))
        .await
        .expect_error(400, "invalid_request");
    server
        .post(
            &format!("{missing}/comments"),
            "bob",
            Some(&json!({ "text": 3 })),
        )
        .await
        .expect_error(400, "invalid_request");
    // ... and the body before the state of the request.
    server
        .post(
            &format!("{path}/approve"),
            "bob",
            Some(&json!({ "comment": "" })),
        )
        .await
        .expect_error(400, "invalid_request");
    server.stop().await;
}

pub async fn authentication_failures_are_401_everywhere(backend: &Backend) {
    let server = backend.start().await;
    let request = server.create("alice", &change("network")).await;
    let path = format!("/v1/requests/{}", id(&request));
    let routes = [
        (Method::POST, "/v1/requests".to_owned()),
        (Method::GET, "/v1/requests".to_owned()),
        (Method::GET, path.clone()),
        (Method::POST, format!("{path}/approve")),
        (Method::POST, format!("{path}/reject")),
        (Method::POST, format!("{path}/cancel")),
        (Method::POST, format!("{path}/comments")),
        (Method::POST, "/v1/preview".to_owned()),
        (Method::GET, "/v1/rules".to_owned()),
        (Method::PUT, "/v1/rules".to_owned()),
        (Method::GET, "/v1/me".to_owned()),
    ];
    let bad_headers: [Option<&[u8]>; 8] = [
        None,
        Some(b"Bearer"),
        Some(b"Bearer "),
        Some(b"Basic dG9rZW4tb2YtYWxpY2U="),
        Some(b"token-of-alice"),
        Some(b"Bearer token-of-mallory"),
        Some(b"Bearer token-of-alice-and-more"),
        Some(b"Bearer \xfftoken"),
    ];
    for (method, route) in &routes {
        for header in &bad_headers {
            let mut call = server
                .client
                .request(method.clone(), format!("{}{route}", server.base))
                .header("content-type", "application/json")
                .body(change("network").to_string());
            if let Some(value) = header {
                call = call.header(
                    "authorization",
                    reqwest::header::HeaderValue::from_bytes(value).unwrap(),
                );
            }
            let answer = Server::answer(call.send().await.unwrap()).await;
            answer.expect_error(401, "unauthenticated");
        }
    }
    // Two Authorization headers are refused too.
    let answer = Server::answer(
        server
            .client
            .get(format!("{}/v1/requests", server.base))
            .header("authorization", "Bearer token-of-alice")
            .header("authorization", "Bearer token-of-bob")
            .send()
            .await
            .unwrap(),
    )
    .await;
    answer.expect_error(401, "unauthenticated");
    // The scheme is case-insensitive.
    let answer = Server::answer(
        server
            .client
            .get(format!("{}/v1/requests", server.base))
            .header("authorization", "bearer token-of-alice")
            .send()
            .await
            .unwrap(),
    )
    .await;
    answer.expect(200);
    // Who am I: the principal of the token, nothing else.
    let me = server.get("/v1/me", Some("alice")).await;
    me.expect(200);
    assert_eq!(me.body["id"], "alice");
    assert!(me.body["roles"].is_array());
    assert_eq!(
        me.body.as_object().map(|fields| fields.len()),
        Some(2),
        "{}",
        me.body
    );
    // Health, readiness and metrics need no token.
    for open in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            server.get(open, None).await.status,
            StatusCode::OK,
            "{open}"
        );
    }
    server.stop().await;
}

pub async fn rules_are_replaced_by_admins_with_a_fresh_etag(backend: &Backend) {
    let server = backend.start().await;
    let current = server.get("/v1/rules", Some("bob")).await;
    let etag = current.headers["etag"].to_str().unwrap().to_owned();
    let document = current.expect(200).clone();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() == 66,
        "{etag}"
    );
    assert_eq!(document["defaultLevel"], "peer");

    let mut stricter = rules_json();
    stricter["defaultLevel"] = json!("security");
    let put = |who: &'static str, body: Value, if_match: Option<String>| {
        let server = &server;
        async move {
            let headers: Vec<(&str, String)> = if_match
                .map(|tag| vec![("if-match", tag)])
                .unwrap_or_default();
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(name, value)| (*name, value.as_str()))
                .collect();
            server
                .call(Method::PUT, "/v1/rules", Some(who), Some(&body), &headers)
                .await
        }
    };

    // 401, then 403, then 412, then 400, in that order.
    server
        .call(
            Method::PUT,
            "/v1/rules",
            None,
            Some(&json!("junk")),
            &[("if-match", "\"stale\"")],
        )
        .await
        .expect_error(401, "unauthenticated");
    put("alice", json!("junk"), Some("\"stale\"".into()))
        .await
        .expect_error(403, "forbidden");
    put("alice", stricter.clone(), Some(etag.clone()))
        .await
        .expect_error(403, "forbidden");
    let stale = put("admin", json!("junk"), Some("\"stale\"".into())).await;
    stale.expect_error(412, "precondition_failed");
    assert_eq!(stale.headers["etag"].to_str().unwrap(), etag);
    // Without If-Match the replacement is unconditional: straight to the body.
    put("admin", json!("junk"), None)
        .await
        .expect_error(400, "invalid_request");
    let invalid = json!({
        "levels": [
            { "name": "a", "ttlSeconds": 0, "stages": [] },
            { "name": "a", "ttlSeconds": 10, "stages": [
                { "name": "s", "requiredApprovals": 0, "eligibleRoles": ["", "x", "x"] }
            ]}
        ],
        "defaultLevel": "missing",
        "rules": [{ "name": "r", "when": {}, "level": "nowhere" }],
        "rateLimit": { "requests": 0, "perSeconds": 1 }
    });
    let refused = put("admin", invalid, Some(etag.clone())).await;
    refused.expect_error(400, "invalid_request");
    let items: Vec<(String, String)> = refused.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            (
                item["path"].as_str().unwrap().to_owned(),
                item["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("levels[0].ttlSeconds", "out_of_range"),
        ("levels[1].name", "duplicate"),
        ("levels[1].stages[0].requiredApprovals", "out_of_range"),
        ("defaultLevel", "unknown_level"),
        ("rules[0].level", "unknown_level"),
        ("rateLimit.requests", "out_of_range"),
    ] {
        assert!(
            items
                .iter()
                .any(|(path, code)| path == expected.0 && code == expected.1),
            "{expected:?} missing from {items:?}"
        );
    }
    put("admin", json!(null), Some(etag.clone()))
        .await
        .expect_error(400, "invalid_request");

    // Before: a plain network change is peer-reviewed.
    let preview = server
        .post("/v1/preview", "alice", Some(&change("network")))
        .await;
    assert_eq!(preview.expect(200)["level"], "peer");
    let replaced = put("admin", stricter.clone(), Some(format!("W/\"x\", {etag}"))).await;
    let new_etag = replaced.headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(replaced.expect(200)["defaultLevel"], "security");
    assert_ne!(new_etag, etag);
    let fetched = server.get("/v1/rules", Some("bob")).await;
    assert_eq!(fetched.headers["etag"].to_str().unwrap(), new_etag);
    assert_eq!(fetched.body["defaultLevel"], "security");
    // After: the same change needs the security level.
    let preview = server
        .post("/v1/preview", "alice", Some(&change("network")))
        .await;
    assert_eq!(preview.expect(200)["level"], "security");
    let created = server.create("alice", &change("network")).await;
    assert_eq!(created["level"], "security");
    assert_eq!(
        created["rulesDigest"].as_str().unwrap(),
        new_etag.trim_matches('"')
    );
    // The old tag is stale now; `*` replaces whatever is in force.
    put("admin", rules_json(), Some(etag.clone()))
        .await
        .expect_error(412, "precondition_failed");
    let bare = put(
        "admin",
        stricter.clone(),
        Some(new_etag.trim_matches('"').to_owned()),
    )
    .await;
    assert_eq!(bare.expect(200)["defaultLevel"], "security");
    let back = put("admin", rules_json(), Some("*".into())).await;
    back.expect(200);
    assert_eq!(back.headers["etag"].to_str().unwrap(), etag);
    // Each replacement appended its `rules.replaced` event, and the refused
    // ones none: three, from the first digest through the new one twice
    // (the bare-tag replacement put the same document again) and back.
    let events = server.get("/v1/events?limit=500", Some("bob")).await;
    let replacements: Vec<(String, String)> = events.expect(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["type"] == "rules.replaced")
        .map(|event| {
            assert_eq!(event["actor"], "admin");
            assert!(event.get("requestId").is_none(), "{event}");
            (
                event["data"]["previousDigest"].as_str().unwrap().to_owned(),
                event["data"]["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let (first, second) = (etag.trim_matches('"'), new_etag.trim_matches('"'));
    assert_eq!(
        replacements,
        [
            (first.to_owned(), second.to_owned()),
            (second.to_owned(), second.to_owned()),
            (second.to_owned(), first.to_owned()),
        ]
    );
    server.stop().await;
}

pub async fn the_rate_limit_answers_429_with_retry_after(backend: &Backend) {
    let mut rules = rules_json();
    rules["rateLimit"] = json!({ "requests": 1, "perSeconds": 3600, "burst": 2 });
    let server = backend.start_with(rules).await;
    server.create("alice", &change("network")).await;
    server.create("alice", &change("network")).await;
    let limited = server
        .post("/v1/requests", "alice", Some(&change("network")))
        .await;
    limited.expect_error(429, "rate_limited");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    assert_eq!(
        limited.body["error"]["details"]["retryAfterSeconds"],
        json!(retry)
    );
    // Another requester has their own bucket.
    server.create("bob", &change("network")).await;
    assert_eq!(server.metric("signoff_rate_limited_total").await, Some(1.0));
    server.stop().await;
}

pub async fn idempotency_keys_replay_the_first_answer(backend: &Backend) {
    let server = backend.start().await;
    let body = change("network");
    let key = [("idempotency-key", "deploy-42")];
    let first = server
        .call(
            Method::POST,
            "/v1/requests",
            Some("alice"),
            Some(&body),
            &key,
        )
        .await;
    let first_body = first.expect(201).clone();
    // The same change, keys reordered and a null field added.
    let same = json!({
        "justification": body["justification"], "title": body["title"],
        "changeKind": "update", "policyType": "network",
        "policyId": body["policyId"], "riskScore": null
    });
    let again = server
        .call(
            Method::POST,
            "/v1/requests",
            Some("alice"),
            Some(&same),
            &key,
        )
        .await;
    assert_eq!(again.expect(201), &first_body);
    assert_eq!(again.text, first.text);
    // Another principal's key is another key.
    let other = server
        .call(Method::POST, "/v1/requests", Some("bob"), Some(&body), &key)
        .await;
    assert_ne!(other.expect(201)["id"], first_body["id"]);
    // Another change under the same key.
    let mut different = body.clone();
    different["title"] = json!("Something else");
    server
        .call(
            Method::POST,
            "/v1/requests",
            Some("alice"),
            Some(&different),
            &key,
        )
        .await
        .expect_error(409, "conflict");
    // Malformed keys.
    for bad in ["has space", &"k".repeat(256)] {
        server
            .call(
                Method::POST,
                "/v1/requests",
                Some("alice"),
                Some(&body),
                &[("idempotency-key", bad)],
            )
            .await
            .expect_error(400, "invalid_request");
    }
    let listed = server.get("/v1/requests?limit=500", Some("alice")).await;
    assert_eq!(listed.expect(200)["items"].as_array().unwrap().len(), 2);
    server.stop().await;
}

pub async fn sixty_four_concurrent_approvers_are_counted_exactly(backend: &Backend) {
    let server = Arc::new(backend.start().await);
    let request = server.create("alice", &change("crowd")).await;
    assert_eq!(request["level"], "crowd");
    let path = format!("/v1/requests/{}/approve", id(&request));
    let mut tasks = Vec::new();
    for index in 0..CROWD {
        let server = Arc::clone(&server);
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let who = format!("crowd-{index:02}");
            server.post(&path, &who, None).await.status
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    let done = server
        .get(&format!("/v1/requests/{}", id(&request)), Some("bob"))
        .await;
    let done = done.expect(200);
    assert_eq!(done["status"], "approved");
    let approvers: HashSet<&str> = done["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|approval| approval["by"].as_str().unwrap())
        .collect();
    assert_eq!(approvers.len(), CROWD);
    assert_eq!(done["approvals"].as_array().unwrap().len(), CROWD);
    assert_eq!(
        server
            .metric("signoff_decisions_total{outcome=\"approved\"}")
            .await,
        Some(1.0)
    );
    match Arc::try_unwrap(server) {
        Ok(server) => server.stop().await,
        Err(_) => panic!("the server is still shared"),
    }
}

pub async fn the_sweeper_expires_due_requests_and_counts_them(backend: &Backend) {
    let server = backend.start().await;
    let mut ids = HashSet::new();
    for _ in 0..3 {
        ids.insert(id(&server.create("alice", &change("ephemeral")).await));
    }
    let series = "signoff_decisions_total{outcome=\"expired\"}";
    let mut expired = 0.0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        expired = server.metric(series).await.unwrap_or(0.0);
        if expired >= 3.0 {
            break;
        }
    }
    assert_eq!(expired, 3.0);
    let listed = server.get("/v1/requests?status=expired", Some("bob")).await;
    let listed: HashSet<String> = listed.expect(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id)
        .collect();
    assert_eq!(listed, ids);
    let one = server
        .get(
            &format!("/v1/requests/{}", ids.iter().next().unwrap()),
            Some("bob"),
        )
        .await;
    let one = one.expect(200);
    assert_eq!(
        one["history"].as_array().unwrap().last().unwrap()["actor"],
        "system"
    );
    assert_eq!(one["updatedAt"], one["expiresAt"]);
    server.stop().await;
}

pub async fn metrics_health_and_request_ids(backend: &Backend) {
    let server = backend.start().await;
    server.create("alice", &change("network")).await;
    server.create("alice", &change("docs")).await;
    server
        .post("/v1/requests", "alice", Some(&json!({})))
        .await
        .expect(400);
    let health = server.get("/healthz", None).await;
    assert_eq!(health.expect(200)["status"], "ok");
    let ready = server.get("/readyz", None).await;
    assert_eq!(ready.expect(200)["status"], "ready");

    let metrics = server
        .metrics_with(&["signoff_pending_requests 1", "signoff_level_ttl_seconds{"])
        .await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "{:?}",
        metrics.headers
    );
    for line in [
        "signoff_requests_created_total{level=\"peer\",policy_type=\"network\"} 1",
        "signoff_requests_created_total{level=\"auto\",policy_type=\"docs\"} 1",
        "signoff_invalid_requests_total 1",
        "signoff_pending_requests 1",
        "signoff_level_ttl_seconds{level=\"brief\"} 1",
        "# TYPE signoff_oldest_pending_age_seconds gauge",
        "# TYPE signoff_decision_duration_seconds histogram",
        "signoff_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/requests\",status=\"201\"} 2",
    ] {
        assert!(
            metrics.text.contains(line),
            "{line} missing from\n{}",
            metrics.text
        );
    }
    let age = server
        .metric("signoff_oldest_pending_age_seconds")
        .await
        .unwrap();
    assert!((0.0..60.0).contains(&age), "{age}");
    let open = server
        .call(
            Method::GET,
            "/metrics",
            None,
            None,
            &[("accept", "application/openmetrics-text")],
        )
        .await;
    assert!(
        open.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );

    // Request ids: echoed when given, generated when not.
    let given = server
        .call(
            Method::GET,
            "/healthz",
            None,
            None,
            &[("x-request-id", "trace-me-123")],
        )
        .await;
    assert_eq!(given.headers["x-request-id"], "trace-me-123");
    let made = server.get("/nope", None).await;
    let made = made.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made.len(), 36, "{made}");
    server.stop().await;
}

/// Rules with the approval model of docs/CONTRACT.md section 10: a stage of
/// two groups, an escalating stage, and break-glass with a review due in a
/// second.
fn approval_model_rules() -> Value {
    json!({
        "levels": [
            { "name": "peer", "ttlSeconds": 3600, "stages": [
                { "name": "review", "groups": [
                    { "name": "eng", "requiredApprovals": 1, "eligibleRoles": ["engineer"] },
                    { "name": "sec", "requiredApprovals": 1, "eligibleRoles": ["security"] }
                ]}
            ]},
            { "name": "critical", "ttlSeconds": 3600,
              "emergency": { "allowedRoles": ["security-lead"], "reviewWithinSeconds": 1 },
              "stages": [
                { "name": "security", "requiredApprovals": 1, "eligibleRoles": ["security"],
                  "escalateAfterSeconds": 1, "escalationRoles": ["security-lead"] }
            ]}
        ],
        "defaultLevel": "peer",
        "rules": [{ "name": "prod", "when": { "environments": ["prod"] }, "level": "critical" }]
    })
}

/// The ids of a listing page's items.
fn listed(answer: &super::Answer) -> Vec<String> {
    answer.expect(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id)
        .collect()
}

/// Polls `path` as `who` until `done` holds of the answer, for up to 10 s.
async fn eventually(
    server: &Server,
    path: &str,
    who: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..100 {
        let answer = server.get(path, Some(who)).await;
        let body = answer.expect(200).clone();
        if done(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never reached the state waited for");
}

pub async fn the_approval_model_over_http(backend: &Backend) {
    let server = backend.start_with(approval_model_rules()).await;
    // Groups, and the inbox of each principal.
    let grouped = id(&server.create("alice", &change("iam")).await);
    let inbox = "/v1/requests?actionableBy=me";
    assert_eq!(
        listed(&server.get(inbox, Some("bob")).await),
        std::slice::from_ref(&grouped)
    );
    assert_eq!(
        listed(&server.get(inbox, Some("carol")).await),
        std::slice::from_ref(&grouped)
    );
    assert!(listed(&server.get(inbox, Some("alice")).await).is_empty());
    let approve = |who: &'static str, id: String| {
        let server = &server;
        async move {
            server
                .post(&format!("/v1/requests/{id}/approve"), who, None)
                .await
        }
    };
    let after_bob = approve("bob", grouped.clone()).await;
    assert_eq!(after_bob.expect(200)["approvals"][0]["group"], "eng");
    assert!(listed(&server.get(inbox, Some("bob")).await).is_empty());
    approve("erin", grouped.clone())
        .await
        .expect_error(403, "not_eligible");
    let done = approve("carol", grouped.clone()).await;
    assert_eq!(done.expect(200)["status"], "approved");
    server
        .get("/v1/requests?actionableBy=carol", Some("bob"))
        .await
        .expect_error(400, "invalid_request");
    server
        .get("/v1/requests?actionableBy=me&status=approved", Some("bob"))
        .await
        .expect_error(400, "invalid_request");

    // Amend: wording keeps the approval, anything else drops it.
    let amended = id(&server.create("alice", &change("iam")).await);
    approve("bob", amended.clone()).await.expect(200);
    let amend = format!("/v1/requests/{amended}/amend");
    let mut reworded = change("iam");
    reworded["title"] = json!("Tighten the policy, as the audit asked");
    let kept = server.post(&amend, "alice", Some(&reworded)).await;
    let kept = kept.expect(200);
    assert_eq!(kept["approvals"].as_array().unwrap().len(), 1);
    assert_eq!(
        kept["history"].as_array().unwrap().last().unwrap()["approvalsReset"],
        false
    );
    assert_eq!(
        kept["approvals"][0]["changeDigest"].as_str().unwrap().len(),
        64
    );
    assert_ne!(kept["approvals"][0]["changeDigest"], kept["changeDigest"]);
    let mut rescoped = reworded.clone();
    rescoped["policyId"] = json!("iam/policy-2");
    let reset = server.post(&amend, "alice", Some(&rescoped)).await;
    assert_eq!(reset.expect(200)["approvals"], json!([]));
    server
        .post(&amend, "bob", Some(&rescoped))
        .await
        .expect_error(403, "forbidden");
    server
        .post(&amend, "alice", Some(&json!({ "title": 1 })))
        .await
        .expect_error(400, "invalid_request");

    // Escalation: the sweeper records it, then the escalation role may act.
    let mut prod = change("iam");
    prod["environment"] = json!("prod");
    let escalating = id(&server.create("alice", &prod).await);
    approve("dave", escalating.clone())
        .await
        .expect_error(403, "not_eligible");
    let path = format!("/v1/requests/{escalating}");
    let escalated = eventually(&server, &path, "bob", |request| {
        request["history"]
            .as_array()
            .is_some_and(|history| history.iter().any(|entry| entry["action"] == "escalate"))
    })
    .await;
    let entry = escalated["history"][1].clone();
    assert_eq!(
        (entry["actor"].as_str(), entry["stage"].as_str()),
        (Some("system"), Some("security"))
    );
    assert_eq!(
        approve("dave", escalating).await.expect(200)["status"],
        "approved"
    );

    // Break-glass, its review, and the listings and metrics of open reviews.
    let mut emergency = prod.clone();
    emergency["emergency"] = json!({ "reason": "The payment service is down right now." });
    server
        .post("/v1/requests", "alice", Some(&emergency))
        .await
        .expect_error(403, "forbidden");
    let filed = server.post("/v1/requests", "dave", Some(&emergency)).await;
    let filed = filed.expect(201).clone();
    assert_eq!(filed["status"], "approved");
    assert_eq!(filed["emergency"]["review"]["status"], "open");
    assert!(filed["change"].get("emergency").is_none());
    let broken_glass = id(&filed);
    let open = "/v1/requests?emergencyReview=open";
    assert_eq!(
        listed(&server.get(open, Some("bob")).await),
        std::slice::from_ref(&broken_glass)
    );
    eventually(
        &server,
        "/v1/requests?emergencyReview=overdue",
        "bob",
        |page| {
            page["items"]
                .as_array()
                .is_some_and(|items| items.len() == 1)
        },
    )
    .await;
    for _ in 0..100 {
        if server.metric("signoff_emergency_reviews_overdue").await == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        server.metric("signoff_emergency_reviews_overdue").await,
        Some(1.0)
    );
    server
        .get(
            "/v1/requests?emergencyReview=open&status=pending",
            Some("bob"),
        )
        .await
        .expect_error(400, "invalid_request");
    let review = format!("/v1/requests/{broken_glass}/review");
    let ratify = json!({ "outcome": "ratified", "comment": "The outage justified it." });
    server
        .post(&review, "dave", Some(&ratify))
        .await
        .expect_error(403, "self_approval");
    server
        .post(&review, "alice", Some(&ratify))
        .await
        .expect_error(403, "not_eligible");
    let closed = server.post(&review, "carol", Some(&ratify)).await;
    assert_eq!(
        closed.expect(200)["emergency"]["review"]["status"],
        "ratified"
    );
    server
        .post(&review, "carol", Some(&ratify))
        .await
        .expect_error(409, "not_pending");
    assert!(listed(&server.get(open, Some("bob")).await).is_empty());

    // A replacement answers the stages the known principals could never
    // meet as warnings, and is not refused for them.
    let mut strict = approval_model_rules();
    strict["levels"].as_array_mut().unwrap().push(
        json!({ "name": "board", "ttlSeconds": 3600, "stages": [
            { "name": "sign-off", "requiredApprovals": 2, "eligibleRoles": ["security"] }
        ]}),
    );
    let replaced = server
        .call(Method::PUT, "/v1/rules", Some("admin"), Some(&strict), &[])
        .await;
    let warnings = replaced.expect(200)["warnings"].clone();
    assert_eq!(warnings.as_array().unwrap().len(), 1, "{warnings}");
    assert_eq!(warnings[0]["path"], "levels[2].stages[0]");
    assert_eq!(warnings[0]["code"], "unsatisfiable");
    server.stop().await;
}

pub async fn visibility_hides_what_a_principal_may_not_see(backend: &Backend) {
    let mut rules = rules_json();
    rules["visibility"] = json!("involved");
    let server = backend.start_with(rules).await;
    let peer = id(&server.create("alice", &change("iam")).await);
    let path = format!("/v1/requests/{peer}");
    // `nobody` holds no role of the level; `carol` holds none either (the
    // peer level asks engineers); `admin` sees everything.
    for who in ["nobody", "carol"] {
        server
            .get(&path, Some(who))
            .await
            .expect_error(404, "not_found");
        server
            .post(
                &format!("{path}/comments"),
                who,
                Some(&json!({ "text": "hello" })),
            )
            .await
            .expect_error(404, "not_found");
        server
            .post(&format!("{path}/approve"), who, None)
            .await
            .expect_error(404, "not_found");
        let page = server.get("/v1/requests", Some(who)).await;
        assert!(listed(&page).is_empty(), "{who} lists it");
    }
    for who in ["alice", "bob", "admin"] {
        server.get(&path, Some(who)).await.expect(200);
        let page = server.get("/v1/requests", Some(who)).await;
        assert_eq!(listed(&page), std::slice::from_ref(&peer), "{who}");
    }
    server
        .get("/v1/requests?viewer=bob", Some("nobody"))
        .await
        .expect_error(400, "invalid_request");
    server.stop().await;
}

/// Reads the server-sent events of `response` until `count` events came (or
/// 10 s passed): each as `(id, type, data)`.
/// `POST /v1/rules/simulate`: what a draft would change, stored nowhere;
/// a broken body is 400 before a missing role is 403 (section 9), and the
/// limit is checked at its bounds.
pub async fn rules_are_simulated_without_being_stored(backend: &Backend) {
    let server = backend.start().await;
    let pending = server.create("alice", &change("network")).await;
    let mut draft = rules_json();
    draft["defaultLevel"] = json!("security");
    let simulate = |who: &'static str, body: Value| {
        let server = &server;
        async move { server.post("/v1/rules/simulate", who, Some(&body)).await }
    };
    let answer = simulate("admin", json!({ "rules": draft })).await;
    let body = answer.expect(200).clone();
    assert_eq!(body["valid"], true);
    assert_eq!(body["examined"], 1);
    assert_eq!(body["changed"], 1);
    let item = &body["items"][0];
    assert_eq!(item["id"], pending["id"]);
    assert_eq!(item["level"], "peer");
    assert_eq!(item["newLevel"], "security");
    assert!(item["newExplanation"].is_object(), "{item}");
    for field in ["errors", "warnings", "digest", "items"] {
        assert!(body.get(field).is_some(), "{field} in {body}");
    }
    // Nothing was stored: the rules and the request are as they were.
    let rules = server.get("/v1/rules", Some("bob")).await;
    assert_eq!(rules.expect(200)["defaultLevel"], "peer");
    let again = server
        .get(&format!("/v1/requests/{}", id(&pending)), Some("alice"))
        .await;
    assert_eq!(again.expect(200)["level"], "peer");
    // An invalid draft is an answer, not an error.
    let invalid = simulate("admin", json!({ "rules": { "levels": [] } })).await;
    assert_eq!(invalid.expect(200)["valid"], false);
    // The order of the refusals, and the limit's bounds.
    simulate("bob", json!({ "rules": draft, "limit": 10_001 }))
        .await
        .expect_error(400, "invalid_request");
    simulate("bob", json!("junk"))
        .await
        .expect_error(400, "invalid_request");
    simulate("bob", json!({ "rules": draft }))
        .await
        .expect_error(403, "forbidden");
    simulate("admin", json!({ "rules": draft, "limit": 10_001 }))
        .await
        .expect_error(400, "invalid_request");
    simulate("admin", json!({ "rules": draft, "limit": 0 }))
        .await
        .expect_error(400, "invalid_request");
    simulate("admin", json!({ "rules": draft, "limit": 10_000 }))
        .await
        .expect(200);
    server
        .call(
            Method::POST,
            "/v1/rules/simulate",
            None,
            Some(&json!({})),
            &[],
        )
        .await
        .expect_error(401, "unauthenticated");
    server.stop().await;
}

/// A stream follows the log across a server restart: a client that
/// reconnects to the next server with `Last-Event-ID` gets every event
/// committed after the last one it read, in order, those committed while
/// no server ran included. `config` makes a server over a shared store.
pub async fn a_stream_resumes_across_a_restart(config: impl Fn() -> super::Config) {
    let first = Server::start(config()).await;
    let mut live = first
        .client
        .get(format!("{}/v1/events/stream", first.base))
        .bearer_auth(token("bob"))
        .send()
        .await
        .unwrap();
    let created = first.create("alice", &change("network")).await;
    let seen = read_events(&mut live, 1).await;
    assert_eq!(seen[0].1, "request.created");
    let last_seen = seen[0].0.clone();
    // More happens before the server stops, unseen by the stream (it is not
    // read any more), then through another server.
    first.create("erin", &change("network")).await;
    first.stop().await;
    let second = Server::start(config()).await;
    second
        .post(
            &format!("/v1/requests/{}/approve", id(&created)),
            "bob",
            None,
        )
        .await
        .expect(200);
    second.create("alice", &change("docs")).await;
    let listed = second
        .get(&format!("/v1/events?after={last_seen}"), Some("bob"))
        .await
        .expect(200)
        .clone();
    let expected: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["id"].as_str().unwrap())
        .collect();
    assert!(expected.len() >= 4, "{listed}");
    let mut resumed = second
        .client
        .get(format!("{}/v1/events/stream", second.base))
        .bearer_auth(token("bob"))
        .header("last-event-id", last_seen.as_str())
        .send()
        .await
        .unwrap();
    let again = read_events(&mut resumed, expected.len()).await;
    let ids: Vec<&str> = again
        .iter()
        .map(|(event_id, _, _)| event_id.as_str())
        .collect();
    assert_eq!(ids, expected, "nothing missed, nothing twice, in order");
    drop(resumed);
    second.stop().await;
}

async fn read_events(
    response: &mut reqwest::Response,
    count: usize,
) -> Vec<(String, String, Value)> {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let events: Vec<(String, String, Value)> = text
            .split("\n\n")
            .filter(|block| block.contains("data:"))
            .map(|block| {
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|line| line.strip_prefix(name))
                        .map(|value| value.trim_start().to_owned())
                        .unwrap_or_default()
                };
                let data = serde_json::from_str(&field("data:")).unwrap_or(Value::Null);
                (field("id:"), field("event:"), data)
            })
            .collect();
        // A block is whole once the blank line after it arrived.
        let whole = text.matches("\n\n").count();
        if events.len() >= count && whole >= count {
            return events;
        }
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("the events came in time")
            .expect("the stream stays open")
            .expect("the stream has more");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}

pub async fn events_are_listed_and_streamed(backend: &Backend) {
    let server = backend.start().await;
    // A stream opened before anything happened starts with the next event.
    let before = server.create("alice", &change("iam")).await;
    let mut live = server
        .client
        .get(format!("{}/v1/events/stream", server.base))
        .bearer_auth(token("bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    assert!(
        live.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let filed = id(&server.create("alice", &change("iam")).await);
    server
        .post(&format!("/v1/requests/{filed}/approve"), "bob", None)
        .await
        .expect(200);
    let streamed = read_events(&mut live, 4).await;
    let kinds: Vec<&str> = streamed.iter().map(|(_, kind, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "request.created",
            "request.approval",
            "request.stage_passed",
            "request.approved"
        ]
    );
    for (event_id, kind, data) in &streamed {
        assert_eq!(data["id"], json!(event_id));
        assert_eq!(data["type"], json!(kind));
        assert_eq!(data["requestId"], json!(filed));
    }
    drop(live);

    // The log, paged.
    let all = server.get("/v1/events?limit=500", Some("bob")).await;
    let items = all.expect(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 5, "{items:?}");
    assert_eq!(items[0]["requestId"], json!(id(&before)));
    let first = server.get("/v1/events?limit=2", Some("bob")).await;
    let first = first.expect(200).clone();
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["nextCursor"].as_str().unwrap().to_owned();
    assert_eq!(first["items"][1]["id"], json!(cursor));
    let rest = server
        .get(&format!("/v1/events?after={cursor}&limit=2"), Some("bob"))
        .await;
    assert_eq!(rest.expect(200)["items"][0], items[2]);
    for bad in [
        "/v1/events?after=x",
        "/v1/events?limit=0",
        "/v1/events?limit=501",
        "/v1/events?since=1",
    ] {
        server
            .get(bad, Some("bob"))
            .await
            .expect_error(400, "invalid_request");
    }
    server
        .get("/v1/events", None)
        .await
        .expect_error(401, "unauthenticated");

    // Resuming after an event sends what followed it.
    let mut resumed = server
        .client
        .get(format!("{}/v1/events/stream", server.base))
        .bearer_auth(token("bob"))
        .header("last-event-id", items[1]["id"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let again = read_events(&mut resumed, 2).await;
    assert_eq!(again[0].0, items[2]["id"].as_str().unwrap());
    assert_eq!(again[1].0, items[3]["id"].as_str().unwrap());
    let bad_resume = server
        .call(
            Method::GET,
            "/v1/events/stream",
            Some("bob"),
            None,
            &[("last-event-id", "x")],
        )
        .await;
    bad_resume.expect_error(400, "invalid_request");
    // Shutting down ends the streams still open, within the grace period.
    let started = std::time::Instant::now();
    server.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // What it had sent before is still to be read; then it ends.
    let mut ended = false;
    for _ in 0..100 {
        match tokio::time::timeout(Duration::from_secs(5), resumed.chunk()).await {
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None) | Err(_)) => {
                ended = true;
                break;
            }
            Err(_) => break,
        }
    }
    assert!(ended, "the stream ended");
}

/// `q` finds requests by title or `policyId`, ignoring case, combines with
/// the other filters, pages with a cursor bound to the text, and is
/// bounded: 200 characters after trimming, 201 refused.
pub async fn requests_are_searched_by_title_and_policy_id(backend: &Backend) {
    let server = backend.start().await;
    let mut okta = change("iam");
    okta["title"] = json!("Rotate the OKTA signing key");
    okta["policyId"] = json!("iam/okta-prod");
    let okta = server.create("alice", &okta).await;
    let mut edge = change("network");
    edge["title"] = json!("Open 443 on the edge");
    edge["policyId"] = json!("fw/Edge-1");
    let edge = server.create("alice", &edge).await;
    server.create("alice", &change("network")).await;
    let ids_of = |page: &Value| -> Vec<Value> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| item["id"].clone())
            .collect()
    };
    let page = server.get("/v1/requests?q=okta", Some("bob")).await;
    assert_eq!(ids_of(page.expect(200)), [okta["id"].clone()]);
    let page = server
        .get(
            "/v1/requests?q=%20EDGE-1%20&policyType=network",
            Some("bob"),
        )
        .await;
    assert_eq!(ids_of(page.expect(200)), [edge["id"].clone()]);
    let page = server
        .get("/v1/requests?q=edge&policyType=iam", Some("bob"))
        .await;
    assert_eq!(ids_of(page.expect(200)), Vec::<Value>::new());
    // Every request's title holds "the"; one a page, the cursor bound to it.
    let first = server.get("/v1/requests?q=the&limit=1", Some("bob")).await;
    let first = first.expect(200).clone();
    assert_eq!(ids_of(&first).len(), 1);
    let cursor = first["nextCursor"].as_str().expect("a next cursor");
    let second = server
        .get(
            &format!("/v1/requests?q=the&limit=5&cursor={cursor}"),
            Some("bob"),
        )
        .await;
    assert_eq!(ids_of(second.expect(200)).len(), 2);
    server
        .get(
            &format!("/v1/requests?q=tighten&cursor={cursor}"),
            Some("bob"),
        )
        .await
        .expect_error(400, "invalid_request");
    let longest = "x".repeat(200);
    let page = server
        .get(&format!("/v1/requests?q={longest}"), Some("bob"))
        .await;
    assert_eq!(ids_of(page.expect(200)), Vec::<Value>::new());
    let too_long = server
        .get(&format!("/v1/requests?q={longest}x"), Some("bob"))
        .await;
    too_long.expect_error(400, "invalid_request");
    assert_eq!(too_long.body["error"]["details"][0]["path"], "q");
    assert_eq!(too_long.body["error"]["details"][0]["code"], "too_long");
    server
        .get("/v1/requests?q=%20%20", Some("bob"))
        .await
        .expect_error(400, "invalid_request");
    server
        .get("/v1/requests?q=a%E2%80%AEb", Some("bob"))
        .await
        .expect_error(400, "invalid_request");
}

/// `GET /v1/principals` names every principal of the file, by id, with
/// roles and never a token, to any signed-in caller.
pub async fn principals_are_listed_without_their_tokens(backend: &Backend) {
    let server = backend.start().await;
    let answer = server.get("/v1/principals", Some("nobody")).await;
    let body = answer.expect(200);
    assert_eq!(body["known"], true);
    let data = body["data"].as_array().expect("data");
    assert_eq!(data.len(), CROWD + 8);
    let ids: Vec<&str> = data
        .iter()
        .map(|principal| principal["id"].as_str().expect("id"))
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted);
    let carol = data
        .iter()
        .find(|principal| principal["id"] == "carol")
        .expect("carol");
    assert_eq!(carol, &json!({ "id": "carol", "roles": ["security"] }));
    assert!(!answer.text.contains("token-of-"), "{}", answer.text);
    server
        .get("/v1/principals", None)
        .await
        .expect_error(401, "unauthenticated");
}
