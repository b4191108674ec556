//! The HTTP API (docs/CONTRACT.md, section 7) and the editor.
//!
//! [`run`] serves a [`Config`] on a listener until a shutdown future
//! completes, so tests bind `127.0.0.1:0` and the `signoff` binary is a thin
//! wrapper. The layers, from the outside in: a panic guard answering a generic
//! JSON 500, the `x-request-id` (kept from the caller or generated, and echoed
//! back), logs and metrics of every call, JSON bodies for every error status,
//! and the request timeout. Then the router: the routes of the API (the `/v1`
//! routes, `/metrics`, `/healthz`, `/readyz` and `/openapi.json`, one table:
//! [`routes`]), the JS package at `/pkg/` and the editor's static files at
//! `/`; everything else is a JSON 404, and a known route called with another
//! method a JSON 405. Connections are accepted and bounded by [`serving`];
//! bodies are read by the handlers after authentication ([`body`],
//! [`caller`]). [`openapi`] describes the API's routes.

mod api;
pub mod auth;
mod body;
mod caller;
pub mod cli;
pub mod demo;
pub mod error;
pub mod events;
pub mod fair_share;
mod metrics;
pub mod oidc;
pub mod openapi;
mod query_pairs;
pub mod serving;
pub mod sweeper;
mod ticker;
pub mod webhooks;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post, put};
use signoff_core::{ErrorCode, Rules};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::services::ServeDir;
use tower_http::timeout::TimeoutLayer;

use self::api::AppState;
pub use self::auth::Principals;
pub use self::body::MAX_BODY_BYTES;
use self::error::{ApiError, code_of_status};
use self::fair_share::FairShare;
use self::metrics::Metrics;
pub use self::oidc::{OidcError, OidcSettings};
pub use self::serving::ServingLimits;
pub use self::sweeper::SweepConfig;
use crate::engine::{Engine, EngineOptions, StorageOptions};

/// The editor's files, found at build time; `--www-dir` overrides it.
pub const DEFAULT_WWW_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../www");
/// The JS package served at `/pkg/`; `--pkg-dir` overrides it.
pub const DEFAULT_PKG_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../wasm/pkg/web");

