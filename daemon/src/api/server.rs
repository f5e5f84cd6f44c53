//! The HTTP server loop: accepts connections and serves the router on each, with the limits that keep slow,
//! idle or too many clients from holding labd's resources.
//!
//! - a client gets `client_timeout` to send a request's headers (slowloris), and a connection with no request
//!   under way is closed after `client_timeout` of silence (idle keep-alive, or never a request at all);
//! - an answer that the client stops taking is dropped after `client_timeout` without progress;
//! - at most `max_connections` are served at once; further ones wait in the kernel's backlog;
//! - the request time limit (`request_timeout`, body included) is the router's [`super::time_limit`].
//!
//! axum's own `serve` sets no timer, so none of these would apply with it.

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use http_body::Frame;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tower::ServiceExt;

/// The connection limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub client_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets requests in flight finish (for at most
/// `client_timeout`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // HTTP/1.1 only: browsers and clients speak it over plain HTTP, and automatic HTTP/2 detection would wait
    // for a silent client's first bytes without any time limit.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.client_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Wait for a free slot first, so that clients over the limit wait in the backlog.
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!("accepting an HTTP connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let busy = Arc::new(AtomicUsize::new(0));
        let io = TokioIo::new(Guarded::new(stream, limits.client_timeout, busy.clone()));
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let guard = Busy::enter(&busy);
            let app = app.clone();
            async move {
                let res = app.oneshot(req.map(Body::new)).await;
                res.map(|r| {
                    r.map(|body| {
                        Body::new(TrackedBody {
                            inner: body,
                            _guard: guard,
                        })
                    })
                })
            }
        });
        let conn = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("HTTP connection ended: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.client_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "HTTP connections still open after {:?}; closing them",
            limits.client_timeout
        );
    }
    Ok(())
}

/// Counts a request under way on its connection from its arrival until its answer's body is done or dropped.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn enter(count: &Arc<AtomicUsize>) -> Busy {
        count.fetch_add(1, Ordering::SeqCst);
        Busy(count.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An answer's body that keeps its request counted as under way while it streams.
struct TrackedBody {
    inner: Body,
    _guard: Busy,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A TCP stream with two timers of `limit`: writes fail with `TimedOut` when the peer takes nothing for that
/// long (a client that stops reading cannot hold its answer forever), and a connection with no request under
/// way reads as closed after that long without a byte (idle or silent clients give their slot back).
struct Guarded {
    inner: TcpStream,
    limit: Duration,
    busy: Arc<AtomicUsize>,
    write_stall: Option<Pin<Box<Sleep>>>,
    idle: Option<Pin<Box<Sleep>>>,
}

impl Guarded {
    fn new(inner: TcpStream, limit: Duration, busy: Arc<AtomicUsize>) -> Self {
        Guarded {
            inner,
            limit,
            busy,
            write_stall: None,
            idle: None,
        }
    }

    fn write_progress<T>(
        &mut self,
        result: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.write_stall = None;
            return result;
        }
        let limit = self.limit;
        let timer = self
            .write_stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client took nothing for {limit:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if r.is_ready() || self.busy.load(Ordering::SeqCst) > 0 {
            self.idle = None;
            return r;
        }
        let limit = self.limit;
        let timer = self
            .idle
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            // End of stream: hyper closes an idle connection quietly.
            Poll::Ready(()) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.write_progress(r, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.write_progress(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.write_progress(r, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
