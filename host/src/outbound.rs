//! The server's own HTTP calls out: the OIDC key fetch and webhook
//! deliveries.
//!
//! One request on a fresh HTTP/1.1 connection (hyper's client connection,
//! TLS through rustls with the system's trusted certificates, as `rediss://`
//! uses them). Only `https://` URLs are called, and plain `http://` on a
//! loopback host (a sidecar or a test receiver): a secret never crosses a
//! network in the clear. Redirects are not followed, and an answer's body is
//! read up to a bound. The caller puts its own deadline around [`send`].

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Why a URL is not one this server calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    /// Not parseable as a URL.
    #[error("is not a valid URL")]
    Invalid,
    /// Neither `https://` nor `http://`.
    #[error("only https:// URLs are accepted")]
    Scheme,
    /// No host.
    #[error("has no host")]
    NoHost,
    /// `user:password@` in the URL.
    #[error("must not hold credentials")]
    Credentials,
    /// Plain http to a host that is not loopback.
    #[error(
        "plain http is accepted for loopback hosts only (127.0.0.1, ::1, localhost); use https"
    )]
    PlainHttp,
}

/// An `https://` URL, or an `http://` one on a loopback host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundUrl {
    tls: bool,
    host: String,
    port: u16,
    authority: String,
    path_and_query: String,
}

impl std::fmt::Display for OutboundUrl {
    /// The URL without its query (which could carry a secret).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        let path = self
            .path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(path, _)| path);
        write!(f, "{scheme}://{}{path}", self.authority)
    }
}

/// Whether `host` names this machine.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

impl OutboundUrl {
    /// Parses `text`, refusing what this server does not call.
    pub fn parse(text: &str) -> Result<Self, UrlRefused> {
        let lower = text.to_ascii_lowercase();
        if !lower.starts_with("https://") && !lower.starts_with("http://") {
            return Err(UrlRefused::Scheme);
        }
        let uri: Uri = text.parse().map_err(|_| UrlRefused::Invalid)?;
        let tls = uri
            .scheme_str()
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https"));
        let authority = uri.authority().ok_or(UrlRefused::NoHost)?;
        if authority.as_str().contains('@') {
            return Err(UrlRefused::Credentials);
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(UrlRefused::NoHost);
        }
        if !tls && !is_loopback(&host) {
            return Err(UrlRefused::PlainHttp);
        }
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let path_and_query = uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |path| path.as_str().to_owned());
        Ok(Self {
            tls,
            host,
            port,
            authority: authority.as_str().to_owned(),
            path_and_query,
        })
    }

    /// Whether it is an `https://` URL.
    pub fn is_tls(&self) -> bool {
        self.tls
    }
}

/// Why a call failed before an answer came.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// No trusted certificates to check an https server with.
    #[error("no trusted certificates found on this system to check https servers with")]
    NoRoots,
    /// An https URL with a client built without TLS.
    #[error("this client was built for plain http only")]
    NoTls,
    /// The connection, TLS, or the exchange failed.
    #[error("{0}")]
    Exchange(String),
    /// The answer's body is larger than the caller reads.
    #[error("the answer's body is larger than {0} bytes")]
    TooLarge(usize),
}

/// An answer: its status and (bounded) body.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The body, at most what the caller asked for.
    pub body: Bytes,
}

/// Makes calls out; cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    tls: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Outbound {
    /// A client; with `tls`, it loads the system's trusted certificates
    /// (and fails without any), so that only clients that call https need
    /// them.
    pub fn new(tls: bool) -> Result<Self, OutboundError> {
        let tls = if tls { Some(tls_connector()?) } else { None };
        Ok(Self { tls })
    }

    /// One `method` call to `url` with `headers` and `body`; the answer's
    /// body is read up to `max_answer_bytes` (more is
    /// [`OutboundError::TooLarge`]).
    pub async fn send(
        &self,
        url: &OutboundUrl,
        method: Method,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        max_answer_bytes: usize,
    ) -> Result<Answer, OutboundError> {
        let failed = |error: &dyn std::fmt::Display| OutboundError::Exchange(error.to_string());
        let mut request = Request::builder()
            .method(method)
            .uri(url.path_and_query.as_str())
            .header(header::HOST, url.authority.as_str())
            .header(header::USER_AGENT, "signoff");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|error| failed(&error))?;
        let stream = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|error| failed(&error))?;
        if !url.tls {
            return exchange(stream, request, max_answer_bytes).await;
        }
        let connector = self.tls.as_ref().ok_or(OutboundError::NoTls)?;
        let name = rustls::pki_types::ServerName::try_from(url.host.clone())
            .map_err(|error| failed(&error))?;
        let stream = connector
            .connect(name, stream)
            .await
            .map_err(|error| failed(&error))?;
        exchange(stream, request, max_answer_bytes).await
    }
}

fn tls_connector() -> Result<tokio_rustls::TlsConnector, OutboundError> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(OutboundError::NoRoots);
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| OutboundError::Exchange(error.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn exchange<I>(
    io: I,
    request: Request<Full<Bytes>>,
    max_answer_bytes: usize,
) -> Result<Answer, OutboundError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let failed = |error: &dyn std::fmt::Display| OutboundError::Exchange(error.to_string());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|error| failed(&error))?;
    // The connection is driven beside the exchange, and stopped with it
    // (a caller's deadline drops this future).
    let _driver = AbortOnDrop(tokio::spawn(connection));
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| failed(&error))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), max_answer_bytes)
        .collect()
        .await
        .map_err(|error| {
            if error.is::<http_body_util::LengthLimitError>() {
                OutboundError::TooLarge(max_answer_bytes)
            } else {
                OutboundError::Exchange(error.to_string())
            }
        })?;
    Ok(Answer {
        status,
        body: body.to_bytes(),
    })
}

struct AbortOnDrop(tokio::task::JoinHandle<Result<(), hyper::Error>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_urls() {
        for accepted in [
            "https://hooks.example/in",
            "http://127.0.0.1:9/k",
            "http://[::1]:9/k",
            "http://localhost/k",
        ] {
            assert!(OutboundUrl::parse(accepted).is_ok(), "{accepted}");
        }
        for (refused, why) in [
            ("http://hooks.example/in", UrlRefused::PlainHttp),
            ("http://10.0.0.1/k", UrlRefused::PlainHttp),
            ("ftp://x/y", UrlRefused::Scheme),
            ("/etc/x", UrlRefused::Scheme),
            ("https://u:p@x/k", UrlRefused::Credentials),
            ("https://", UrlRefused::Invalid),
        ] {
            assert_eq!(OutboundUrl::parse(refused), Err(why), "{refused}");
        }
        let url = OutboundUrl::parse("https://idp.example:8443/k?secret=1").unwrap();
        assert_eq!(url.to_string(), "https://idp.example:8443/k");
        assert!(url.is_tls());
    }
}
