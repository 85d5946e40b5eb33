//! The OTLP/HTTP server loop: hyper's HTTP/1.1 with a header-read timeout and a cap on open
//! connections, which `axum::serve` does not offer. Slow or stalled clients must not hold
//! sockets and tasks forever (the body-read timeout is enforced by the handler, see `http.rs`).

use crate::telemetry::metrics::{Metrics, TransportReasonLabel};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// What one listener allows its connections.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// `None`: no limit on how long a request header may take.
    pub read_header_timeout: Option<Duration>,
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `stop` completes, then lets requests in progress finish
/// (dropping the returned future cuts every connection).
pub async fn serve<L>(
    mut listener: L,
    router: axum::Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()> + Send + 'static,
) where
    L: axum::serve::Listener,
{
    let closed = move |reason: &'static str| {
        metrics
            .receiver_closed_connections
            .get_or_create(&TransportReasonLabel {
                transport: "http",
                reason,
            })
            .inc();
    };
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, closing_rx) = watch::channel(());
    let mut connections = JoinSet::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let (io, _peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        while connections.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Closing at once tells the client to retry elsewhere or later.
            closed("max_connections");
            drop(io);
            continue;
        };
        let (router, mut closing_rx, closed) = (router.clone(), closing_rx.clone(), closed.clone());
        connections.spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.read_header_timeout);
            let connection =
                builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(router));
            let mut connection = std::pin::pin!(connection);
            let mut shutting_down = false;
            let result = loop {
                tokio::select! {
                    result = connection.as_mut() => break result,
                    _ = closing_rx.changed(), if !shutting_down => {
                        shutting_down = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            };
            match result {
                Err(e) if e.is_timeout() => closed("read_header_timeout"),
                Err(e) => tracing::debug!(error = %e, "OTLP/HTTP connection ended with an error"),
                Ok(()) => {}
            }
        });
    }
    drop(listener);
    drop(closing);
    while connections.join_next().await.is_some() {}
}
