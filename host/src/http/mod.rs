//! The HTTP front: our own accept loop (connection limit, header timeout,
//! graceful shutdown) and a per-request pipeline (request id, rate limit,
//! auth, timeout, compression, metrics) in front of the warp routes.

mod compress;
mod guard;
mod per_client;
mod pipeline;
mod rate_limit;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use pipeline::Pipeline;
pub use rate_limit::RateLimiter;

use crate::config::HttpServerConfig;
use crate::metrics::metrics;

/// Accepts connections until `shutdown` resolves, then stops accepting
/// and waits for requests in flight to finish.
pub async fn serve(
    listener: TcpListener,
    pipeline: Arc<Pipeline>,
    settings: &HttpServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    // A permit per open connection: past the limit, new clients wait in the
    // kernel's listen backlog instead of costing this process memory.
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    let per_client = per_client::PerClient::new(settings.max_connections_per_client);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors, usually: back off, keep serving.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(client_slot) = per_client.open(peer.ip()) else {
            tracing::debug!(%peer, "closed a connection: the client has max_connections_per_client open");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let pipeline = pipeline.clone();
        let hang_up = HangUp::default();
        let service = hyper::service::service_fn({
            let hang_up = hang_up.clone();
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(hang_up.clone());
                let pipeline = pipeline.clone();
                async move { Ok::<_, Infallible>(pipeline.handle(request, peer.ip()).await) }
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(settings.header_read_timeout)
            .keep_alive(settings.keep_alive)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        metrics().active_connections.inc();
        tokio::spawn(async move {
            tokio::select! {
                ended = connection => if let Err(error) = ended {
                    tracing::debug!(%error, %peer, "connection ended with an error");
                },
                () = hang_up.requested() => {
                    tracing::debug!(%peer, "closed a connection whose request timed out");
                }
            }
            metrics().active_connections.dec();
            drop(client_slot);
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Lets a request's handler ask for its connection to be closed: after a
/// request timeout the connection may still be receiving a trickled body
/// that nobody will read, and only dropping it frees the slot.
#[derive(Clone, Default)]
pub(crate) struct HangUp(Arc<tokio::sync::Notify>);

impl HangUp {
    /// Time for the answer already given to reach the client.
    const GRACE: std::time::Duration = std::time::Duration::from_millis(100);

    pub(crate) fn request(&self) {
        self.0.notify_one();
    }

    async fn requested(&self) {
        self.0.notified().await;
        tokio::time::sleep(Self::GRACE).await;
    }
}
