//! The per-facet state machine that keeps topic maps current, persisted in redb so a restart
//! continues where the last run stopped:
//!
//! `waiting_for_facets` → (enough traces faceted) → `recomputing_topic_maps` → (map named, stored,
//! published) → `backfill` → (the `Backfill` hook succeeded) → `idle` → (every
//! `regenerate_every`, on demand, or — while the map was built from fewer summaries than the
//! sample size — once the facet's summaries have doubled since) → `recomputing_topic_maps` …
//!
//! One worker task handles every facet in turn, at most one regeneration at a time; clustering
//! runs on its own thread so the async runtime stays responsive. A state left in
//! `recomputing_topic_maps` by a crash simply recomputes on the next start.

use super::config::TopicsConfig;
use super::naming::{Namer, name_topics};
use super::regenerate::{RegenerateError, regenerate};
use super::{Backfill, PublishedMaps, TopicMap};
use crate::config::Config;
use crate::store::topics as topic_store;
use crate::telemetry::metrics::{FacetLabel, Metrics};
use redb::Database;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

pub use super::handle::{TopicsHandle, start};

/// How often the worker checks whether a facet has become ready or a map is due. A check only
/// counts keys of the time index.
pub const POLL_INTERVAL: Duration = Duration::from_secs(30);
/// After a failed regeneration (or too few distinct summaries), wait this long before trying
/// again (or `regenerate_every`, if shorter).
pub const FAILURE_RETRY: Duration = Duration::from_secs(600);
/// Topics left with keyword names after a failed naming call are named again this much later.
pub const NAMING_RETRY: Duration = Duration::from_secs(900);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    #[default]
    WaitingForFacets,
    /// A labelled facet without a map: its labels are its topics (counted, on spans, shown by
    /// `topics show`); a map of its reasons is built, as in `waiting_for_facets`, once enough
    /// distinct reasons are stored.
    Labelled,
    RecomputingTopicMaps,
    Backfill,
    Idle,
}

/// What is persisted per facet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FacetState {
    pub phase: Phase,
    /// The version of the newest published map.
    pub map_version: Option<u64>,
    /// When the next regeneration is due (unix ms; 0 = as soon as the facet is ready).
    pub due_ms: u64,
    /// Set while some topics carry keyword names: when to ask the naming model again.
    pub naming_retry_ms: Option<u64>,
    pub last_error: Option<String>,
    /// Summaries of the facet in the window when the current map was built.
    pub map_records: Option<usize>,
    /// An early map, built from fewer summaries than `clustering.sample_size`, is rebuilt once
    /// the window holds this many (twice `map_records`, at most the sample size), before
    /// `due_ms` if that comes first. `None` once a map had a full sample.
    pub rebuild_at_records: Option<usize>,
}

/// A facet's state before its first map: a labelled facet starts `labelled` (its labels already
/// classify), any other `waiting_for_facets`.
pub fn initial_state(labelled: bool) -> FacetState {
    FacetState {
        phase: if labelled {
            Phase::Labelled
        } else {
            Phase::WaitingForFacets
        },
        ..FacetState::default()
    }
}

/// When a map built from `records` summaries should be rebuilt for growth: once they doubled,
/// up to the sample size; never once it had a full sample.
pub fn growth_rebuild_at(records: usize, sample_size: usize) -> Option<usize> {
    (records < sample_size).then(|| records.saturating_mul(2).min(sample_size).max(records + 1))
}

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Runs `f` on a fresh thread and awaits it: a panic becomes an error, and a shutdown does not
/// wait for a long clustering run (its state stays `recomputing` and restarts next time).
pub(super) async fn on_thread<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    rx.await.map_err(|_| format!("{name} panicked"))
}

/// The facets that get topic maps: the built-in ones, then the enabled custom ones.
pub fn configured_facets(config: &Config) -> Vec<String> {
    let mut facets: Vec<String> = config.facets.builtin.clone();
    facets.extend(
        config
            .facets
            .custom
            .iter()
            .filter(|c| c.enabled)
            .map(|c| c.name.clone()),
    );
    facets
}