/// Everything the server needs to run.
pub struct Config {
    /// The rules in force at start (unless the cache holds newer ones).
    pub rules: Rules,
    /// Who may call with a token of the principals file.
    pub principals: Principals,
    /// Who may call with an OpenID Connect JWT, if anybody.
    pub oidc: Option<OidcSettings>,
    /// Redis URL; `None` for the embedded in-memory cache.
    pub redis_url: Option<String>,
    /// Prefix of every cache key.
    pub key_prefix: String,
    /// The editor's static files, served at `/`.
    pub www_dir: PathBuf,
    /// The JS package, served at `/pkg/`.
    pub pkg_dir: PathBuf,
    /// The longest a call may take before it is answered `503 unavailable`.
    pub request_timeout: Duration,
    /// The expiry sweeper's pace.
    pub sweep: SweepConfig,
    /// Timeouts, the connection cap and each principal's fair share.
    pub limits: ServingLimits,
    /// The store's partitions and the durability it must promise.
    pub storage: StorageOptions,
    /// The bearer token `/metrics` asks for; `None`: `/metrics` is open.
    pub metrics_token: Option<String>,
    /// How often the figures `/metrics` serves are read from the engine.
    pub metrics_refresh: Duration,
    /// Where events are delivered.
    pub webhooks: Vec<webhooks::Endpoint>,
    /// How webhook deliveries are paced.
    pub webhook_settings: webhooks::Settings,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("principals", &self.principals)
            .field("oidc", &self.oidc)
            .field(
                "redis_url",
                &self.redis_url.as_deref().map(crate::cache::redact_url),
            )
            .field("key_prefix", &self.key_prefix)
            .field("www_dir", &self.www_dir)
            .field("pkg_dir", &self.pkg_dir)
            .field("request_timeout", &self.request_timeout)
            .field("sweep", &self.sweep)
            .field("limits", &self.limits)
            .field("storage", &self.storage)
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| "***"))
            .field("metrics_refresh", &self.metrics_refresh)
            .field("webhooks", &self.webhooks)
            .field("webhook_settings", &self.webhook_settings)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// A configuration with the defaults: in-memory cache, key prefix
    /// `signoff:`, 30 s timeout, one sweep a second.
    pub fn new(rules: Rules, principals: Principals) -> Self {
        Self {
            rules,
            principals,
            oidc: None,
            redis_url: None,
            key_prefix: "signoff:".to_owned(),
            www_dir: PathBuf::from(DEFAULT_WWW_DIR),
            pkg_dir: PathBuf::from(DEFAULT_PKG_DIR),
            request_timeout: Duration::from_secs(30),
            sweep: SweepConfig::default(),
            limits: ServingLimits::default(),
            storage: StorageOptions::default(),
            metrics_token: None,
            metrics_refresh: Duration::from_secs(5),
            webhooks: Vec::new(),
            webhook_settings: webhooks::Settings::default(),
        }
    }
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The engine (or its cache) could not start.
    #[error("the engine could not start: {0}")]
    Engine(String),
    /// OIDC sign-in could not be set up (its keys could not be loaded).
    #[error("OIDC sign-in could not start: {0}")]
    Oidc(#[from] OidcError),
    /// Webhook delivery could not start (no trusted certificates for an
    /// https endpoint, or the store could not be read).
    #[error("webhook delivery could not start: {0}")]
    Webhooks(String),
    /// The listener failed.
    #[error("the HTTP server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves `config` on `listener` until `shutdown` completes, then lets the
/// calls in flight finish.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let oidc = match config.oidc {
        Some(settings) => Some(oidc::Oidc::start(settings).await?),
        None => None,
    };
    let engine = Engine::start(EngineOptions {
        redis_url: config.redis_url.clone(),
        key_prefix: config.key_prefix.clone(),
        rules: config.rules.clone(),
        storage: config.storage,
    })
    .await
    .map_err(|error| ServerError::Engine(format!("{error:#}")))?;
    let (stop, stopped) = watch::channel(false);
    let state = AppState {
        engine: Arc::new(engine),
        auth: Arc::new(auth::Authenticator::new(config.principals, oidc)),
        metrics: Arc::new(Metrics::new()),
        fair_share: FairShare::new(config.limits.max_inflight_per_principal),
        body_timeout: config.limits.body_timeout,
        metrics_token: config.metrics_token.as_deref().map(auth::token_digest),
        stopping: stopped.clone(),
    };
    state.metrics.set_store(
        state.engine.durability(),
        state.engine.layout().partitions(),
    );
    let sweeper = tokio::spawn(sweeper::run(
        Arc::clone(&state.engine),
        Arc::clone(&state.metrics),
        config.sweep,
        stopped.clone(),
    ));
    let deliverer = if config.webhooks.is_empty() {
        None
    } else {
        let deliverer = webhooks::Deliverer::new(
            config.webhooks,
            &state.engine,
            Arc::clone(&state.metrics),
            config.webhook_settings,
        )
        .map_err(|error| ServerError::Webhooks(error.to_string()))?;
        deliverer
            .start_records()
            .await
            .map_err(|error| ServerError::Webhooks(error.to_string()))?;
        Some(tokio::spawn(Arc::new(deliverer).run(stopped.clone())))
    };
    let refresher = tokio::spawn(metrics::refresh(
        Arc::clone(&state.engine),
        Arc::clone(&state.metrics),
        config.metrics_refresh,
        stopped.clone(),
    ));
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    // The body is read inside the handler, so the call's deadline allows for
    // it on top of the handler's own work.
    let app = router(
        state,
        &config.www_dir,
        &config.pkg_dir,
        config.request_timeout + config.limits.body_timeout,
    );
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "listening");
    }
    let served = serving::serve(listener, app, config.limits, stopped).await;
    let _ = sweeper.await;
    let _ = refresher.await;
    if let Some(deliverer) = deliverer {
        let _ = deliverer.await;
    }
    tracing::info!("stopped");
    served.map_err(ServerError::Io)
}

/// One route of the API: a method, a path, and the handler that serves it.
struct Route {
    method: Method,
    path: &'static str,
    handler: MethodRouter<AppState>,
}

impl Route {
    fn get<H: Handler<T, AppState>, T: 'static>(path: &'static str, handler: H) -> Self {
        Self {
            method: Method::GET,
            path,
            handler: get(handler),
        }
    }

    fn post<H: Handler<T, AppState>, T: 'static>(path: &'static str, handler: H) -> Self {
        Self {
            method: Method::POST,
            path,
            handler: post(handler),
        }
    }

    fn put<H: Handler<T, AppState>, T: 'static>(path: &'static str, handler: H) -> Self {
        Self {
            method: Method::PUT,
            path,
            handler: put(handler),
        }
    }
}

