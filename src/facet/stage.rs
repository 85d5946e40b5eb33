//! The facet stage in the running sidecar: preprocessed traces in, facet records (summary +
//! embedding) out, into redb. It runs beside the span path — spans are exported whatever
//! happens here. A model outage parks traces in a bounded retry queue; they are faceted once the
//! endpoint is back.

use super::extract::{AnswerCache, FacetModel, extract};
use super::{FacetSpec, FacetsConfig, sampled};
use crate::classify::attributes::{self, Classification};
use crate::classify::stage::Classifier;
use crate::config::Config;
use crate::core::EnrichmentTicket;
use crate::embed::Embedder;
use crate::preprocess::Preprocessed;
use crate::preprocess::stage::PreprocessedSink;
use crate::store::classifications::{self, ClassificationRecord};
use crate::store::facet_retry;
use crate::store::facets::{self, FacetRecord};
use crate::telemetry::metrics::{FacetLabel, FacetValueLabel, Metrics, ReasonLabel};
use redb::Database;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Semaphore, mpsc};

/// How long the record writer gathers writes into one durable transaction.
const WRITE_LINGER: Duration = Duration::from_millis(200);
/// Traces waiting for the facet stage.
const QUEUE: usize = 2048;
/// Traces parked after a model failure (in memory and in redb, so a restart retries them),
/// retried with back-off; beyond this the latest-due are given up (counted).
const RETRY_CAPACITY: usize = 10_000;

/// The preprocess side: hands traces over without blocking.
pub struct FacetSink {
    sender: mpsc::Sender<(Preprocessed, Option<EnrichmentTicket>)>,
    metrics: Arc<Metrics>,
}

impl PreprocessedSink for FacetSink {
    fn accept(&mut self, trace: Preprocessed) {
        self.accept_ticketed(trace, None);
    }

    fn accept_ticketed(&mut self, trace: Preprocessed, ticket: Option<EnrichmentTicket>) {
        if self.sender.try_send((trace, ticket)).is_err() {
            count(&self.metrics, "busy");
        }
    }
}

fn count(metrics: &Metrics, outcome: &'static str) {
    metrics
        .facet_traces
        .get_or_create(&ReasonLabel { reason: outcome })
        .inc();
}

struct Shared {
    specs: Vec<FacetSpec>,
    config: FacetsConfig,
    model: FacetModel,
    embedder: Embedder,
    cache: AnswerCache,
    db: Arc<Database>,
    writer: RecordWriter,
    metrics: Arc<Metrics>,
    summary_max_chars: usize,
    /// Topics for each new record, once its facet has a map.
    classifier: Option<Classifier>,
}

type WriteRequest = (
    Vec<FacetRecord>,
    Vec<ClassificationRecord>,
    tokio::sync::oneshot::Sender<Result<(), String>>,
);

/// Writes facet records with group commit: one durable transaction covers every write that
/// queued up meanwhile, so a busy sidecar does not pay one fsync per trace.
struct RecordWriter {
    sender: std::sync::Mutex<Option<std::sync::mpsc::Sender<WriteRequest>>>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl RecordWriter {
    fn start(db: Arc<Database>) -> Self {
        let (sender, receiver) = std::sync::mpsc::channel::<WriteRequest>();
        let thread = std::thread::Builder::new()
            .name("tracetopics-facet-writer".into())
            .spawn(move || {
                while let Ok(first) = receiver.recv() {
                    // Facets are not latency-sensitive: linger so a busy sidecar pays a few
                    // fsyncs per second, not one per trace.
                    let deadline = Instant::now() + WRITE_LINGER;
                    let mut batch = vec![first];
                    while batch.len() < 512 {
                        let left = deadline.saturating_duration_since(Instant::now());
                        match receiver.recv_timeout(left) {
                            Ok(more) => batch.push(more),
                            Err(_) => break,
                        }
                    }
                    let records: Vec<FacetRecord> = batch
                        .iter()
                        .flat_map(|(r, _, _)| r.iter().cloned())
                        .collect();
                    let classified: Vec<ClassificationRecord> = batch
                        .iter()
                        .flat_map(|(_, c, _)| c.iter().cloned())
                        .collect();
                    // Classifications ride on the facets' fsync: a lost one is recomputed by
                    // the next backfill.
                    let result = classifications::put(&db, &classified, false)
                        .and_then(|()| facets::put(&db, &records))
                        .map_err(|e| e.to_string());
                    for (_, _, reply) in batch {
                        let _ = reply.send(result.clone());
                    }
                }
            })
            .expect("spawning the facet writer");
        Self {
            sender: std::sync::Mutex::new(Some(sender)),
            thread: std::sync::Mutex::new(Some(thread)),
        }
    }

    async fn write(
        &self,
        records: Vec<FacetRecord>,
        classified: Vec<ClassificationRecord>,
    ) -> Result<(), String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sender = self.sender.lock().expect("writer lock").clone();
        sender
            .ok_or_else(|| "facet writer stopped".to_string())?
            .send((records, classified, reply))
            .map_err(|_| "facet writer stopped".to_string())?;
        answer
            .await
            .map_err(|_| "facet writer stopped".to_string())?
    }

