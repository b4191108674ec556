//! The connection loop: how sockets become HTTP/1.1 connections, and the
//! limits every connection lives under.
//!
//! `axum::serve` gives no way to bound how long a client may take to send a
//! request head, nor how many connections are open, so the server runs its own
//! accept loop over hyper's HTTP/1.1 connection with a timer:
//!
//! - at most [`ServingLimits::max_connections`] connections are open at once:
//!   the loop takes a permit before it accepts, so the connections beyond the
//!   cap wait in the kernel's backlog rather than in memory here;
//! - a request head (the first one of a connection, and each next one on a
//!   kept-alive connection) must arrive within
//!   [`ServingLimits::head_timeout`], else hyper closes the connection (no
//!   answer can be sent before a head has arrived); an idle kept-alive
//!   connection is closed by the same timer;
//! - the body's own deadline is enforced where it is read (see
//!   [`super::body`]), which answers `408`;
//! - on shutdown every connection is asked to finish its call in flight and
//!   close; those still open after [`ServingLimits::shutdown_grace`] are
//!   dropped, so a half-open client can never hold the process;
//! - a connection closed while the client is still sending (a body the
//!   server never reads: an unauthenticated call, a route that takes none)
//!   lingers: it stops writing, then reads and discards what still comes for
//!   a moment ([`Lingering`]), because closing a socket that holds unread
//!   bytes resets the connection, and a reset destroys the answer the client
//!   has not read yet; a body a handler left unread is read to its end for
//!   an authenticated caller, else the answer says `Connection: close`
//!   ([`settle_unread_body`]), so that no client sends its next call on a
//!   connection the server is closing.
//!
//! HTTP/2 is not served: a TLS-terminating proxy in front speaks it to
//! clients when wanted (see `docs/OPERATIONS.md`).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// The limits of the HTTP layer (section 7, "Serving, for every route").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServingLimits {
    /// A request head must arrive within this time.
    pub head_timeout: Duration,
    /// A request body must arrive within this time once a handler reads it.
    pub body_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Calls of one principal in flight at once; the rest are answered
    /// `429 rate_limited`.
    pub max_inflight_per_principal: usize,
    /// How long shutdown waits for open connections before it drops them.
    pub shutdown_grace: Duration,
}

