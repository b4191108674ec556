//! OpenID Connect sign-in: JWTs signed by keys generated here (RSA, P-256,
//! Ed25519), published by a JWKS server on a loopback port this test
//! chooses, which counts how often it is fetched and can hang or go down.
//! Every refusal must be the same 401 `unauthenticated`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a panic"
)]

mod http_common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser as _;
use http_common::{Answer, Server, change};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use rsa::pkcs8::EncodePrivateKey;
use serde_json::{Value, json};
use signoff_host::server::cli::{Cli, Command};
use signoff_host::server::{self, Config, ServerError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const ISSUER: &str = "https://idp.test/realm";
const AUDIENCE: &str = "signoff-api";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A signing key and its public JWK.
struct TestKey {
    kid: String,
    alg: &'static str,
    signer: Signer,
    jwk: Value,
}

impl TestKey {
    fn rsa(kid: &str) -> Self {
        use rsa::Generate as _;
        let private = rsa::PrivateKey::generate();
        let der = private.to_pkcs8_der().unwrap();
        let pair = RsaKeyPair::from_pkcs8(der.as_bytes()).unwrap();
        let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
        let jwk = json!({
            "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": b64(&public.n), "e": b64(&public.e),
        });
        Self {
            kid: kid.into(),
            alg: "RS256",
            signer: Signer::Rsa(pair),
            jwk,
        }
    }

    fn ec(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": kid,
            "x": b64(&point[1..33]), "y": b64(&point[33..65]),
        });
        Self {
            kid: kid.into(),
            alg: "ES256",
            signer: Signer::Ec(pair),
            jwk,
        }
    }

    fn ed(kid: &str) -> Self {
        let der = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(der.as_ref()).unwrap();
        let jwk = json!({
            "kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA",
            "x": b64(pair.public_key().as_ref()),
        });
        Self {
            kid: kid.into(),
            alg: "EdDSA",
            signer: Signer::Ed(pair),
            jwk,
        }
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Rsa(pair) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .unwrap();
                signature
            }
            Signer::Ec(pair) => pair.sign(&rng, message).unwrap().as_ref().to_vec(),
            Signer::Ed(pair) => pair.sign(message).as_ref().to_vec(),
        }
    }

    fn header(&self) -> Value {
        json!({ "alg": self.alg, "kid": self.kid, "typ": "JWT" })
    }

    /// A token of `claims` under this key's own header.
    fn token(&self, claims: &Value) -> String {
        self.token_with(&self.header(), claims)
    }

    /// A token of `claims` under `header`, signed by this key.
    fn token_with(&self, header: &Value, claims: &Value) -> String {
        let message = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = self.sign(message.as_bytes());
        format!("{message}.{}", b64(&signature))
    }
}

/// The keys, generated once per run (an RSA key takes a moment).
struct Keys {
    rsa: TestKey,
    ec: TestKey,
    ed: TestKey,
    /// Claims the `kid` of `rsa`, but is another key.
    impostor: TestKey,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys {
    rsa: TestKey::rsa("rsa-1"),
    ec: TestKey::ec("ec-1"),
    ed: TestKey::ed("ed-1"),
    impostor: TestKey::rsa("rsa-1"),
});

fn jwks(keys: &[&TestKey]) -> String {
    json!({ "keys": keys.iter().map(|key| key.jwk.clone()).collect::<Vec<_>>() }).to_string()
}

/// Claims that pass every check, for `sub` with `roles`.
fn claims(sub: &str, roles: Value) -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "roles": roles,
        "iat": now(), "exp": now() + 300,
    })
}

