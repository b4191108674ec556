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
//!   has not read yet.
//!
//! HTTP/2 is not served: a TLS-terminating proxy in front speaks it to
//! clients when wanted (see `docs/OPERATIONS.md`).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
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
            TokioIo::new(Lingering::new(stream)),
            TowerToHyperService::new(app.clone()),
        );
        let mut stopping = stop.clone();
        connections.spawn(async move {
            let _permit = permit;
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

/// How long a closing connection keeps reading what the client still sends.
const LINGER: Duration = Duration::from_secs(2);

/// The most a closing connection reads and discards.
const LINGER_BYTES: usize = 2 * 1024 * 1024;

/// A TCP stream whose shutdown lingers: it sends its FIN, then reads and
/// discards what the client still sends, until the client closes too, for
/// at most [`LINGER`] and [`LINGER_BYTES`]. Only then is the socket closed,
/// with nothing unread in it, so the kernel ends the connection with a FIN
/// rather than a reset that would destroy the answer in flight.
struct Lingering {
    stream: TcpStream,
    /// Set once the write side is shut: when lingering ends.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    discarded: usize,
}

impl Lingering {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            deadline: None,
            discarded: 0,
        }
    }
}

impl AsyncRead for Lingering {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.deadline.is_none() {
            ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
            this.deadline = Some(Box::pin(tokio::time::sleep(LINGER)));
        }
        let mut scratch = [0_u8; 8192];
        loop {
            if this.discarded >= LINGER_BYTES {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.stream).poll_read(cx, &mut buf) {
                // The client closed too, or the connection broke: done.
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => this.discarded += buf.filled().len(),
                Poll::Pending => {
                    let expired = this
                        .deadline
                        .as_mut()
                        .is_none_or(|deadline| deadline.as_mut().poll(cx).is_ready());
                    return if expired {
                        Poll::Ready(Ok(()))
                    } else {
                        Poll::Pending
                    };
                }
            }
        }
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