    /// Finishes queued writes and lets go of the database (so it can be reopened).
    async fn close(&self) {
        self.sender.lock().expect("writer lock").take();
        let thread = self.thread.lock().expect("writer lock").take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// The preprocessors the configured facets need (the global one first).
pub fn preprocessors(config: &Config) -> Vec<String> {
    let mut names = vec![config.preprocess.preprocessor.clone()];
    for custom in config.facets.custom.iter().filter(|c| c.enabled) {
        if let Some(name) = &custom.preprocessor {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    names
}

pub fn start(
    config: &Config,
    db: Arc<Database>,
    metrics: Arc<Metrics>,
    classifier: Option<Classifier>,
) -> Result<(FacetSink, tokio::task::JoinHandle<()>), String> {
    let shared = Arc::new(Shared {
        specs: super::specs(&config.facets, &config.preprocess.preprocessor)?,
        config: config.facets.clone(),
        model: FacetModel::new(&config.models.facets)?.with_metrics(&metrics.model),
        embedder: Embedder::new(&config.models.embeddings)?.with_metrics(&metrics.model),
        cache: AnswerCache::new(config.facets.cache_entries),
        writer: RecordWriter::start(db.clone()),
        db,
        metrics: metrics.clone(),
        summary_max_chars: config.classify.summary_max_chars,
        classifier,
    });
    let (sender, receiver) = mpsc::channel(QUEUE);
    let task = tokio::spawn(run(shared, receiver));
    Ok((FacetSink { sender, metrics }, task))
}

struct Parked {
    due: Instant,
    attempts: u32,
    trace: Preprocessed,
}

async fn run(
    shared: Arc<Shared>,
    mut receiver: mpsc::Receiver<(Preprocessed, Option<EnrichmentTicket>)>,
) {
    let workers = Arc::new(Semaphore::new(shared.config.workers.max(1)));
    let (park_tx, mut park_rx) = mpsc::unbounded_channel::<(Preprocessed, u32)>();
    let mut parked = restore_parked(&shared).await;
    shared.metrics.facet_retry_queue.set(parked.len() as i64);
    let mut tasks = tokio::task::JoinSet::new();
    let mut gc = tokio::time::interval(Duration::from_secs(3600));
    let mut closed = false;
    loop {
        while tasks.try_join_next().is_some() {}
        if closed {
            // Finish what is in hand; what is parked stays in redb for the next start.
            while tasks.join_next().await.is_some() {}
            shared.writer.close().await;
            break;
        }
        let next_due = parked.front().map(|p| p.due);
        tokio::select! {
            item = receiver.recv(), if !closed => match item {
                Some((trace, ticket)) => spawn(&mut tasks, &shared, &workers, &park_tx, trace, ticket, 0).await,
                None => closed = true,
            },
            Some((trace, attempts)) = park_rx.recv() => {
                let delay = shared
                    .config
                    .retry_backoff
                    .get()
                    .saturating_mul(1 << attempts.saturating_sub(1).min(8))
                    .min(Duration::from_secs(300));
                let record = facet_retry::ParkedTrace::new(&trace, attempts);
                persist(&shared, move |db| facet_retry::put(db, &record)).await;
                parked.push_back(Parked { due: Instant::now() + delay, attempts, trace });
                parked.make_contiguous().sort_by_key(|p| p.due);
                let mut given_up = Vec::new();
                while parked.len() > RETRY_CAPACITY {
                    if let Some(p) = parked.pop_back() {
                        given_up.push(facet_retry::key(&p.trace));
                    }
                    count(&shared.metrics, "given_up");
                }
                persist(&shared, move |db| facet_retry::remove(db, &given_up)).await;
                shared.metrics.facet_retry_queue.set(parked.len() as i64);
            }
            _ = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now).into()), if next_due.is_some() => {
                while parked.front().is_some_and(|p| p.due <= Instant::now()) {
                    let p = parked.pop_front().expect("checked");
                    spawn(&mut tasks, &shared, &workers, &park_tx, p.trace, None, p.attempts).await;
                }
                shared.metrics.facet_retry_queue.set(parked.len() as i64);
            }
            _ = gc.tick() => {
                let cutoff = now_ms().saturating_sub(shared.config.retention.get().as_millis() as u64);
                let db = shared.db.clone();
                match tokio::task::spawn_blocking(move || facets::delete_before(&db, cutoff)).await {
                    Ok(Ok(n)) if n > 0 => tracing::info!(deleted = n, "facet records past retention deleted"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "facet retention cleanup failed"),
                    _ => {}
                }
            }
        }
    }
}

async fn spawn(
    tasks: &mut tokio::task::JoinSet<()>,
    shared: &Arc<Shared>,
    workers: &Arc<Semaphore>,
    park: &mpsc::UnboundedSender<(Preprocessed, u32)>,
    trace: Preprocessed,
    ticket: Option<EnrichmentTicket>,
    attempts: u32,
) {
    let permit = workers.clone().acquire_owned().await.expect("never closed");
    let (shared, park) = (shared.clone(), park.clone());
    tasks.spawn(async move {
        // Whatever happens, the ticket is dropped inside: the spans go then, enriched or not,
        // and a retry only completes the facets.
        let result = process(&shared, &trace, ticket, permit).await;
        if result.is_ok() && attempts > 0 {
            let key = vec![facet_retry::key(&trace)];
            persist(&shared, move |db| facet_retry::remove(db, &key)).await;
        }
        if let Err(retry) = result {
            tracing::warn!(trace_id = %trace.meta.trace_id, error = %retry, attempts, "faceting failed; will retry");
            let _ = park.send((trace, attempts + 1));
        }
    });
}

/// Facets one trace. `Err` means a model or storage failure worth retrying later.
async fn process(
    shared: &Shared,
    trace: &Preprocessed,
    ticket: Option<EnrichmentTicket>,
    worker: tokio::sync::OwnedSemaphorePermit,
) -> Result<(), String> {
    let config = &shared.config;
    let meta = &trace.meta;
    let matches = |rules: &std::collections::BTreeMap<String, Vec<String>>| {
        rules.iter().any(|(key, values)| {
            meta.attributes
                .get(key)
                .is_some_and(|v| values.iter().any(|x| x == v))
        })
    };
    if (!config.include.is_empty() && !matches(&config.include)) || matches(&config.exclude) {
        count(&shared.metrics, "filtered");
        return Ok(());
    }
    let chars: usize = trace.segments.iter().map(|s| s.chars().count()).sum();
    if chars < config.min_content_chars {
        count(&shared.metrics, "too_short");
        return Ok(());
    }
    let specs: Vec<&FacetSpec> = shared
        .specs
        .iter()
        .filter(|s| s.preprocessor == trace.configured && sampled(&meta.trace_id, s.sampling_rate))
        .collect();
    if specs.is_empty() {
        count(&shared.metrics, "not_sampled");
        return Ok(());
    }
    let extraction = extract(&shared.model, &shared.cache, &trace.segments, &specs)
        .await
        .map_err(|e| e.to_string())?;
    let m = &shared.metrics;
    m.facet_model_calls.inc_by(u64::from(extraction.calls));
    m.facet_reasks.inc_by(u64::from(extraction.reasks));
    m.facet_copied_examples
        .inc_by(u64::from(extraction.copied_examples));
    m.facet_without_evidence
        .inc_by(u64::from(extraction.without_evidence));
    // A labelled facet's labels are its topics: counted and put on the span without a map.
    let labels: Vec<(String, String)> = extraction
        .answers
        .iter()
        .filter_map(|a| {
            let spec = shared.specs.iter().find(|s| s.name == a.facet)?;
            Some((a.facet.clone(), spec.label_of(&a.text)?.to_string()))
        })
        .collect();
    for (facet, label) in &labels {
        m.facet_labels
            .get_or_create(&FacetValueLabel {
                facet: facet.clone(),
                label: label.clone(),
            })
            .inc();
    }
    m.facet_prompt_tokens.inc_by(extraction.prompt_tokens);
    m.facet_completion_tokens
        .inc_by(extraction.completion_tokens);
    for failed in &extraction.failed {
        m.facet_failed
            .get_or_create(&FacetLabel {
                facet: failed.clone(),
            })
            .inc();
    }
    // What each answer's map clusters (a labelled facet: the reason only); `None` is stored
    // without a vector and counted by its label alone.
    let clustered: Vec<Option<String>> = extraction
        .answers
        .iter()
        .map(|a| {
            let spec = shared.specs.iter().find(|s| s.name == a.facet);
            match spec {
                _ if a.excluded => None,
                Some(spec) => spec.clustered_text(&a.text),
                None => Some(a.text.clone()),
            }
        })
        .collect();
    let to_embed: Vec<String> = clustered.iter().flatten().cloned().collect();
    let mut vectors = shared
        .embedder
        .embed(&to_embed)
        .await
        .map_err(|e| format!("embedding: {e}"))?
        .into_iter();
    let trace_id: [u8; 16] = hex::decode(&meta.trace_id)
        .ok()
        .and_then(|b| b.try_into().ok())
        .unwrap_or([0; 16]);
    let time_ms = now_ms();
    let records: Vec<FacetRecord> = extraction
        .answers
        .iter()
        .zip(&clustered)
        .map(|(a, clustered)| FacetRecord {
            trace_id,
            facet: a.facet.clone(),
            text: a.text.clone(),
            excluded: a.excluded,
            time_ms,
            version: a.version.clone(),
            preprocessor: trace.configured.clone(),
            facet_model: shared.model.model_id(),
            embedding_model: shared.embedder.model_id(),
            service_name: meta.service_name.clone(),
            root_span_name: meta.root_span_name.clone(),
            user_id: meta.user_id.clone(),
            session_id: meta.session_id.clone(),
            embedding: match clustered {
                Some(_) => vectors.next().unwrap_or_default(),
                None => Vec::new(),
            },
        })
        .collect();
    let stored = records.len() as u64;
    let classified: Vec<Classification> = records
        .iter()
        .filter_map(|r| shared.classifier.as_ref()?.classify(r))
        .collect();
    if let Some(ticket) = ticket {
        ticket.add(
            records
                .iter()
                .map(|r| attributes::facet_summary(r, shared.summary_max_chars)),
        );
        ticket.add(classified.iter().flat_map(attributes::topic));
        ticket.add(
            labels
                .iter()
                .map(|(facet, label)| label_attribute(facet, label)),
        );
        // Released before the durable write: spans need the answer, not its fsync.
        drop(ticket);
    }
    if let Some(classifier) = &shared.classifier {
        classified.iter().for_each(|c| classifier.count(c));
    }
    // `workers` bounds model calls; the durable write lingers to group commits, and holding a
    // worker through it would cap the stage at workers / linger traces per second.
    drop(worker);
    let classified = classified
        .iter()
        .map(|c| crate::classify::stage::record(trace_id, c, time_ms))
        .collect();
    shared.writer.write(records, classified).await?;
    m.facet_records.inc_by(stored);
    count(m, if extraction.cached { "cached" } else { "ok" });
    Ok(())
}

/// Traces parked by an earlier run, due at once (spread a little so a restart is no stampede).
async fn restore_parked(shared: &Arc<Shared>) -> VecDeque<Parked> {
    let db = shared.db.clone();
    let stored = match tokio::task::spawn_blocking(move || facet_retry::all(&db)).await {
        Ok(Ok(stored)) => stored,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot read the facet retry queue; parked traces are not retried");
            Vec::new()
        }
        Err(_) => Vec::new(),
    };
    if !stored.is_empty() {
        tracing::info!(
            traces = stored.len(),
            "retrying traces parked before the restart"
        );
    }
    let now = Instant::now();
    stored
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let (trace, attempts) = p.into_trace();
            Parked {
                due: now + Duration::from_millis(10 * i as u64),
                attempts,
                trace,
            }
        })
        .collect()
}

/// A small write to the retry table, off the async workers. Failing it only risks the parked
/// trace's facets after a restart, so it is logged, not fatal.
async fn persist(
    shared: &Arc<Shared>,
    write: impl FnOnce(&Database) -> Result<(), crate::store::StoreError> + Send + 'static,
) {
    let db = shared.db.clone();
    match tokio::task::spawn_blocking(move || write(&db)).await {
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot update the facet retry queue"),
        Ok(Ok(())) | Err(_) => {}
    }
}

/// `tracetopics.facet.<facet>.label`: a labelled facet's label, as its topic.
fn label_attribute(facet: &str, label: &str) -> opentelemetry_proto::tonic::common::v1::KeyValue {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    KeyValue {
        key: format!("tracetopics.facet.{facet}.label"),
        value: Some(AnyValue {
            value: Some(Value::StringValue(label.to_string())),
        }),
        ..Default::default()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
