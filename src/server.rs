//! The connection loop: HTTP/1.1 and HTTP/2 on each accepted connection (plain or TLS), with the
//! limits a server facing hostile clients needs and `axum::serve` does not set: a deadline for
//! the request head (slow-header clients are dropped), a cap on its size, and a graceful shutdown
//! that lets in-flight requests finish.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::serve::Listener;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

/// The largest request head the connection accepts at all (hyper answers 431 beyond it, without
/// a body); heads over [`crate::http::MAX_HEADER_BYTES`] get Graph's 431 from the router first.
const MAX_HEAD_BYTES: usize = 128 * 1024;
/// The most header fields a request may have (hyper's default is 100, past which it answers a
/// bare 431); up to here, [`crate::http::MAX_HEADER_BYTES`] decides, with Graph's body. hyper
/// fills an array this long for every request it parses (about a sixth of the CPU of `/healthz`,
/// docs/performance.md), but a request of 1,000 small headers within 64 KiB must be served.
const MAX_HEADER_FIELDS: usize = 1024;
/// How long shutdown waits for in-flight requests before closing their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` until `shutdown` resolves, then drains. A client gets
/// `header_timeout` to send each request's head.
pub async fn serve<L>(
    mut listener: L,
    router: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    L: Listener,
    L::Addr: std::fmt::Debug,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADER_FIELDS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD_BYTES as u32);
    let graceful = GracefulShutdown::new();
    let service = TowerToHyperService::new(router);
    tokio::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service.clone())
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(?peer, error = %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still running {} s after shutdown began; closing their connections",
            SHUTDOWN_GRACE.as_secs()
        );
    }
}
