//! The sidecar's own telemetry: Prometheus metrics, the health check, structured logs.

pub mod config;
pub mod metrics;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use config::{LogEncoding, LogsConfig};
use metrics::Metrics;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Sets up `tracing` on stderr. `RUST_LOG` wins over the configured level.
pub fn init_logs(config: &LogsConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.encoding {
        LogEncoding::Console => builder.with_ansi(ansi).try_init(),
        LogEncoding::Json => builder.json().with_ansi(false).try_init(),
    };
}

pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .with_state(metrics)
}

async fn serve_metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}

/// `GET /` answers 200 while the sidecar accepts data and 503 once it is draining.
pub fn health_router(healthy: Arc<AtomicBool>) -> Router {
    Router::new()
        .route("/", get(serve_health))
        .with_state(healthy)
}

async fn serve_health(State(healthy): State<Arc<AtomicBool>>) -> impl IntoResponse {
    if healthy.load(Ordering::Relaxed) {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"status":"Server available"}"#,
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"status":"Server not available"}"#,
        )
    }
}
