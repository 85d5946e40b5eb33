//! Topic automation end to end on a real redb file: generated facet records with known topics,
//! the state machine driven by explicit checks, naming against the in-process OpenAI-compatible
//! server over real HTTP, and the admin endpoint over loopback.

mod common;

use common::openai::{ModelServer, Scripted, chat_reply};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracetopics::Config;
use tracetopics::cluster::synthetic::{SyntheticSpec, generate};
use tracetopics::store::facets::{self, FacetRecord};
use tracetopics::store::topics as topic_store;
use tracetopics::telemetry::metrics::Metrics;
use tracetopics::topics::automation::{self, FacetState, Phase, TopicsHandle};
use tracetopics::topics::{Backfill, PublishedMaps, TopicMap};

const N: usize = 600;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A config with small thresholds; `naming` is extra YAML under `models:`.
fn config(dir: &std::path::Path, naming: &str) -> Config {
    let text = format!(
        "storage:\n  path: {}\n\
topics:\n  min_traces: 100\n  min_unique_summaries: 100\n  admin:\n    endpoint: 127.0.0.1:0\n\
models:\n{naming}",
        dir.join("t.redb").display()
    );
    Config::parse(&text, |_| None).unwrap_or_else(|e| panic!("{e}"))
}

fn open_db(config: &Config) -> Arc<redb::Database> {
    Arc::new(tracetopics::store::open(&config.storage).unwrap().0)
}

/// `n` records of facet `task` with 6 known topics, embedded "by" the configured model.
fn store_records(db: &redb::Database, config: &Config, n: usize) {
    store_records_of(db, config, n, 0..n);
}

/// Records `rows` of `n` generated ones (trace ids by row, so batches add up).
fn store_records_of(db: &redb::Database, config: &Config, n: usize, rows: std::ops::Range<usize>) {
    let data = generate(&SyntheticSpec {
        n,
        dim: 32,
        n_topics: 6,
        n_super_topics: 2,
        noise_share: 0.03,
        size_exponent: 0.5,
        seed: 11,
    });
    let model = tracetopics::embed::Embedder::new(&config.models.embeddings)
        .unwrap()
        .model_id();
    let time = now_ms() - 60_000;
    let records: Vec<FacetRecord> = rows
        .map(|i| {
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            FacetRecord {
                trace_id,
                facet: "task".into(),
                text: data.texts[i].clone(),
                excluded: false,
                time_ms: time,
                version: "v1".into(),
                preprocessor: "default".into(),
                facet_model: "builtin".into(),
                embedding_model: model.clone(),
                service_name: Some(if i % 3 == 0 { "billing" } else { "support" }.into()),
                root_span_name: "agent".into(),
                user_id: None,
                session_id: None,
                embedding: data.vectors[i * 32..(i + 1) * 32].to_vec(),
            }
        })
        .collect();
    facets::put(db, &records).unwrap();
}

/// Records every backfill; fails the first `fail_first` calls.
#[derive(Default)]
struct RecordingBackfill {
    versions: Mutex<Vec<u64>>,
    fail_first: AtomicUsize,
}

impl Backfill for RecordingBackfill {
    fn backfill(&self, map: &TopicMap) -> Result<u64, String> {
        self.versions.lock().unwrap().push(map.version);
        if self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err("classifier not ready".into());
        }
        Ok(3)
    }
}

fn state_of(states: &[(String, FacetState)], facet: &str) -> FacetState {
    states.iter().find(|(f, _)| f == facet).unwrap().1.clone()
}