/// Every route of the API. The router is built from this table, and
/// `/openapi.json` must describe exactly these routes (the tests compare the
/// two through [`routes`]).
fn api_routes() -> Vec<Route> {
    vec![
        Route::post("/v1/requests", api::create),
        Route::get("/v1/requests", api::list),
        Route::get("/v1/requests/{id}", api::get_request),
        Route::post("/v1/requests/{id}/approve", api::approve),
        Route::post("/v1/requests/{id}/reject", api::reject),
        Route::post("/v1/requests/{id}/cancel", api::cancel),
        Route::post("/v1/requests/{id}/comments", api::comment),
        Route::post("/v1/requests/{id}/amend", api::amend),
        Route::post("/v1/requests/{id}/review", api::review),
        Route::post("/v1/preview", api::preview),
        Route::get("/v1/me", api::me),
        Route::get("/v1/principals", api::principals),
        Route::get("/v1/rules", api::get_rules),
        Route::put("/v1/rules", api::put_rules),
        Route::post("/v1/rules/simulate", api::simulate_rules),
        Route::get("/v1/events", events::list),
        Route::get("/v1/events/stream", events::stream),
        Route::get("/metrics", api::metrics),
        Route::get("/healthz", api::healthz),
        Route::get("/readyz", api::readyz),
        Route::get("/openapi.json", openapi::serve),
    ]
}

/// The method and path of every route of the API, in the router's own
/// table: not the static files, nor the JSON 404 of unknown `/v1` paths.
pub fn routes() -> Vec<(Method, &'static str)> {
    api_routes()
        .into_iter()
        .map(|route| (route.method, route.path))
        .collect()
}

fn router(
    state: AppState,
    www_dir: &std::path::Path,
    pkg_dir: &std::path::Path,
    timeout: Duration,
) -> Router {
    let not_found = || {
        tower::service_fn(|_request: Request| async {
            Ok::<_, std::convert::Infallible>(ApiError::no_route().into_response())
        })
    };
    let editor = ServeDir::new(www_dir)
        .call_fallback_on_method_not_allowed(true)
        .fallback(not_found());
    let package = ServeDir::new(pkg_dir)
        .call_fallback_on_method_not_allowed(true)
        .fallback(not_found());
    let metrics = Arc::clone(&state.metrics);
    let settling = state.clone();
    // Routes of one path with several methods are merged by axum.
    api_routes()
        .into_iter()
        .fold(Router::new(), |router, route| {
            router.route(route.path, route.handler)
        })
        .route("/v1", axum::routing::any(api::no_route))
        .route("/v1/{*rest}", axum::routing::any(api::no_route))
        .nest_service("/pkg", package)
        .fallback_service(editor)
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(CatchPanicLayer::custom(panicked))
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(middleware::from_fn_with_state(metrics, observe))
                .layer(middleware::from_fn_with_state(
                    settling,
                    serving::settle_unread_body,
                ))
                .layer(middleware::map_response(json_errors))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::SERVICE_UNAVAILABLE,
                    timeout,
                )),
        )
}

/// The last resort: a panic anywhere answers a generic JSON 500.
fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    tracing::error!(panic = %detail, "a handler panicked");
    ApiError::internal().into_response()
}

/// Gives every error status a JSON error body, whoever produced it (static
/// files, the timeout, the HTTP stack's own rejections).
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|text| text.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let code = code_of_status(status);
    let error = match code {
        ErrorCode::Unavailable => ApiError::new(
            code,
            "the request timed out or the server is unavailable; retry later",
        ),
        ErrorCode::Internal => ApiError::internal(),
        ErrorCode::NotFound => ApiError::no_route(),
        _ => ApiError::new(
            code,
            status
                .canonical_reason()
                .unwrap_or("the request was refused")
                .to_owned(),
        ),
    };
    let (mut parts, _) = response.into_parts();
    let mut fresh = error.into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    *fresh.headers_mut() = parts.headers;
    *fresh.status_mut() = status;
    fresh.extensions_mut().insert(code);
    fresh
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Logs and measures every call: one JSON line with the request id, method,
/// route template, path, status and latency (never a header, so never a
/// token).
async fn observe(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let path = request.uri().path().to_owned();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    match response.extensions().get::<ErrorCode>() {
        Some(ErrorCode::RateLimited) => metrics.rate_limited(),
        Some(ErrorCode::InvalidRequest) => metrics.invalid(),
        _ => {}
    }
    metrics.http(method, &route, status, elapsed.as_secs_f64());
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    let code = response
        .extensions()
        .get::<ErrorCode>()
        .map(|code| code.as_str());
    if status >= 500 {
        tracing::warn!(
            request_id, method, route, path, status, latency_ms, code, "request"
        );
    } else {
        tracing::info!(
            request_id, method, route, path, status, latency_ms, code, "request"
        );
    }
    response
}