/// The state machine of every facet (no task of its own: the worker drives it).
pub struct Automation {
    pub(super) db: Arc<Database>,
    config: TopicsConfig,
    facets: Vec<String>,
    /// The facets whose answer is a label.
    labelled: Vec<crate::facet::FacetSpec>,
    embedding_model: String,
    namer: Namer,
    published: PublishedMaps,
    backfill: Arc<dyn Backfill>,
    metrics: Arc<Metrics>,
}

impl Automation {
    pub fn new(
        config: &Config,
        db: Arc<Database>,
        metrics: Arc<Metrics>,
        published: PublishedMaps,
        backfill: Arc<dyn Backfill>,
    ) -> Result<Self, String> {
        Ok(Automation {
            db,
            config: config.topics.clone(),
            facets: configured_facets(config),
            labelled: super::labels::labelled_specs(config),
            embedding_model: crate::embed::Embedder::new(&config.models.embeddings)?.model_id(),
            namer: Namer::new(&config.models.naming)?.with_metrics(&metrics.model),
            published,
            backfill,
            metrics,
        })
    }

    pub fn facets(&self) -> &[String] {
        &self.facets
    }

    pub fn published(&self) -> &PublishedMaps {
        &self.published
    }

    /// Publishes the newest stored map of every facet; returns how many.
    pub fn load_published(&self) -> Result<usize, String> {
        let maps = topic_store::latest_all(&self.db).map_err(|e| e.to_string())?;
        let count = maps.len();
        for map in maps {
            self.publish(Arc::new(map));
        }
        Ok(count)
    }

    fn publish(&self, map: Arc<TopicMap>) {
        let label = FacetLabel {
            facet: map.facet.clone(),
        };
        self.metrics
            .topic_map_version
            .get_or_create(&label)
            .set(map.version as i64);
        self.metrics
            .topic_map_topics
            .get_or_create(&label)
            .set(map.topics.len() as i64);
        self.published.publish(map);
    }

    fn label(facet: &str) -> FacetLabel {
        FacetLabel {
            facet: facet.into(),
        }
    }

    fn is_labelled(&self, facet: &str) -> bool {
        self.labelled.iter().any(|s| s.name == facet)
    }

    /// The persisted state of `facet` (the initial state if none was stored).
    pub fn state(&self, facet: &str) -> FacetState {
        topic_store::state(&self.db, facet)
            .ok()
            .flatten()
            .unwrap_or_else(|| initial_state(self.is_labelled(facet)))
    }

    pub(super) fn save(&self, facet: &str, state: &FacetState) {
        if let Err(e) = topic_store::put_state(&self.db, facet, state) {
            tracing::warn!(facet, error = %e, "cannot persist the topic automation state");
        }
    }

    /// Advances `facet` through every phase that is due now (`force`: regenerate now whatever
    /// the schedule and counts say). Returns the new state and, when a map was built, the map or
    /// why it failed.
    pub async fn advance(
        &self,
        facet: &str,
        force: bool,
    ) -> (FacetState, Option<Result<Arc<TopicMap>, String>>) {
        let mut state = self.state(facet);
        // Only changes are written: a check that finds nothing to do costs no commit.
        let mut saved = state.clone();
        let mut save = |state: &FacetState| {
            if *state != saved {
                self.save(facet, state);
                saved = state.clone();
            }
        };
        let mut force = force;
        let mut built = None;
        loop {
            let now = now_ms();
            let next = match state.phase {
                Phase::WaitingForFacets | Phase::Labelled => (force
                    || (now >= state.due_ms && self.ready(facet).await))
                    .then_some(Phase::RecomputingTopicMaps),
                // Also where a crash mid-generation resumes.
                Phase::RecomputingTopicMaps if built.is_none() => {
                    force = false;
                    built = Some(self.recompute(facet, &mut state).await);
                    save(&state);
                    continue;
                }
                // Already tried in this call; the failure set a later due time.
                Phase::RecomputingTopicMaps => None,
                // A forced rebuild supersedes a pending backfill: the new map gets its own.
                Phase::Backfill if force => Some(Phase::RecomputingTopicMaps),
                Phase::Backfill => self.run_backfill(facet, &mut state).await,
                Phase::Idle => {
                    self.retry_names_if_due(facet, &mut state, false).await;
                    (force || now >= state.due_ms || self.grown(facet, &state).await)
                        .then_some(Phase::RecomputingTopicMaps)
                }
            };
            match next {
                Some(phase) => {
                    state.phase = phase;
                    save(&state);
                }
                None => {
                    save(&state);
                    return (state, built);
                }
            }
        }
    }