fn start(
    config: &Config,
    db: &Arc<redb::Database>,
    backfill: Arc<dyn Backfill>,
) -> (TopicsHandle, PublishedMaps, Arc<Metrics>) {
    let published = PublishedMaps::default();
    let metrics = Arc::new(Metrics::new());
    let handle = automation::start(
        config,
        db.clone(),
        metrics.clone(),
        published.clone(),
        backfill,
    )
    .unwrap();
    (handle, published, metrics)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facets_become_a_published_map_then_backfill_then_idle_and_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let db = open_db(&config);
    let backfill = Arc::new(RecordingBackfill {
        fail_first: AtomicUsize::new(1),
        ..Default::default()
    });
    let (handle, published, metrics) = start(&config, &db, backfill.clone());

    let states = handle.check_now().await.unwrap();
    assert_eq!(state_of(&states, "task").phase, Phase::WaitingForFacets);
    store_records(&db, &config, 60);
    let states = handle.check_now().await.unwrap();
    assert_eq!(state_of(&states, "task").phase, Phase::WaitingForFacets);
    assert!(published.get("task").is_none());

    store_records(&db, &config, N);
    let states = handle.check_now().await.unwrap();
    let task = state_of(&states, "task");
    // The map is published; the first backfill failed, so the facet stays in `backfill`.
    assert_eq!((task.phase, task.map_version), (Phase::Backfill, Some(1)));
    assert!(task.last_error.unwrap().contains("classifier not ready"));
    let map = published.get("task").expect("map published");
    assert_eq!(map.version, 1);
    assert!(map.topics.len() >= 4, "{} topics", map.topics.len());
    assert!(map.topics.iter().all(|t| t.named), "builtin names count");
    assert!(map.topics.iter().all(|t| t.centroid.len() == 32));
    assert_eq!(state_of(&states, "issues").phase, Phase::WaitingForFacets);
    let text = metrics.encode();
    assert!(
        text.contains("tracetopics_topic_map_version{facet=\"task\"} 1"),
        "{text}"
    );
    assert!(text.contains("tracetopics_topic_backfill_failures_total{facet=\"task\"} 1"));

    let states = handle.check_now().await.unwrap();
    assert_eq!(state_of(&states, "task").phase, Phase::Idle);
    assert_eq!(*backfill.versions.lock().unwrap(), vec![1, 1]);
    assert_eq!(state_of(&states, "task").last_error, None);
    // Idle and not due: a check does nothing.
    handle.check_now().await.unwrap();
    assert_eq!(published.get("task").unwrap().version, 1);

    // On demand: the same data gives the same partition, every id kept.
    let second = handle.regenerate("task").await.unwrap();
    assert_eq!(second.version, 2);
    let changes = second.changes.as_ref().unwrap();
    assert_eq!(changes.stability, Some(1.0));
    assert_eq!(changes.kept.len(), map.topics.len());
    assert!(changes.new.is_empty() && changes.retired.is_empty());
    assert_eq!(handle.state("task").phase, Phase::Idle);
    let err = handle.regenerate("nope").await.unwrap_err();
    assert!(err.contains("unknown facet `nope`"), "{err}");
    handle.shutdown().await;

    // A restart publishes the stored map before any check.
    let (handle, published, _) = start(&config, &db, backfill.clone());
    assert_eq!(published.get("task").unwrap().version, 2);
    handle.shutdown().await;

    // A crash mid-generation (state left `recomputing`) recomputes on the next start.
    topic_store::put_state(
        &db,
        "task",
        &FacetState {
            phase: Phase::RecomputingTopicMaps,
            map_version: Some(2),
            due_ms: u64::MAX,
            ..Default::default()
        },
    )
    .unwrap();
    let (handle, published, _) = start(&config, &db, backfill.clone());
    let states = handle.check_now().await.unwrap();
    assert_eq!(state_of(&states, "task").phase, Phase::Idle);
    assert_eq!(published.get("task").unwrap().version, 3);
    assert_eq!(topic_store::versions(&db, "task").unwrap(), vec![1, 2, 3]);

    // Once `regenerate_every` has passed (the due time is in the past), a check rebuilds.
    let mut state = handle.state("task");
    state.due_ms = 1;
    topic_store::put_state(&db, "task", &state).unwrap();
    let states = handle.check_now().await.unwrap();
    assert_eq!(state_of(&states, "task").phase, Phase::Idle);
    assert_eq!(published.get("task").unwrap().version, 4);
    assert!(state_of(&states, "task").due_ms > now_ms() + 23 * 3600 * 1000);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_map_is_rebuilt_once_the_summaries_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let db = open_db(&config);
    let (handle, published, _) = start(&config, &db, Arc::new(RecordingBackfill::default()));
    let total = 1300;
    store_records_of(&db, &config, total, 0..300);
    let task = state_of(&handle.check_now().await.unwrap(), "task");
    assert_eq!((task.phase, task.map_version), (Phase::Idle, Some(1)));
    assert_eq!(
        (task.map_records, task.rebuild_at_records),
        (Some(300), Some(600))
    );
    let shown = tracetopics::topics::cli::next_rebuild_text(&task, now_ms());
    assert!(
        shown.contains("once 600 summaries are stored (300 when this map was built)"),
        "{shown}"
    );
    assert!(
        shown.contains("(in 23h 59m") || shown.contains("(in 1day"),
        "{shown}"
    );

    // Grown, but not doubled: the map stays, long before `regenerate_every`.
    store_records_of(&db, &config, total, 300..599);
    handle.check_now().await.unwrap();
    assert_eq!(published.get("task").unwrap().version, 1);
    // Doubled: rebuilt now, ids matched to version 1, the next doubling awaited.
    store_records_of(&db, &config, total, 599..600);
    let task = state_of(&handle.check_now().await.unwrap(), "task");
    let map = published.get("task").unwrap();
    assert_eq!((map.version, task.map_version), (2, Some(2)));
    assert_eq!(map.sample, 600);
    assert_eq!(map.changes.as_ref().unwrap().previous_version, 1);
    assert_eq!(
        (task.map_records, task.rebuild_at_records),
        (Some(600), Some(1200))
    );
    assert!(
        task.due_ms > now_ms() + 23 * 3600 * 1000,
        "the daily schedule restarts"
    );
    handle.shutdown().await;

    // Up to the sample size: a map built from a full sample waits for the schedule.
    assert_eq!(automation::growth_rebuild_at(300, 1000), Some(600));
    assert_eq!(automation::growth_rebuild_at(700, 1000), Some(1000));
    assert_eq!(automation::growth_rebuild_at(999, 1000), Some(1000));
    assert_eq!(automation::growth_rebuild_at(1000, 1000), None);
    assert_eq!(automation::growth_rebuild_at(5000, 1000), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_distinct_summaries_wait_without_counting_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let db = open_db(&config);
    // 150 traces (enough) but every summary the same text (too few distinct).
    let model = tracetopics::embed::Embedder::new(&config.models.embeddings)
        .unwrap()
        .model_id();
    let records: Vec<FacetRecord> = (0..150u8)
        .map(|i| FacetRecord {
            trace_id: [i; 16],
            facet: "task".into(),
            text: "Get a refund".into(),
            excluded: false,
            time_ms: now_ms(),
            version: "v1".into(),
            preprocessor: "default".into(),
            facet_model: "builtin".into(),
            embedding_model: model.clone(),
            service_name: None,
            root_span_name: "agent".into(),
            user_id: None,
            session_id: None,
            embedding: vec![0.6, 0.8],
        })
        .collect();
    facets::put(&db, &records).unwrap();
    let (handle, published, metrics) =
        start(&config, &db, Arc::new(tracetopics::topics::NoBackfill));
    let task = state_of(&handle.check_now().await.unwrap(), "task");
    assert_eq!(task.phase, Phase::WaitingForFacets);
    assert!(task.last_error.unwrap().contains("at least 100 needed"));
    assert!(task.due_ms > now_ms(), "not retried at every check");
    assert!(published.get("task").is_none());
    assert!(
        !metrics
            .encode()
            .contains("tracetopics_topic_regeneration_failures_total{")
    );
    handle.shutdown().await;
}

/// Names every cluster the prompt lists: `{"<id>": {"name": "Theme <id>", ...}}`.
fn name_every_cluster(_: &str, body: &Value) -> Value {
    let user = body["messages"][1]["content"].as_str().unwrap_or_default();
    let mut answer = serde_json::Map::new();
    for part in user.split("## Cluster id ").skip(1) {
        let id: String = part.chars().take_while(|c| c.is_ascii_digit()).collect();
        answer.insert(
            id.clone(),
            json!({"name": format!("Theme {id}"), "description": format!("Traces of theme {id}.")}),
        );
    }
    chat_reply(&Value::Object(answer).to_string(), 100)
}

fn naming_yaml(server: &ModelServer) -> String {
    format!(
        "  naming:\n    provider: openai\n    base_url: {}\n    model: namer\n    max_retries: 0\n    timeout: 300ms\n",
        server.base_url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_names_every_cluster_and_failures_keep_the_clusters() {
    let server = ModelServer::start(name_every_cluster).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &naming_yaml(&server));
    let db = open_db(&config);
    store_records(&db, &config, N);

    // The model answers garbage: the map is still built and published, with keyword names.
    server.script([Scripted::Body(
        chat_reply("Sorry, I cannot help with that.", 5).to_string(),
    )]);
    let (handle, published, metrics) =
        start(&config, &db, Arc::new(tracetopics::topics::NoBackfill));
    let first = handle.regenerate("task").await.unwrap();
    assert!(first.topics.len() >= 4);
    assert!(first.topics.iter().all(|t| !t.named), "keyword fallback");
    assert!(first.topics.iter().all(|t| !t.name.is_empty()));
    assert!(handle.state("task").naming_retry_ms.is_some());
    assert!(
        metrics
            .encode()
            .contains("tracetopics_topic_naming_failures_total{facet=\"task\"} 1")
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "one call for every cluster");
    let body = &requests[0].2;
    assert_eq!(body["response_format"]["type"], "json_schema");
    let prompt = body["messages"][1]["content"].as_str().unwrap();
    for t in &first.topics {
        assert!(prompt.contains(&format!("## Cluster id {}\n", t.id)));
    }
    assert!(prompt.contains("contrast"));

    // The retry names them, stores the names over the same version and publishes them.
    let state = handle.retry_names("task").await.unwrap();
    assert_eq!(state.naming_retry_ms, None);
    let named = published.get("task").unwrap();
    assert_eq!(named.version, 1);
    for t in &named.topics {
        assert!(t.named);
        assert_eq!(t.name, format!("Theme {}", t.id));
        assert_eq!(t.description, format!("Traces of theme {}.", t.id));
    }
    let stored = topic_store::latest(&db, "task").unwrap().unwrap();
    assert_eq!(stored.topics, named.topics);

    // A timeout on the next regeneration: kept clusters keep their names.
    server.script([Scripted::Delay(Duration::from_secs(3))]);
    let second = handle.regenerate("task").await.unwrap();
    assert_eq!(second.version, 2);
    for t in &second.topics {
        assert!(t.named, "{t:?}");
        assert_eq!(t.name, format!("Theme {}", t.id));
    }
    assert_eq!(handle.state("task").naming_retry_ms, None);
    handle.shutdown().await;
}

async fn http(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let client = tracetopics::config::tls::http_client();
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_endpoint_shows_regenerates_and_clusters_ad_hoc() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let db = open_db(&config);
    store_records(&db, &config, N);
    let (handle, _, _) = start(&config, &db, Arc::new(tracetopics::topics::NoBackfill));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = handle.serve_admin(listener, &config);
    let base = format!("http://{addr}");
    use reqwest::Method;

    let (status, all) = http(Method::GET, format!("{base}/topics"), None).await;
    assert_eq!(status, 200);
    let facets: Vec<&str> = all["facets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["facet"].as_str().unwrap())
        .collect();
    assert_eq!(facets, ["task", "sentiment", "issues"]);
    assert_eq!(all["facets"][0]["map"], Value::Null);

    let (status, map) = http(Method::POST, format!("{base}/topics/task/regenerate"), None).await;
    assert_eq!(status, 200, "{map}");
    assert_eq!(map["version"], 1);
    let (status, task) = http(Method::GET, format!("{base}/topics/task"), None).await;
    assert_eq!(status, 200);
    assert_eq!(task["map"]["version"], 1);
    assert_eq!(task["state"]["phase"], "idle");
    assert!(task["map"]["topics"][0].get("centroid").is_none());
    let (status, _) = http(Method::GET, format!("{base}/topics/nope"), None).await;
    assert_eq!(status, 404);
    let (status, failed) = http(
        Method::POST,
        format!("{base}/topics/issues/regenerate"),
        None,
    )
    .await;
    assert_eq!(status, 422);
    assert!(failed["error"].as_str().unwrap().contains("issues"));

    // Ad hoc: k-means with k = 3 on one service's traces; nothing is stored.
    let request =
        json!({"facet": "task", "since": "1h", "filters": {"service_name": "billing"}, "k": 3});
    let (status, report) = http(Method::POST, format!("{base}/cluster"), Some(request)).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["matched"], N / 3);
    let topics = report["topics"].as_array().unwrap();
    assert_eq!(topics.len(), 3);
    let shares: Vec<f64> = topics
        .iter()
        .map(|t| t["share"].as_f64().unwrap())
        .collect();
    assert!(shares.windows(2).all(|w| w[0] >= w[1]), "{shares:?}");
    assert!(
        topics
            .iter()
            .all(|t| t["samples"].as_array().unwrap().len() == 3)
    );
    assert_eq!(topic_store::versions(&db, "task").unwrap(), vec![1]);
    let bad = json!({"facet": "task", "filters": {"colour": "red"}});
    let (status, error) = http(Method::POST, format!("{base}/cluster"), Some(bad)).await;
    assert_eq!(status, 400);
    assert!(error["error"].as_str().unwrap().contains("colour"));
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_demand_rebuild_is_not_blocked_by_a_failing_backfill() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let db = open_db(&config);
    store_records(&db, &config, N);
    let backfill = Arc::new(RecordingBackfill {
        fail_first: AtomicUsize::new(usize::MAX),
        ..Default::default()
    });
    let (handle, published, _) = start(&config, &db, backfill.clone());
    let task = state_of(&handle.check_now().await.unwrap(), "task");
    assert_eq!(task.phase, Phase::Backfill);
    // Still failing: the check retries the backfill and stays.
    let task = state_of(&handle.check_now().await.unwrap(), "task");
    assert_eq!(task.phase, Phase::Backfill);
    let map = handle.regenerate("task").await.unwrap();
    assert_eq!(map.version, 2);
    assert_eq!(published.get("task").unwrap().version, 2);
    // Each map got its backfill attempt (1, 1 again, then 2).
    assert_eq!(*backfill.versions.lock().unwrap(), vec![1, 1, 2]);
    assert_eq!(handle.state("task").phase, Phase::Backfill);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summaries_without_current_embeddings_are_a_counted_failure_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let db = open_db(&config);
    // Embedded by a model that is no longer configured.
    let records: Vec<FacetRecord> = (0..150u8)
        .map(|i| FacetRecord {
            trace_id: [i; 16],
            facet: "task".into(),
            text: format!("summary {i}"),
            excluded: false,
            time_ms: now_ms(),
            version: "v1".into(),
            preprocessor: "default".into(),
            facet_model: "builtin".into(),
            embedding_model: "openai:retired-model".into(),
            service_name: None,
            root_span_name: "agent".into(),
            user_id: None,
            session_id: None,
            embedding: vec![0.6, 0.8],
        })
        .collect();
    facets::put(&db, &records).unwrap();
    let (handle, published, metrics) =
        start(&config, &db, Arc::new(tracetopics::topics::NoBackfill));
    let task = state_of(&handle.check_now().await.unwrap(), "task");
    assert_eq!(task.phase, Phase::WaitingForFacets);
    let error = task.last_error.unwrap();
    assert!(
        error.contains("none with an embedding of the current model"),
        "{error}"
    );
    assert!(published.get("task").is_none());
    assert!(
        metrics
            .encode()
            .contains("tracetopics_topic_regeneration_failures_total{facet=\"task\"} 1")
    );
    handle.shutdown().await;
}

/// Sentiment answers: 70 NEGATIVE and 30 NEUTRAL with no reason (no vector), 20 POSITIVE all
/// giving the same reason — far too few distinct reasons for a map of reasons.
fn store_label_records(db: &redb::Database, config: &Config) {
    let model = tracetopics::embed::Embedder::new(&config.models.embeddings)
        .unwrap()
        .model_id();
    let time = now_ms() - 60_000;
    let records: Vec<FacetRecord> = (0..120usize)
        .map(|i| {
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            let (text, embedding) = match i {
                0..70 => ("NEGATIVE".to_string(), Vec::new()),
                70..100 => ("NEUTRAL".to_string(), Vec::new()),
                _ => (
                    "POSITIVE: the refund arrived".to_string(),
                    vec![0.25f32; 32],
                ),
            };
            FacetRecord {
                trace_id,
                facet: "sentiment".into(),
                text,
                excluded: false,
                time_ms: time,
                version: "v1".into(),
                preprocessor: "default".into(),
                facet_model: "builtin".into(),
                embedding_model: model.clone(),
                service_name: None,
                root_span_name: "agent".into(),
                user_id: None,
                session_id: None,
                embedding,
            }
        })
        .collect();
    facets::put(db, &records).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_labelled_facet_is_labelled_not_waiting_and_shows_its_label_counts() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let db = open_db(&config);
    let (handle, published, _) = start(&config, &db, Arc::new(tracetopics::topics::NoBackfill));
    assert_eq!(handle.state("sentiment").phase, Phase::Labelled);
    assert_eq!(handle.state("issues").phase, Phase::WaitingForFacets);

    store_label_records(&db, &config);
    let states = handle.check_now().await.unwrap();
    let sentiment = state_of(&states, "sentiment");
    // Enough answers (120 ≥ min_traces) but one distinct reason: no map, still `labelled`, and
    // the reason says what a map of reasons waits for.
    assert_eq!(
        (sentiment.phase, sentiment.map_version),
        (Phase::Labelled, None)
    );
    let why = sentiment.last_error.unwrap();
    assert!(why.contains("1 distinct reasons"), "{why}");
    assert!(published.get("sentiment").is_none());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", handle.serve_admin(listener, &config));
    let (status, view) = http(
        reqwest::Method::GET,
        format!("{base}/topics/sentiment"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(view["state"]["phase"], "labelled");
    assert_eq!(
        view["labels"],
        json!([
            {"label": "POSITIVE", "count": 20},
            {"label": "NEUTRAL", "count": 30},
            {"label": "NEGATIVE", "count": 70},
            {"label": "MIXED", "count": 0},
        ])
    );
    let (_, task) = http(reqwest::Method::GET, format!("{base}/topics/task"), None).await;
    assert!(task.get("labels").is_none(), "{task}");
    handle.shutdown().await;
}

#[test]
fn topics_show_without_a_sidecar_prints_a_labelled_facets_label_counts() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    {
        let db = open_db(&config);
        store_label_records(&db, &config);
    }
    let out = tracetopics::topics::cli::show(&config, Some("sentiment")).unwrap();
    assert!(
        out.contains("facet `sentiment`: labelled; no map of its reasons yet"),
        "{out}"
    );
    assert!(
        out.contains(
            "labels (its topics; 120 answers in the window): POSITIVE 20, NEUTRAL 30, NEGATIVE 70, MIXED 0"
        ),
        "{out}"
    );
    assert!(out.contains("state: labelled"), "{out}");
}
