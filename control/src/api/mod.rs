//! The local management API: HTTP/JSON on loopback by default, read by
//! `ecmpd show ...` and by the tests.
//!
//! The server owns no router state. Each request becomes a [`Query`] sent
//! over a bounded channel to whichever task owns the state (the router's
//! main task), which answers on a oneshot; so the RIB keeps a single owner
//! and the API cannot block it. Endpoints:
//!
//! | path                      | answer                        |
//! |---------------------------|-------------------------------|
//! | `GET /api/v1/bgp/summary` | [`view::BgpSummary`]          |
//! | `GET /api/v1/bgp/routes`  | `Vec<`[`view::RouteEntry`]`>`, `?prefix=` filters |
//! | `GET /api/v1/fib`         | [`view::FibView`]             |
//! | `GET /api/v1/counts`      | [`view::Counts`] (cheap: for polling) |
//! | `GET /api/v1/bfd/peers`   | `Vec<`[`view::BfdPeerView`]`>` |
//! | `GET /metrics`            | Prometheus text format        |
//! | `POST /api/v1/bgp/refresh?peer=ADDR` | ROUTE-REFRESH to a neighbour: the families asked |

pub mod view;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Query as UrlQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use view::{ApiError, BfdPeerView, BgpSummary, Counts, FibView, RouteEntry};

/// A question for the task that owns the router's state.
#[derive(Debug)]
pub enum Query {
    /// `show bgp summary`.
    BgpSummary(oneshot::Sender<BgpSummary>),
    /// `show bgp routes`, optionally for prefixes inside or equal to one
    /// (`10.0.0.0/8` or an address).
    BgpRoutes(Option<String>, oneshot::Sender<Vec<RouteEntry>>),
    /// `show fib`.
    Fib(oneshot::Sender<FibView>),
    /// How many prefixes the RIB and routes the FIB hold, without listing
    /// them (cheap enough to poll while a full table loads).
    Counts(oneshot::Sender<Counts>),
    /// `show bfd peers`.
    BfdPeers(oneshot::Sender<Vec<BfdPeerView>>),
    /// Prometheus exposition text.
    Metrics(oneshot::Sender<String>),
    /// Ask a neighbour to send its routes again (ROUTE-REFRESH for every
    /// negotiated family); answers the families asked, or why not.
    Refresh(
        std::net::IpAddr,
        oneshot::Sender<Result<Vec<String>, String>>,
    ),
}

/// How long a request waits for the state owner before answering 503.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiStartError {
    /// The address could not be bound.
    #[error("cannot listen for the management API on {addr}: {source} (pick another [api] listen address)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A running API server.
#[derive(Debug)]
pub struct ApiServer {
    /// The address it listens on (the real port when 0 was asked for).
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    stop: Option<oneshot::Sender<()>>,
}

impl ApiServer {
    /// Bind `addr` and serve, sending every request as a [`Query`] on
    /// `queries`.
    pub async fn start(
        addr: SocketAddr,
        queries: mpsc::Sender<Query>,
    ) -> Result<ApiServer, ApiStartError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ApiStartError::Bind { addr, source })?;
        let addr = listener.local_addr().unwrap_or(addr);
        let app = router(queries);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!("management API stopped: {e}");
            }
        });
        Ok(ApiServer {
            addr,
            task,
            stop: Some(stop),
        })
    }

    /// Stop serving and wait for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// The axum router, for embedding or tests.
pub fn router(queries: mpsc::Sender<Query>) -> Router {
    Router::new()
        .route("/api/v1/bgp/summary", get(bgp_summary))
        .route("/api/v1/bgp/routes", get(bgp_routes))
        .route("/api/v1/fib", get(fib))
        .route("/api/v1/counts", get(counts))
        .route("/api/v1/bfd/peers", get(bfd_peers))
        .route("/metrics", get(metrics))
        .route("/api/v1/bgp/refresh", axum::routing::post(refresh))
        .fallback(not_found)
        .with_state(queries)
}

/// Send a query built around a fresh oneshot and wait for the answer.
async fn ask<T>(
    queries: &mpsc::Sender<Query>,
    make: impl FnOnce(oneshot::Sender<T>) -> Query,
) -> Result<T, Response> {
    let unavailable = |what: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(ApiError {
                error: format!("the router did not answer: {what}"),
            }),
        )
            .into_response()
    };
    let (tx, rx) = oneshot::channel();
    match tokio::time::timeout(ANSWER_TIMEOUT, queries.send(make(tx))).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return Err(unavailable("it is shutting down")),
        Err(_) => return Err(unavailable("it is busy")),
    }
    match tokio::time::timeout(ANSWER_TIMEOUT, rx).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(_)) => Err(unavailable("the query was dropped")),
        Err(_) => Err(unavailable("timed out")),
    }
}

async fn bgp_summary(State(q): State<mpsc::Sender<Query>>) -> Response {
    match ask(&q, Query::BgpSummary).await {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
struct RoutesParams {
    prefix: Option<String>,
}

async fn bgp_routes(
    State(q): State<mpsc::Sender<Query>>,
    UrlQuery(params): UrlQuery<RoutesParams>,
) -> Response {
    match ask(&q, |tx| Query::BgpRoutes(params.prefix, tx)).await {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

async fn fib(State(q): State<mpsc::Sender<Query>>) -> Response {
    match ask(&q, Query::Fib).await {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

async fn counts(State(q): State<mpsc::Sender<Query>>) -> Response {
    match ask(&q, Query::Counts).await {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

async fn bfd_peers(State(q): State<mpsc::Sender<Query>>) -> Response {
    match ask(&q, Query::BfdPeers).await {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

async fn metrics(State(q): State<mpsc::Sender<Query>>) -> Response {
    match ask(&q, Query::Metrics).await {
        Ok(text) => ([("content-type", "text/plain; version=0.0.4")], text).into_response(),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
struct RefreshParams {
    peer: String,
}

async fn refresh(
    State(q): State<mpsc::Sender<Query>>,
    UrlQuery(params): UrlQuery<RefreshParams>,
) -> Response {
    let Ok(peer) = params.peer.parse() else {
        return (
            StatusCode::BAD_REQUEST,
            Json(ApiError {
                error: format!("'{}' is not an IP address", params.peer),
            }),
        )
            .into_response();
    };
    match ask(&q, |tx| Query::Refresh(peer, tx)).await {
        Ok(Ok(families)) => Json(families).into_response(),
        Ok(Err(e)) => (StatusCode::CONFLICT, Json(ApiError { error: e })).into_response(),
        Err(r) => r,
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(ApiError {
            error: "no such endpoint: try /api/v1/bgp/summary, /api/v1/bgp/routes, /api/v1/fib, /api/v1/counts, /api/v1/bfd/peers or /metrics".into(),
        }),
    )
        .into_response()
}