    /// Enough traces faceted in the window for a first map.
    async fn ready(&self, facet: &str) -> bool {
        self.count_records(facet)
            .await
            .is_some_and(|count| count >= self.config.min_traces)
    }

    /// An early map's summaries have grown enough for a rebuild (not after a failed one: that
    /// waits for its retry time, `due_ms`).
    async fn grown(&self, facet: &str, state: &FacetState) -> bool {
        let Some(at) = state.rebuild_at_records else {
            return false;
        };
        if state.last_error.is_some() {
            return false;
        }
        let grown = self.count_records(facet).await.is_some_and(|n| n >= at);
        if grown {
            tracing::info!(
                facet,
                records = at,
                "summaries grew since the map was built: rebuilding early"
            );
        }
        grown
    }

    /// Summaries of `facet` in the window (`None` when they cannot be counted).
    async fn count_records(&self, facet: &str) -> Option<usize> {
        let since = now_ms().saturating_sub(ms(self.config.window.get()));
        let (db, name) = (self.db.clone(), facet.to_string());
        match tokio::task::spawn_blocking(move || topic_store::count_records(&db, &name, since))
            .await
        {
            Ok(Ok(count)) => Some(count),
            Ok(Err(e)) => {
                tracing::warn!(facet, error = %e, "cannot count facet records");
                None
            }
            Err(_) => None,
        }
    }