/// A JWKS server on a loopback port: serves the current document, counts
/// fetches, and can hang or be stopped.
struct JwksServer {
    url: String,
    document: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
    hang: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    async fn start(document: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let document = Arc::new(Mutex::new(document));
        let fetches = Arc::new(AtomicUsize::new(0));
        let hang = Arc::new(AtomicBool::new(false));
        let (served, counted, hanging) = (
            Arc::clone(&document),
            Arc::clone(&fetches),
            Arc::clone(&hang),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let (served, counted, hanging) = (
                    Arc::clone(&served),
                    Arc::clone(&counted),
                    Arc::clone(&hanging),
                );
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0_u8; 1024];
                    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => head.extend_from_slice(&buffer[..read]),
                        }
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    if hanging.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        return;
                    }
                    let body = served.lock().unwrap().clone();
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self {
            url,
            document,
            fetches,
            hang,
            task,
        }
    }

    fn publish(&self, document: String) {
        *self.document.lock().unwrap() = document;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Stops listening: the next fetch is refused.
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// The configuration `signoff serve` makes of the OIDC flags (and `extra`)
/// with the test rules, without a principals file.
/// `signoff serve` parsed from `argv`.
fn serve_args(argv: &[&str]) -> signoff_host::server::cli::ServeArgs {
    let Command::Serve(args) = Cli::try_parse_from(argv).unwrap().command else {
        panic!("`signoff serve` parsed as another command");
    };
    *args
}

fn oidc_config(jwks: &str, extra: &[&str]) -> Config {
    let mut argv = vec![
        "signoff",
        "serve",
        "--rules",
        concat!(env!("CARGO_MANIFEST_DIR"), "/demo/rules.json"),
        "--oidc-issuer",
        ISSUER,
        "--oidc-audience",
        AUDIENCE,
        "--oidc-jwks",
        jwks,
    ];
    argv.extend_from_slice(extra);
    let args = serve_args(&argv);
    let (mut config, demo) = args.config().unwrap();
    assert!(!demo);
    assert!(config.principals.is_empty());
    config.rules = http_common::config().rules;
    config
}

async fn me(server: &Server, token: &str) -> Answer {
    let response = server
        .client
        .get(format!("{}/v1/me", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    Server::answer(response).await
}

#[track_caller]
fn expect_refused(answer: &Answer, what: &str) {
    assert_eq!(answer.status.as_u16(), 401, "{what}: {}", answer.text);
    assert_eq!(answer.code(), "unauthenticated", "{what}: {}", answer.text);
    assert_eq!(
        answer.body["error"]["message"], "the bearer token is not valid",
        "{what}: the same answer whatever is wrong"
    );
}

#[tokio::test]
async fn a_token_of_each_algorithm_signs_in() {
    let keys = &*KEYS;
    let idp = JwksServer::start(jwks(&[&keys.rsa, &keys.ec, &keys.ed])).await;
    let server = Server::start(oidc_config(&idp.url, &[])).await;
    for key in [&keys.rsa, &keys.ec, &keys.ed] {
        let id = format!("user-{}", key.alg.to_lowercase());
        let answer = me(
            &server,
            &key.token(&claims(&id, json!(["engineer", "admin"]))),
        )
        .await;
        assert_eq!(
            answer.expect(200),
            &json!({ "id": id, "roles": ["engineer", "admin"] }),
            "{}",
            key.alg
        );
    }
    // Roles as a space-separated string, and no roles at all.
    let answer = me(
        &server,
        &keys.ed.token(&claims("erin", json!("engineer security"))),
    )
    .await;
    assert_eq!(answer.expect(200)["roles"], json!(["engineer", "security"]));
    let mut no_roles = claims("nadia", Value::Null);
    no_roles.as_object_mut().unwrap().remove("roles");
    assert_eq!(
        me(&server, &keys.ec.token(&no_roles)).await.expect(200)["roles"],
        json!([])
    );
    // The audience may be one of several; a token 30 s past `exp` is within
    // the leeway, and so is one valid 30 s from now.
    let mut lenient = claims("late", json!([]));
    lenient["aud"] = json!(["other-api", AUDIENCE]);
    lenient["exp"] = json!(now() - 30);
    lenient["nbf"] = json!(now() + 30);
    assert_eq!(
        me(&server, &keys.rsa.token(&lenient)).await.expect(200)["id"],
        "late"
    );

    // A JWT caller goes through the whole API: it creates a request (the
    // body is read after the token is verified) as itself.
    let token = keys.ed.token(&claims("jwt-alice", json!(["engineer"])));
    let response = server
        .client
        .post(format!("{}/v1/requests", server.base))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(change("docs").to_string())
        .send()
        .await
        .unwrap();
    let created = Server::answer(response).await;
    assert_eq!(created.expect(201)["requestedBy"], "jwt-alice");
    assert_eq!(idp.fetches(), 1, "the keys are fetched once, at start");
    server.stop().await;
}

#[tokio::test]
async fn the_claims_can_be_renamed() {
    let keys = &*KEYS;
    let idp = JwksServer::start(jwks(&[&keys.ed])).await;
    let config = oidc_config(
        &idp.url,
        &["--oidc-id-claim", "email", "--oidc-roles-claim", "groups"],
    );
    let server = Server::start(config).await;
    let mut custom = claims("ignored-sub", json!(["ignored"]));
    custom["email"] = json!("bob@example.com");
    custom["groups"] = json!("ops security");
    assert_eq!(
        me(&server, &keys.ed.token(&custom)).await.expect(200),
        &json!({ "id": "bob@example.com", "roles": ["ops", "security"] })
    );
    custom["groups"] = json!(["ops"]);
    assert_eq!(
        me(&server, &keys.ed.token(&custom)).await.expect(200)["roles"],
        json!(["ops"])
    );
    // Without the id claim, or with roles of another type: refused.
    let no_email = claims("sub-only", json!([]));
    expect_refused(&me(&server, &keys.ed.token(&no_email)).await, "no email");
    custom["groups"] = json!({ "ops": true });
    expect_refused(&me(&server, &keys.ed.token(&custom)).await, "groups object");
    server.stop().await;
}

#[tokio::test]
async fn every_bad_token_is_unauthenticated() {
    let keys = &*KEYS;
    let idp = JwksServer::start(jwks(&[&keys.rsa, &keys.ec, &keys.ed])).await;
    let server = Server::start(oidc_config(&idp.url, &[])).await;
    let good = claims("alice", json!(["engineer"]));
    let with = |field: &str, value: Value| {
        let mut claims = good.clone();
        claims[field] = value;
        claims
    };
    let without = |field: &str| {
        let mut claims = good.clone();
        claims.as_object_mut().unwrap().remove(field);
        claims
    };
    // The accepted token these are variations of.
    me(&server, &keys.rsa.token(&good)).await.expect(200);

    let rsa_header = keys.rsa.header();
    let unsigned = format!(
        "{}.{}.",
        b64(json!({ "alg": "none", "kid": "rsa-1" })
            .to_string()
            .as_bytes()),
        b64(good.to_string().as_bytes())
    );
    // HS256 keyed with the RSA key's public JWK and with its modulus: the
    // classic confusion of a public key for an HMAC secret.
    let hmac_token = |secret: &[u8]| {
        let message = format!(
            "{}.{}",
            b64(json!({ "alg": "HS256", "kid": "rsa-1", "typ": "JWT" })
                .to_string()
                .as_bytes()),
            b64(good.to_string().as_bytes())
        );
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        let tag = ring::hmac::sign(&key, message.as_bytes());
        format!("{message}.{}", b64(tag.as_ref()))
    };
    let modulus = URL_SAFE_NO_PAD
        .decode(keys.rsa.jwk["n"].as_str().unwrap())
        .unwrap();
    let tampered = {
        let token = keys.ec.token(&good);
        let parts: Vec<&str> = token.split('.').collect();
        let admin = b64(with("roles", json!(["admin"])).to_string().as_bytes());
        format!("{}.{admin}.{}", parts[0], parts[2])
    };
    let stranger = TestKey::ed("ed-unknown");

    let cases: Vec<(&str, String)> = vec![
        (
            "expired beyond the leeway",
            keys.rsa.token(&with("exp", json!(now() - 120))),
        ),
        (
            "not yet valid beyond the leeway",
            keys.ec.token(&with("nbf", json!(now() + 120))),
        ),
        ("no exp", keys.ed.token(&without("exp"))),
        (
            "wrong issuer",
            keys.ed
                .token(&with("iss", json!("https://evil.test/realm"))),
        ),
        ("no issuer", keys.ed.token(&without("iss"))),
        (
            "wrong audience",
            keys.rsa.token(&with("aud", json!("another-api"))),
        ),
        ("no audience", keys.rsa.token(&without("aud"))),
        (
            "signed by the wrong key",
            keys.impostor.token_with(&rsa_header, &good),
        ),
        ("alg none", unsigned),
        (
            "HS256 keyed with the public JWK",
            hmac_token(keys.rsa.jwk.to_string().as_bytes()),
        ),
        ("HS256 keyed with the modulus", hmac_token(&modulus)),
        ("a tampered payload", tampered),
        ("an unknown kid", stranger.token(&good)),
        (
            "an ES256 key's kid under RS256",
            keys.rsa
                .token_with(&json!({ "alg": "RS256", "kid": "ec-1" }), &good),
        ),
        (
            "the reserved id",
            keys.ed.token(&with("sub", json!("system"))),
        ),
        (
            "a bidi control in the id",
            keys.ed.token(&with("sub", json!("ev\u{202E}e"))),
        ),
        ("a numeric id", keys.ed.token(&with("sub", json!(42)))),
        (
            "roles of another type",
            keys.ed.token(&with("roles", json!(7))),
        ),
        (
            "claims that are not an object",
            keys.ed.token(&json!(["alice"])),
        ),
        ("not a JWT", "a.b.c".to_owned()),
        ("garbage", "!!".to_owned()),
    ];
    for (what, token) in &cases {
        expect_refused(&me(&server, token).await, what);
    }
    // The unknown kid cost one refetch, no more.
    assert_eq!(idp.fetches(), 2);
    server.stop().await;
}

#[tokio::test]
async fn a_new_kid_is_fetched_once_a_minute_at_most() {
    let old = TestKey::ed("2026-old");
    let new = TestKey::ec("2026-new");
    let newer = TestKey::ed("2026-newer");
    let idp = JwksServer::start(jwks(&[&old])).await;
    let server = Arc::new(Server::start(oidc_config(&idp.url, &[])).await);
    assert_eq!(idp.fetches(), 1);
    me(&server, &old.token(&claims("a", json!([]))))
        .await
        .expect(200);
    expect_refused(
        &me(&server, &new.token(&claims("b", json!([])))).await,
        "before rotation",
    );
    assert_eq!(idp.fetches(), 2, "an unknown kid refetches");

    // Within the minute the keys are not fetched again, however many
    // tokens name unknown kids, even a key the issuer has since published.
    idp.publish(jwks(&[&old, &new]));
    let mut calls = Vec::new();
    for index in 0..20 {
        let server = Arc::clone(&server);
        let token = TestKey::ed(&format!("random-{index}")).token(&claims("c", json!([])));
        calls.push(tokio::spawn(async move { me(&server, &token).await }));
    }
    for call in calls {
        expect_refused(&call.await.unwrap(), "unknown kid");
    }
    expect_refused(
        &me(&server, &new.token(&claims("b", json!([])))).await,
        "within the minute",
    );
    assert_eq!(idp.fetches(), 2, "no refetch within a minute");
    me(&server, &old.token(&claims("a", json!([]))))
        .await
        .expect(200);
    drop(server);

    // On a fresh server, a rotation: many callers with the new kid at once
    // cost one fetch, and all get in.
    let idp = JwksServer::start(jwks(&[&old])).await;
    let server = Arc::new(Server::start(oidc_config(&idp.url, &[])).await);
    idp.publish(jwks(&[&old, &new, &newer]));
    let mut calls = Vec::new();
    for index in 0..16 {
        let server = Arc::clone(&server);
        let key = if index % 2 == 0 { &new } else { &newer };
        let token = key.token(&claims(&format!("rotated-{index}"), json!(["engineer"])));
        calls.push(tokio::spawn(async move { me(&server, &token).await }));
    }
    for call in calls {
        call.await.unwrap().expect(200);
    }
    assert_eq!(idp.fetches(), 2, "one fetch at start, one for the rotation");
}

#[tokio::test]
async fn the_known_keys_outlive_the_jwks_server() {
    let keys = &*KEYS;
    let idp = JwksServer::start(jwks(&[&keys.rsa, &keys.ed])).await;
    let server = Server::start(oidc_config(&idp.url, &[])).await;
    idp.stop().await;
    me(&server, &keys.rsa.token(&claims("a", json!([]))))
        .await
        .expect(200);
    // The refetch for an unknown kid fails; the keys known before stay.
    let stranger = TestKey::ed("ed-new");
    expect_refused(
        &me(&server, &stranger.token(&claims("b", json!([])))).await,
        "down",
    );
    me(&server, &keys.ed.token(&claims("c", json!([]))))
        .await
        .expect(200);
    me(&server, &keys.rsa.token(&claims("d", json!([]))))
        .await
        .expect(200);
    server.stop().await;
}

#[tokio::test]
async fn a_hanging_jwks_server_holds_only_the_unknown_kid_and_not_for_long() {
    let keys = &*KEYS;
    let idp = JwksServer::start(jwks(&[&keys.ed])).await;
    let server = Arc::new(Server::start(oidc_config(&idp.url, &[])).await);
    idp.hang.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let waiting = {
        let server = Arc::clone(&server);
        let token = TestKey::ed("ed-later").token(&claims("b", json!([])));
        tokio::spawn(async move { me(&server, &token).await })
    };
    while idp.fetches() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no refetch began"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // While the fetch hangs, a known key signs in at once.
    let known = Instant::now();
    me(&server, &keys.ed.token(&claims("a", json!([]))))
        .await
        .expect(200);
    assert!(
        known.elapsed() < Duration::from_secs(2),
        "{:?}",
        known.elapsed()
    );
    assert!(!waiting.is_finished());
    // The hanging fetch is given up after 5 s: a 401, not a stuck call.
    expect_refused(&waiting.await.unwrap(), "hanging JWKS");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(4), "{waited:?}");
    assert!(waited < Duration::from_secs(15), "{waited:?}");
    me(&server, &keys.ed.token(&claims("a", json!([]))))
        .await
        .expect(200);
}

#[tokio::test]
async fn a_jwks_file_works_and_is_read_again_for_a_new_kid() {
    let keys = &*KEYS;
    let dir = std::env::temp_dir().join(format!("signoff-oidc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("jwks.json");
    std::fs::write(&file, jwks(&[&keys.ec])).unwrap();
    let server = Server::start(oidc_config(file.to_str().unwrap(), &[])).await;
    assert_eq!(
        me(&server, &keys.ec.token(&claims("filed", json!("ops"))))
            .await
            .expect(200),
        &json!({ "id": "filed", "roles": ["ops"] })
    );
    std::fs::write(&file, jwks(&[&keys.ec, &keys.rsa])).unwrap();
    me(&server, &keys.rsa.token(&claims("rotated", json!([]))))
        .await
        .expect(200);
    server.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_principals_file_and_oidc_work_side_by_side() {
    let keys = &*KEYS;
    let idp = JwksServer::start(jwks(&[&keys.ed])).await;
    let mut config = oidc_config(&idp.url, &[]);
    config.principals = http_common::principals();
    let server = Server::start(config).await;
    let from_file = server.get("/v1/me", Some("carol")).await;
    assert_eq!(
        from_file.expect(200),
        &json!({ "id": "carol", "roles": ["security"] })
    );
    let answer = me(
        &server,
        &keys.ed.token(&claims("jwt-carol", json!(["security"]))),
    )
    .await;
    assert_eq!(answer.expect(200)["id"], "jwt-carol");
    expect_refused(
        &me(&server, "token-of-nobody-at-all").await,
        "opaque unknown token",
    );
    // Whoever the issuer vouches for may sign in: nobody can be listed.
    let directory = server.get("/v1/principals", Some("carol")).await;
    assert_eq!(
        directory.expect(200),
        &json!({ "data": [], "known": false })
    );
    server.stop().await;
}

#[tokio::test]
async fn the_server_does_not_start_without_usable_keys() {
    let keys = &*KEYS;
    let start = |config: Config| async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        tokio::time::timeout(
            Duration::from_secs(20),
            server::run(listener, config, std::future::pending::<()>()),
        )
        .await
        .expect("refused at once")
    };
    // Nobody listens there.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", closed.local_addr().unwrap());
    drop(closed);
    let error = start(oidc_config(&url, &[])).await.unwrap_err();
    assert!(matches!(error, ServerError::Oidc(_)), "{error}");
    // Only keys this server never uses (HMAC).
    let idp =
        JwksServer::start(r#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}"#.into()).await;
    let error = start(oidc_config(&idp.url, &[])).await.unwrap_err();
    assert!(
        error.to_string().contains("RS256, ES256 or EdDSA"),
        "{error}"
    );
    // A file that is not there.
    let error = start(oidc_config("/nonexistent/jwks.json", &[]))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("cannot read"), "{error}");
    // Too large a document.
    let mut big = vec![keys.ed.jwk.clone()];
    big.push(json!({ "kty": "oct", "k": "x".repeat(300 * 1024) }));
    let idp = JwksServer::start(json!({ "keys": big }).to_string()).await;
    let error = start(oidc_config(&idp.url, &[])).await.unwrap_err();
    assert!(error.to_string().contains("larger than"), "{error}");

    // Plain http to another host is refused when the flags are read.
    let argv = [
        "signoff",
        "serve",
        "--rules",
        concat!(env!("CARGO_MANIFEST_DIR"), "/demo/rules.json"),
        "--oidc-issuer",
        ISSUER,
        "--oidc-audience",
        AUDIENCE,
        "--oidc-jwks",
        "http://idp.example/jwks.json",
    ];
    let args = serve_args(&argv);
    let error = args.config().unwrap_err().to_string();
    assert!(error.contains("loopback"), "{error}");
}

/// What verifying one token costs, per algorithm, in this process (no
/// HTTP): `cargo test --release --workspace --test http_oidc -- --ignored
/// --nocapture verify_cost`.
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn verify_cost() {
    use signoff_host::server::oidc::Oidc;
    let keys = &*KEYS;
    let dir = std::env::temp_dir().join(format!("signoff-oidc-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("jwks.json");
    std::fs::write(&file, jwks(&[&keys.rsa, &keys.ec, &keys.ed])).unwrap();
    let settings = server::OidcSettings::new(ISSUER, AUDIENCE, file.to_str().unwrap()).unwrap();
    let oidc = Oidc::start(settings).await.unwrap();
    const ROUNDS: u32 = 2000;
    for key in [&keys.rsa, &keys.ec, &keys.ed] {
        let token = key.token(&claims("alice", json!(["engineer", "admin"])));
        oidc.authenticate(&token).await.unwrap();
        let started = Instant::now();
        for _ in 0..ROUNDS {
            oidc.authenticate(&token).await.unwrap();
        }
        println!(
            "{}: {:.1} us per token",
            key.alg,
            started.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
