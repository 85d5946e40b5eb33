//! The local admin endpoint the CLI talks to (redb locks the file while the sidecar runs):
//! `GET /topics`, `GET /topics/{facet}`, `POST /topics/{facet}/regenerate`, `POST /cluster`.

use super::TopicMap;
use super::adhoc::{self, ClusterRequest};
use super::automation::{FacetState, TopicsHandle};
use super::labels::{LabelCount, window_label_counts};
use crate::config::Config;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;

/// One facet as `GET /topics` shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FacetView {
    pub facet: String,
    pub state: FacetState,
    /// The published map (centroids omitted).
    pub map: Option<TopicMap>,
    /// A labelled facet's label counts over the topics window (its topics, map or not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<LabelCount>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TopicsView {
    pub facets: Vec<FacetView>,
}

#[derive(Clone)]
struct AdminState {
    topics: TopicsHandle,
    config: Arc<Config>,
    /// One ad-hoc clustering at a time: it is CPU-heavy and shares the cores with the pipeline.
    adhoc: Arc<tokio::sync::Mutex<()>>,
}

/// A JSON answer (axum's `json` feature is off to keep the build small).
fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => (status, [("content-type", "application/json")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    json(status, &serde_json::json!({"error": message.into()}))
}

fn view(s: &AdminState, facet: &str) -> FacetView {
    FacetView {
        facet: facet.into(),
        state: s.topics.state(facet),
        map: s.topics.published().get(facet).map(|m| (*m).clone()),
        labels: window_label_counts(
            &s.topics.db(),
            &s.config,
            facet,
            super::automation::now_ms(),
        ),
    }
}

async fn all_topics(State(s): State<AdminState>) -> Response {
    json(
        StatusCode::OK,
        &TopicsView {
            facets: s.topics.facets().iter().map(|f| view(&s, f)).collect(),
        },
    )
}

async fn one_facet(State(s): State<AdminState>, Path(facet): Path<String>) -> Response {
    if !s.topics.facets().contains(&facet) {
        return error(StatusCode::NOT_FOUND, format!("unknown facet `{facet}`"));
    }
    json(StatusCode::OK, &view(&s, &facet))
}

async fn regenerate(State(s): State<AdminState>, Path(facet): Path<String>) -> Response {
    if !s.topics.facets().contains(&facet) {
        return error(StatusCode::NOT_FOUND, format!("unknown facet `{facet}`"));
    }
    match s.topics.regenerate(&facet).await {
        Ok(map) => json(StatusCode::OK, &*map),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

async fn cluster(State(s): State<AdminState>, body: axum::body::Bytes) -> Response {
    let request: ClusterRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid request: {e}")),
    };
    if let Err(e) = adhoc::plan(&s.config, &request) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let _one_at_a_time = s.adhoc.lock().await;
    let (db, config, req) = (s.topics.db(), s.config.clone(), request.clone());
    let now = super::automation::now_ms();
    let built = super::automation::on_thread("adhoc-cluster", move || {
        adhoc::cluster(&db, &config, &req, now, &|_, _| {})
    })
    .await
    .and_then(|r| r);
    match built {
        Ok((mut map, matched)) => {
            if let Err(e) = adhoc::name(&s.config, &mut map).await {
                return error(StatusCode::INTERNAL_SERVER_ERROR, e);
            }
            json(
                StatusCode::OK,
                &adhoc::report(&map, matched, request.samples),
            )
        }
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

impl TopicsHandle {
    /// Serves the admin endpoint on `listener` until `shutdown`; returns its address.
    pub fn serve_admin(&self, listener: tokio::net::TcpListener, config: &Config) -> SocketAddr {
        let addr = listener.local_addr().expect("bound socket has an address");
        let state = AdminState {
            topics: self.clone(),
            config: Arc::new(config.clone()),
            adhoc: Arc::default(),
        };
        let router = axum::Router::new()
            .route("/topics", get(all_topics))
            .route("/topics/{facet}", get(one_facet))
            .route("/topics/{facet}/regenerate", post(regenerate))
            .route("/cluster", post(cluster))
            .with_state(state);
        let stop = self.stopped();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(error = %e, "topics admin endpoint failed");
            }
        });
        self.keep_task(task);
        tracing::info!(address = %addr, "topics admin listening");
        if !addr.ip().is_loopback() {
            tracing::warn!(address = %addr, "the topics admin endpoint has no authentication and listens beyond localhost");
        }
        addr
    }
}
