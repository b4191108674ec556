//! The webhook endpoints of `--webhooks FILE` and the signature every
//! delivery carries (docs/CONTRACT.md section 12).

use std::path::Path;

use ring::hmac;
use serde_json::Value;
use signoff_core::events::{EventPattern, EventType};

use crate::outbound::OutboundUrl;

/// The most endpoints a file may list.
pub const MAX_ENDPOINTS: usize = 64;
/// The longest secret accepted, in bytes.
pub const MAX_SECRET_BYTES: usize = 1024;
/// The shortest secret accepted, in bytes. Shorter than
/// [`ADVISED_SECRET_BYTES`] is accepted with a warning at start: a short
/// secret is guessable, but refusing it would stop a server over a setting.
pub const MIN_SECRET_BYTES: usize = 1;
/// The length from which a secret is not warned about.
pub const ADVISED_SECRET_BYTES: usize = 16;
/// The largest webhooks file read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Why a webhooks file is refused.
#[derive(Debug, thiserror::Error)]
pub enum EndpointsError {
    /// The file could not be read.
    #[error("cannot read the webhooks file `{path}`: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not what it should be; `at` is a JSON path.
    #[error("the webhooks file is invalid at {at}: {reason}")]
    Invalid {
        /// Where (`[2].url`).
        at: String,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(at: impl Into<String>, reason: impl Into<String>) -> EndpointsError {
    EndpointsError::Invalid {
        at: at.into(),
        reason: reason.into(),
    }
}

/// One endpoint: where events go, the secret that signs them, and which.
pub struct Endpoint {
    url: OutboundUrl,
    secret: hmac::Key,
    patterns: Vec<EventPattern>,
    key: String,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url.to_string())
            .field("patterns", &self.patterns)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Where events are POSTed.
    pub fn url(&self) -> &OutboundUrl {
        &self.url
    }

    /// The URL as logs and metrics name it: without its query, which could
    /// carry a secret.
    pub fn label(&self) -> String {
        self.url.to_string()
    }

    /// A stable name for its delivery state in the store: the first 16 hex
    /// digits of the SHA-256 of its full URL, so that a restart (or another
    /// server with the same file) finds the same state.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether an event of type `kind` goes to this endpoint.
    pub fn wants(&self, kind: EventType) -> bool {
        self.patterns.iter().any(|pattern| pattern.matches(kind))
    }

    /// The `Signoff-Signature` header of `body` sent at `unix_seconds`:
    /// `t=<seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
    pub fn signature(&self, unix_seconds: i64, body: &[u8]) -> String {
        let mut context = hmac::Context::with_key(&self.secret);
        context.update(unix_seconds.to_string().as_bytes());
        context.update(b".");
        context.update(body);
        format!(
            "t={unix_seconds},v1={}",
            hex::encode(context.sign().as_ref())
        )
    }
}

/// Reads and checks `--webhooks FILE`.
pub fn read(path: &Path) -> Result<Vec<Endpoint>, EndpointsError> {
    let read_error = |error| EndpointsError::Read {
        path: path.display().to_string(),
        error,
    };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size > MAX_FILE_BYTES {
        return Err(invalid("$", format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    let document: Value =
        serde_json::from_str(&text).map_err(|error| invalid("$", error.to_string()))?;
    parse(&document)
}

/// Checks a webhooks document: a JSON array of `{ url, secret, events }`.
pub fn parse(document: &Value) -> Result<Vec<Endpoint>, EndpointsError> {
    let entries = document
        .as_array()
        .ok_or_else(|| invalid("$", "must be an array of { url, secret, events }"))?;
    if entries.len() > MAX_ENDPOINTS {
        return Err(invalid(
            "$",
            format!("at most {MAX_ENDPOINTS} endpoints, got {}", entries.len()),
        ));
    }
    let mut endpoints: Vec<Endpoint> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let endpoint = parse_endpoint(entry, &format!("[{index}]"))?;
        if endpoints.iter().any(|other| other.key == endpoint.key) {
            return Err(invalid(
                format!("[{index}].url"),
                "is listed twice (one endpoint, one entry)",
            ));
        }
        endpoints.push(endpoint);
    }
    Ok(endpoints)
}

fn parse_endpoint(entry: &Value, at: &str) -> Result<Endpoint, EndpointsError> {
    let object = entry
        .as_object()
        .ok_or_else(|| invalid(at, "must be an object { url, secret, events }"))?;
    if let Some(unknown) = object
        .keys()
        .find(|name| !["url", "secret", "events"].contains(&name.as_str()))
    {
        return Err(invalid(format!("{at}.{unknown}"), "is not a known field"));
    }
    let url_text = object
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{at}.url"), "must be a string"))?;
    let url = OutboundUrl::parse(url_text)
        .map_err(|why| invalid(format!("{at}.url"), why.to_string()))?;
    let secret = object
        .get("secret")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{at}.secret"), "must be a string"))?;
    if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&secret.len()) {
        return Err(invalid(
            format!("{at}.secret"),
            format!("must be {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes"),
        ));
    }
    if secret.len() < ADVISED_SECRET_BYTES {
        tracing::warn!(
            endpoint = %url,
            "a webhook secret of fewer than {ADVISED_SECRET_BYTES} bytes is easy to guess"
        );
    }
    let patterns = object
        .get("events")
        .and_then(Value::as_array)
        .filter(|patterns| !patterns.is_empty())
        .ok_or_else(|| {
            invalid(
                format!("{at}.events"),
                "must be a non-empty array of event types or patterns (`request.*`, `*`)",
            )
        })?
        .iter()
        .enumerate()
        .map(|(index, pattern)| {
            let at = format!("{at}.events[{index}]");
            pattern
                .as_str()
                .ok_or_else(|| invalid(&at, "must be a string"))
                .and_then(|text| EventPattern::parse(text).map_err(|why| invalid(&at, why)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let digest = signoff_core::rules::sha256_hex(url_text);
    Ok(Endpoint {
        url,
        secret: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        patterns,
        key: digest[..16].to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "whsec-test-0123456789";

    fn one(entry: Value) -> Result<Endpoint, EndpointsError> {
        parse(&json!([entry])).map(|mut endpoints| endpoints.remove(0))
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_time_dot_body() {
        // Computed outside the project: Python's
        // hmac.new(secret, b'1700000000.{"id":"x"}', hashlib.sha256).
        let endpoint = Endpoint {
            url: OutboundUrl::parse("https://hooks.example/in").unwrap(),
            secret: hmac::Key::new(hmac::HMAC_SHA256, b"whsec-test"),
            patterns: vec![EventPattern::Every],
            key: String::new(),
        };
        assert_eq!(
            endpoint.signature(1_700_000_000, br#"{"id":"x"}"#),
            "t=1700000000,v1=a011cc83d9ed494fd1b9659f5bcf0bc7dd5349dd15d02b313d6fc3b03064ce6a"
        );
    }

    #[test]
    fn the_contracts_example_signature_holds() {
        // docs/CONTRACT.md section 12: the second event of the example,
        // delivered at unix time 1793613721.
        let endpoint = one(json!({
            "url": "https://hooks.example/in",
            "secret": "wh-7f3a9c1e5b2d4f60",
            "events": ["*"],
        }))
        .unwrap();
        let body = concat!(
            r#"{"id":"5-0000000002","type":"request.approval","at":"2026-11-02T10:02:00.000Z","#,
            r#""requestId":"5b0e7c2a-3f1d-4c8e-9a6b-2d4f8e1c7a90","actor":"carol","level":"critical","#,
            r#""stage":"review","group":"security","status":"pending","#,
            r#""prevHash":"ced7a60a16016b7d2195ee46ebc1f3c798c56e5b8f19d97e64b62cac0a6d53f3","#,
            r#""hash":"594ecb06c2391d7273bf868a15a93e76dd26ef54a74309e01a01540ecf93e8ff"}"#
        );
        assert_eq!(
            endpoint.signature(1_793_613_721, body.as_bytes()),
            "t=1793613721,v1=b1ebcc571c71704beabea54d8ac1ee5009e6d10dc68fbdf14748a6a895de48ca"
        );
    }

    #[test]
    fn endpoints_are_checked() {
        let endpoint = one(json!({
            "url": "http://127.0.0.1:9/in?token=1",
            "secret": SECRET,
            "events": ["request.*"],
        }))
        .unwrap();
        assert_eq!(endpoint.label(), "http://127.0.0.1:9/in");
        assert_eq!(endpoint.key().len(), 16);
        assert!(endpoint.wants(EventType::Approved));
        assert!(!endpoint.wants(EventType::RulesReplaced));
        let good = json!({ "url": "https://h.example/", "secret": SECRET, "events": ["*"] });
        let broken = |field: &str, value: Value| {
            let mut entry = good.clone();
            entry[field] = value;
            one(entry).unwrap_err().to_string()
        };
        assert!(broken("url", json!("http://h.example/")).contains("[0].url"));
        assert!(broken("url", json!(7)).contains("[0].url"));
        assert!(broken("secret", json!("")).contains("[0].secret"));
        assert!(
            one({
                let mut entry = good.clone();
                entry["secret"] = json!("s");
                entry
            })
            .is_ok()
        );
        assert!(broken("secret", json!("s".repeat(MAX_SECRET_BYTES + 1))).contains("[0].secret"));
        assert!(
            one({
                let mut entry = good.clone();
                entry["secret"] = json!("s".repeat(MAX_SECRET_BYTES));
                entry
            })
            .is_ok()
        );
        assert!(broken("events", json!([])).contains("[0].events"));
        assert!(broken("events", json!(["request.aproved"])).contains("[0].events[0]"));
        assert!(broken("extra", json!(1)).contains("[0].extra"));
        let twice = parse(&json!([good, good])).unwrap_err().to_string();
        assert!(twice.contains("[1].url"), "{twice}");
        let at_limit: Vec<Value> = (0..MAX_ENDPOINTS)
            .map(|n| json!({ "url": format!("https://h.example/{n}"), "secret": SECRET, "events": ["*"] }))
            .collect();
        assert_eq!(parse(&json!(at_limit)).unwrap().len(), MAX_ENDPOINTS);
        let mut past = at_limit;
        past.push(json!({ "url": "https://h.example/x", "secret": SECRET, "events": ["*"] }));
        assert!(parse(&json!(past)).is_err());
        assert!(parse(&json!({})).is_err());
    }
}