    /// Builds, names, stores and publishes the next map; on failure the previous map stays.
    async fn recompute(
        &self,
        facet: &str,
        state: &mut FacetState,
    ) -> Result<Arc<TopicMap>, String> {
        let started = Instant::now();
        let now = now_ms();
        let (db, name, config, model) = (
            self.db.clone(),
            facet.to_string(),
            self.config.clone(),
            self.embedding_model.clone(),
        );
        let labelled = self.labelled.iter().find(|s| s.name == facet).cloned();
        tracing::info!(facet, "building topic map");
        let result = on_thread("topic-map", move || {
            let since = now.saturating_sub(ms(config.window.get()));
            let records = topic_store::count_records(&db, &name, since).ok();
            regenerate(
                &db,
                &name,
                &config,
                &model,
                labelled.as_ref(),
                now,
                &|_, _| {},
            )
            .map(|r| (r, records))
        })
        .await;
        let mut records_at_build = None;
        let outcome = match result {
            Ok(Ok((mut regenerated, records))) => {
                records_at_build = records;
                let report =
                    name_topics(&self.namer, &mut regenerated.map, &self.config.naming, None).await;
                if report.error.is_some() {
                    self.metrics
                        .topic_naming_failures
                        .get_or_create(&Self::label(facet))
                        .inc();
                }
                let map = Arc::new(regenerated.map);
                let (db, stored, members, history) = (
                    self.db.clone(),
                    map.clone(),
                    regenerated.members,
                    self.config.history,
                );
                match tokio::task::spawn_blocking(move || {
                    topic_store::put_map(&db, &stored, &members, history)
                })
                .await
                {
                    Ok(Ok(())) => Ok(map),
                    Ok(Err(e)) => Err(format!("cannot store the map: {e}")),
                    Err(e) => Err(format!("storing the map failed: {e}")),
                }
            }
            Ok(Err(RegenerateError::TooFewFacets { found, needed, .. }))
                if self.is_labelled(facet) =>
            {
                Err(format!(
                    "not yet: {found} distinct reasons (the text after the label) in the window; at least {needed} needed for a map of reasons"
                ))
            }
            Ok(Err(e @ RegenerateError::TooFewFacets { .. })) => Err(format!("not yet: {e}")),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e),
        };
        let seconds = started.elapsed().as_secs_f64();
        self.metrics
            .topic_regeneration_seconds
            .get_or_create(&Self::label(facet))
            .inc_by(seconds);
        let retry = ms(FAILURE_RETRY.min(self.config.regenerate_every.get()));
        match &outcome {
            Ok(map) => {
                self.publish(map.clone());
                self.metrics
                    .topic_regenerations
                    .get_or_create(&Self::label(facet))
                    .inc();
                let unnamed = map.topics.iter().any(|t| !t.named);
                tracing::info!(
                    facet,
                    version = map.version,
                    topics = map.topics.len(),
                    noise_share = map.noise_share,
                    unnamed,
                    seconds,
                    "topic map published"
                );
                *state = FacetState {
                    phase: Phase::Backfill,
                    map_version: Some(map.version),
                    due_ms: now + ms(self.config.regenerate_every.get()),
                    naming_retry_ms: unnamed.then(|| now + ms(NAMING_RETRY)),
                    last_error: None,
                    map_records: records_at_build,
                    rebuild_at_records: records_at_build
                        .and_then(|n| growth_rebuild_at(n, self.config.clustering.sample_size)),
                };
            }
            Err(message) => {
                if !message.starts_with("not yet") {
                    self.metrics
                        .topic_regeneration_failures
                        .get_or_create(&Self::label(facet))
                        .inc();
                    tracing::warn!(facet, error = %message, "topic map regeneration failed; the previous map stays");
                } else {
                    tracing::info!(facet, reason = %message, "no topic map yet");
                }
                state.phase = if state.map_version.is_some() {
                    Phase::Idle
                } else {
                    initial_state(self.is_labelled(facet)).phase
                };
                state.due_ms = now + retry;
                state.last_error = Some(message.clone());
            }
        }
        outcome
    }

    /// Runs the backfill hook against the published map; `Some(Idle)` when it succeeded.
    async fn run_backfill(&self, facet: &str, state: &mut FacetState) -> Option<Phase> {
        let Some(map) = self.published.get(facet) else {
            // Nothing published (the map vanished): nothing to backfill against.
            return Some(Phase::Idle);
        };
        let backfill = self.backfill.clone();
        let result = on_thread("topic-backfill", move || backfill.backfill(&map))
            .await
            .and_then(|r| r);
        match result {
            Ok(changed) => {
                tracing::info!(facet, changed, "backfill done");
                state.last_error = None;
                Some(Phase::Idle)
            }
            Err(e) => {
                self.metrics
                    .topic_backfill_failures
                    .get_or_create(&Self::label(facet))
                    .inc();
                tracing::warn!(facet, error = %e, "backfill failed; retried at the next check");
                state.last_error = Some(format!("backfill: {e}"));
                None
            }
        }
    }

    /// Asks the naming model again for topics that still carry keyword names (when the retry is
    /// due, or `force`); a success is stored over the same map version and published.
    pub async fn retry_names_if_due(&self, facet: &str, state: &mut FacetState, force: bool) {
        let now = now_ms();
        match state.naming_retry_ms {
            Some(at) if force || now >= at => {}
            _ => return,
        }
        let Some(current) = self.published.get(facet) else {
            state.naming_retry_ms = None;
            return;
        };
        let unnamed: HashSet<u32> = current
            .topics
            .iter()
            .filter(|t| !t.named)
            .map(|t| t.id)
            .collect();
        if unnamed.is_empty() {
            state.naming_retry_ms = None;
            return;
        }
        let mut map = (*current).clone();
        let report = name_topics(&self.namer, &mut map, &self.config.naming, Some(&unnamed)).await;
        if report.error.is_some() {
            self.metrics
                .topic_naming_failures
                .get_or_create(&Self::label(facet))
                .inc();
        }
        if report.named > 0 {
            let members = topic_store::members(&self.db, facet, map.version).unwrap_or_default();
            match topic_store::put_map(&self.db, &map, &members, self.config.history) {
                Ok(()) => self.publish(Arc::new(map.clone())),
                Err(e) => tracing::warn!(facet, error = %e, "cannot store renamed topics"),
            }
        }
        let still_unnamed = map.topics.iter().any(|t| !t.named);
        state.naming_retry_ms = still_unnamed.then(|| now + ms(NAMING_RETRY));
    }
}
