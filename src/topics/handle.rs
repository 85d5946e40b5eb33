//! The running automation: one worker task that checks every facet every `POLL_INTERVAL` and
//! serves on-demand requests in between, one at a time, and the handle that sends them.

use super::automation::{Automation, FacetState, POLL_INTERVAL};
use super::{Backfill, PublishedMaps, TopicMap};
use crate::config::Config;
use crate::telemetry::metrics::Metrics;
use redb::Database;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

enum Request {
    Regenerate(String, oneshot::Sender<Result<Arc<TopicMap>, String>>),
    RetryNames(String, oneshot::Sender<FacetState>),
    Check(oneshot::Sender<Vec<(String, FacetState)>>),
}

/// The running automation: on-demand requests go to its worker.
#[derive(Clone)]
pub struct TopicsHandle {
    requests: mpsc::Sender<Request>,
    automation: Arc<Automation>,
    /// The worker and the admin server.
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    stop: Arc<tokio::sync::watch::Sender<bool>>,
}

/// Starts the topic automation: publishes the newest stored map of every facet at once, then
/// checks the facets every `POLL_INTERVAL` in a background task (only publishing if
/// `topics.enabled` is false). Must be called within a tokio runtime.
pub fn start(
    config: &Config,
    db: Arc<Database>,
    metrics: Arc<Metrics>,
    published: PublishedMaps,
    backfill: Arc<dyn Backfill>,
) -> Result<TopicsHandle, String> {
    let automation = Arc::new(Automation::new(config, db, metrics, published, backfill)?);
    match automation.load_published() {
        Ok(n) if n > 0 => tracing::info!(maps = n, "stored topic maps published"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot load stored topic maps"),
    }
    let (tx, rx) = mpsc::channel(16);
    let enabled = config.topics.enabled;
    let worker = tokio::spawn(run_worker(automation.clone(), rx, enabled));
    Ok(TopicsHandle {
        requests: tx,
        automation,
        tasks: Arc::new(std::sync::Mutex::new(vec![worker])),
        stop: Arc::new(tokio::sync::watch::channel(false).0),
    })
}

async fn run_worker(
    automation: Arc<Automation>,
    mut requests: mpsc::Receiver<Request>,
    auto: bool,
) {
    let check_all = |automation: Arc<Automation>| async move {
        let mut states = Vec::new();
        for facet in automation.facets() {
            let (state, _) = automation.advance(facet, false).await;
            states.push((facet.clone(), state));
        }
        states
    };
    loop {
        let request = if auto {
            match tokio::time::timeout(POLL_INTERVAL, requests.recv()).await {
                Ok(None) => return,
                Ok(Some(request)) => Some(request),
                Err(_) => None,
            }
        } else {
            match requests.recv().await {
                None => return,
                request => request,
            }
        };
        match request {
            None => {
                check_all(automation.clone()).await;
            }
            Some(Request::Check(reply)) => {
                let _ = reply.send(check_all(automation.clone()).await);
            }
            Some(Request::Regenerate(facet, reply)) => {
                let result = if automation.facets().contains(&facet) {
                    match automation.advance(&facet, true).await.1 {
                        Some(result) => result,
                        None => Err("no map was built".into()),
                    }
                } else {
                    Err(format!(
                        "unknown facet `{facet}`; configured: {}",
                        automation.facets().join(", ")
                    ))
                };
                let _ = reply.send(result);
            }
            Some(Request::RetryNames(facet, reply)) => {
                let mut state = automation.state(&facet);
                automation
                    .retry_names_if_due(&facet, &mut state, true)
                    .await;
                automation.save(&facet, &state);
                let _ = reply.send(state);
            }
        }
    }
}

impl TopicsHandle {
    /// The maps classification reads.
    pub fn published(&self) -> PublishedMaps {
        self.automation.published().clone()
    }

    pub fn facets(&self) -> Vec<String> {
        self.automation.facets().to_vec()
    }

    /// The persisted state of `facet`.
    pub fn state(&self, facet: &str) -> FacetState {
        self.automation.state(facet)
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, String> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(make(tx))
            .await
            .map_err(|_| "the topic automation has stopped".to_string())?;
        rx.await
            .map_err(|_| "the topic automation has stopped".to_string())
    }

    /// Rebuilds `facet`'s map now (after whatever the worker is doing) and returns it.
    pub async fn regenerate(&self, facet: &str) -> Result<Arc<TopicMap>, String> {
        self.ask(|tx| Request::Regenerate(facet.into(), tx)).await?
    }

    /// Runs one check of every facet now, as the timer would; returns their states.
    pub async fn check_now(&self) -> Result<Vec<(String, FacetState)>, String> {
        self.ask(Request::Check).await
    }

    /// Asks the naming model again now for topics with keyword names.
    pub async fn retry_names(&self, facet: &str) -> Result<FacetState, String> {
        self.ask(|tx| Request::RetryNames(facet.into(), tx)).await
    }

    pub(super) fn db(&self) -> Arc<Database> {
        self.automation.db.clone()
    }

    /// Resolves once `shutdown` was called.
    pub(super) fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stop = self.stop.subscribe();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    }

    pub(super) fn keep_task(&self, task: tokio::task::JoinHandle<()>) {
        self.tasks.lock().expect("tasks lock").push(task);
    }

    /// Stops the worker and the admin endpoint. A regeneration in progress is abandoned; its
    /// persisted state makes the next start redo it.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock().expect("tasks lock"));
        let mut tasks = tasks.into_iter();
        // The worker first: it is aborted; the admin server finishes its requests.
        if let Some(worker) = tasks.next() {
            worker.abort();
            let _ = worker.await;
        }
        for task in tasks {
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::warn!("topics admin requests still running at shutdown");
            }
        }
    }
}