impl Default for ServingLimits {
    fn default() -> Self {
        Self {
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_inflight_per_principal: 16,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Accepts and serves connections until `stop` turns true, then lets the
/// open connections finish within the grace period.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServingLimits,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = JoinSet::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .keep_alive(true);
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = stopped(&mut stop) => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    if !is_per_connection(&error) {
                        // Out of descriptors or similar: back off instead of
                        // spinning, as the listener will fail again at once.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = builder.serve_connection(
            TokioIo::new(Lingering::new(stream, permit)),
            TowerToHyperService::new(app.clone()),
        );
        let mut stopping = stop.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let mut asked_to_close = false;
            loop {
                tokio::select! {
                    finished = connection.as_mut() => {
                        if let Err(error) = finished {
                            tracing::debug!(%error, "connection closed with an error");
                        }
                        break;
                    }
                    () = stopped(&mut stopping), if !asked_to_close => {
                        connection.as_mut().graceful_shutdown();
                        asked_to_close = true;
                    }
                }
            }
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the shutdown grace period; closing them"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Settles the body a handler left unread, before the answer goes out.
///
/// A call may announce a body its handler never reads: a route that takes
/// none, an unknown path, an early refusal. HTTP lets the server answer
/// first, but then the connection cannot carry another call, and clients
/// that are still sending the body when the answer comes (and find the
/// connection closing) report a failure instead of the answer. So:
///
/// - for a caller with a valid token, the rest of a body of at most
///   [`super::MAX_BODY_BYTES`] is read and discarded (within the body
///   timeout), and the connection stays open;
/// - otherwise (no valid token: such a call never costs more than its head;
///   a body over the limit; a refusal for time, size or the fair share) the
///   answer says `Connection: close`, so that no client sends its next call
///   on a connection the server is closing, which then lingers
///   ([`Lingering`]).
pub async fn settle_unread_body(
    axum::extract::State(state): axum::extract::State<super::api::AppState>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok())
        .and_then(|length| length.parse::<u64>().ok());
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    if !chunked && announced.unwrap_or(0) == 0 {
        return next.run(request).await;
    }
    let within_limit = announced.is_none_or(|length| {
        usize::try_from(length).is_ok_and(|length| length <= super::MAX_BODY_BYTES)
    });
    let authenticated = if within_limit {
        state.auth.authenticate(request.headers()).await.ok()
    } else {
        None
    };
    let may_read = authenticated.is_some();
    let mut request = request;
    if let Some(principal) = authenticated {
        // The handler's `Caller` takes it from here rather than checking the
        // token a second time.
        request
            .extensions_mut()
            .insert(super::caller::Authenticated(principal));
    }
    let shared = Arc::new(std::sync::Mutex::new(SharedBody {
        body: Body::empty(),
        finished: false,
    }));
    let request = request.map(|body| {
        lock(&shared).body = body;
        Body::new(HandlerBody(Arc::clone(&shared)))
    });
    let mut response = next.run(request).await;
    if lock(&shared).finished {
        return response;
    }
    let refused = matches!(response.status().as_u16(), 401 | 408 | 413 | 429);
    if may_read && !refused && drain(&shared, state.body_timeout).await {
        return response;
    }
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A call's body, shared by the handler (which may read it) and
/// [`settle_unread_body`] (which reads what the handler left).
struct SharedBody {
    body: Body,
    finished: bool,
}

fn lock(shared: &std::sync::Mutex<SharedBody>) -> std::sync::MutexGuard<'_, SharedBody> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Polls the shared body once, recording its end.
fn poll_shared(
    shared: &std::sync::Mutex<SharedBody>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
    let mut slot = lock(shared);
    let polled = Pin::new(&mut slot.body).poll_frame(cx);
    if matches!(polled, Poll::Ready(None)) {
        slot.finished = true;
    }
    polled
}

/// Reads and discards the rest of the body, at most
/// [`super::MAX_BODY_BYTES`] in all, within `timeout`; whether it ended.
async fn drain(shared: &std::sync::Mutex<SharedBody>, timeout: Duration) -> bool {
    let discard = async {
        let mut discarded = 0;
        loop {
            match std::future::poll_fn(|cx| poll_shared(shared, cx)).await {
                None => return true,
                Some(Err(_)) => return false,
                Some(Ok(frame)) => {
                    discarded += frame.data_ref().map_or(0, Bytes::len);
                    if discarded > super::MAX_BODY_BYTES {
                        return false;
                    }
                }
            }
        }
    };
    tokio::time::timeout(timeout, discard)
        .await
        .unwrap_or(false)
}

/// The body a handler sees: the shared one.
struct HandlerBody(Arc<std::sync::Mutex<SharedBody>>);

impl HttpBody for HandlerBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        poll_shared(&self.0, cx)
    }

    fn is_end_stream(&self) -> bool {
        let slot = lock(&self.0);
        slot.finished || slot.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        lock(&self.0).body.size_hint()
    }
}

/// How long a closing connection waits for more of what the client still
/// sends before it closes.
const LINGER_IDLE: Duration = Duration::from_secs(2);

/// How long a closing connection may linger in all.
const LINGER_TOTAL: Duration = Duration::from_secs(10);

/// The most a closing connection reads and discards.
const LINGER_BYTES: usize = 64 * 1024 * 1024;

/// A TCP stream that lingers when it is closed, however the connection
/// ended (a clean shutdown, an error, a timeout): it sends its FIN, then a
/// task reads and discards what the client still sends, until the client
/// closes too, goes quiet for [`LINGER_IDLE`], or [`LINGER_TOTAL`] or
/// [`LINGER_BYTES`] is reached (the bounds of a web server's lingering
/// close). Only then is the socket closed, with nothing unread in it, so the
/// kernel ends the connection with a FIN rather than a reset that would
/// destroy the answer in flight. The connection keeps its slot (its permit)
/// until then, so lingering connections count toward the cap.
struct Lingering {
    /// `None` once dropped (taken by the lingering task).
    stream: Option<TcpStream>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Lingering {
    fn new(stream: TcpStream, permit: tokio::sync::OwnedSemaphorePermit) -> Self {
        Self {
            stream: Some(stream),
            permit: Some(permit),
        }
    }

    fn stream(self: Pin<&mut Self>) -> std::io::Result<Pin<&mut TcpStream>> {
        self.get_mut()
            .stream
            .as_mut()
            .map(Pin::new)
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotConnected))
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let (Some(stream), Ok(runtime)) =
            (self.stream.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let permit = self.permit.take();
        runtime.spawn(async move {
            linger(stream).await;
            drop(permit);
        });
    }
}

/// Shuts `stream`'s write side, then discards what still comes, within the
/// bounds of [`LINGER_IDLE`], [`LINGER_TOTAL`] and [`LINGER_BYTES`].
async fn linger(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = stream.shutdown().await;
    let _ = tokio::time::timeout(LINGER_TOTAL, async {
        let mut scratch = vec![0_u8; 64 * 1024];
        let mut discarded = 0;
        while discarded < LINGER_BYTES {
            match tokio::time::timeout(LINGER_IDLE, stream.read(&mut scratch)).await {
                Ok(Ok(read)) if read > 0 => discarded += read,
                _ => break,
            }
        }
    })
    .await;
}

impl AsyncRead for Lingering {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.stream()?.poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.stream()?.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.stream()?.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(TcpStream::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.stream()?.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.stream()?.poll_shutdown(cx)
    }
}

/// Completes once `stop` turns true (or its sender goes away).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it here.
    let _ = stop.wait_for(|stop| *stop).await.map(|_| ());
}

/// Whether an accept error concerns one connection only (the next accept may
/// well succeed).
fn is_per_connection(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
