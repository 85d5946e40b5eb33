//! The loop the product exists for, over real OTLP and real HTTP: traces in → facets from the
//! OpenAI-compatible test server → an automated topic map → new traces classified → spans at the
//! sink carrying their topic; off-topic traces get `no_match`, the backfill classifies what was
//! stored before the map, and a topic keeps its id across a regeneration.

mod common;

use common::openai::{ModelServer, Scripted, chat_reply};
use common::*;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::{Value, json};
use std::time::Duration;
use tracetopics::Sidecar;
use tracetopics::config::types::HumanDuration;
use tracetopics::model::ModelConfig;
use tracetopics::store::classifications;

const WAIT: Duration = Duration::from_secs(60);
const DIM: usize = 16;

/// Three intents, each asked in several ways; the "model" recognises them by keyword.
const INTENTS: [(&str, [&str; 3]); 3] = [
    (
        "refund",
        [
            "I want a refund for order",
            "Please refund my purchase, order",
            "Can I get my money back (refund) for order",
        ],
    ),
    (
        "password",
        [
            "I forgot my password for account",
            "Reset my password please, account",
            "My password does not work on account",
        ],
    ),
    (
        "shipping",
        [
            "Where is my shipping for parcel",
            "The shipping of parcel",
            "Track the shipping status of parcel",
        ],
    ),
];

fn intent_of(text: &str) -> Option<usize> {
    INTENTS.iter().position(|(key, _)| text.contains(key))
}

/// The test server's answers: a task summary naming the intent, and embeddings that put each
/// intent on its own axis (with a little per-text spread) and anything else far away.
fn answers(_: &str, body: &Value) -> Value {
    if let Some(inputs) = body["input"].as_array() {
        let data: Vec<Value> = inputs
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let text = text.as_str().unwrap_or("");
                let mut v = vec![0.0f32; DIM];
                let axis = intent_of(text).unwrap_or(DIM - 1);
                v[axis] = 1.0;
                // Deterministic spread so summaries are not identical points.
                let h = text
                    .bytes()
                    .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
                for (k, x) in v[3..DIM - 1].iter_mut().enumerate() {
                    *x += ((h >> (k * 2)) & 3) as f32 * 0.05;
                }
                json!({"object": "embedding", "index": i, "embedding": v})
            })
            .collect();
        return json!({"object": "list", "data": data, "model": "e", "usage": {"prompt_tokens": 1, "total_tokens": 1}});
    }
    let prompt = body["messages"].to_string();
    let number: String = prompt
        .split("ref#")
        .nth(1)
        .map(|rest| rest.chars().take_while(|c| c.is_ascii_digit()).collect())
        .unwrap_or_default();
    // Only the user's words: the facet instructions around them mention refunds too.
    let user = prompt
        .split("[user]")
        .nth(1)
        .and_then(|rest| rest.split("ref#").next())
        .unwrap_or("");
    let task = match intent_of(user) {
        Some(i) => format!("The user asks about a {} for case {number}", INTENTS[i].0),
        None => format!("The user wants a poem about the sea number {number}"),
    };
    chat_reply(
        &json!({"task": task, "sentiment": "NEUTRAL: calm", "issues": "NONE"}).to_string(),
        50,
    )
}

fn remote(server: &ModelServer) -> ModelConfig {
    server.model_config()
}

fn trace(n: u32, text: &str) -> Vec<Span> {
    let mut root = rich_span(n, 0);
    root.events.clear();
    root.attributes = vec![
        string_attr("gen_ai.operation.name", "chat"),
        string_attr(
            "gen_ai.input.messages",
            &json!([{"role": "user", "content": text}]).to_string(),
        ),
    ];
    vec![root, rich_span(n, 1)]
}

fn on_topic(n: u32) -> Vec<Span> {
    let (_, phrasings) = INTENTS[n as usize % 3];
    trace(n, &format!("{} ref#{n}", phrasings[(n as usize / 3) % 3]))
}

fn attribute(span: &Span, key: &str) -> Option<Any> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.clone())
}

fn root_of(sink: &Sink, n: u32) -> Span {
    sink.spans()
        .into_iter()
        .map(|(_, _, s)| s)
        .find(|s| s.trace_id == trace_id(n) && s.parent_span_id.is_empty())
        .expect("root span exported")
}

async fn wait_for_metric(addr: std::net::SocketAddr, series: &str, at_least: f64) {
    let reached = async {
        loop {
            if metric(&metrics_text(addr).await, series) >= at_least {
                return;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, reached)
        .await
        .unwrap_or_else(|_| panic!("{series} never reached {at_least}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_get_topics_from_an_automated_map_and_keep_them_across_regeneration() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour::default()).await;
    let server = ModelServer::start(answers).await;
    let mut config = config(dir.path(), sink.addr);
    config.models.facets = remote(&server);
    config.models.embeddings = remote(&server);
    config.facets.builtin = vec!["task".into()];
    config.facets.retry_backoff = HumanDuration::from_secs(3600);
    config.topics.min_traces = 90;
    config.topics.min_unique_summaries = 60;
    config.classify.max_enrichment_delay = HumanDuration::from_secs(30);
    config.classify.emit_reclassified = true;
    let storage = config.storage.clone();
    let sidecar = Sidecar::start(config).await.unwrap();
    let topics = sidecar.topics().expect("topic automation runs").clone();
    let mut client = grpc_client(sidecar.addresses.grpc.unwrap()).await;

    // Before any map: spans still arrive, with the summary but no topic.
    for n in 0..90 {
        client
            .export(request("shop", "s", on_topic(n)))
            .await
            .unwrap();
    }
    assert_eq!(sink.wait_for_spans(180, WAIT).await, 180);
    let early = root_of(&sink, 0);
    assert!(attribute(&early, "tracetopics.facet.task").is_some());
    assert!(attribute(&early, "tracetopics.topic.task.label").is_none());
    wait_for_metric(
        sidecar.addresses.metrics,
        "tracetopics_facet_records_total",
        90.0,
    )
    .await;

    // The automation's check builds, publishes and backfills the first map.
    let states = topics.check_now().await.unwrap();
    let map = topics
        .published()
        .get("task")
        .unwrap_or_else(|| panic!("a map after enough traces: {states:?}"));
    assert_eq!(map.version, 1);
    assert_eq!(
        map.topics.len(),
        3,
        "{:?}",
        map.topics.iter().map(|t| &t.name).collect::<Vec<_>>()
    );

    // New traces: one per intent, then an off-topic one.
    for n in 100..103 {
        client
            .export(request("shop", "s", on_topic(n)))
            .await
            .unwrap();
    }
    client
        .export(request(
            "shop",
            "s",
            trace(103, "Write me a poem about the sea ref#103"),
        ))
        .await
        .unwrap();
    assert_eq!(sink.wait_for_spans(188, WAIT).await, 188);
    let mut first_ids = Vec::new();
    for n in 100..103 {
        let root = root_of(&sink, n);
        let Some(Any::IntValue(id)) = attribute(&root, "tracetopics.topic.task.id") else {
            panic!("trace {n} has a topic id: {:?}", root.attributes)
        };
        assert!(matches!(
            attribute(&root, "tracetopics.topic.task.map_version"),
            Some(Any::IntValue(1))
        ));
        assert!(
            matches!(attribute(&root, "tracetopics.topic.task.distance"), Some(Any::DoubleValue(d)) if d < 0.2)
        );
        first_ids.push(id);
    }
    first_ids.sort();
    first_ids.dedup();
    assert_eq!(first_ids.len(), 3, "three intents, three topics");
    let ood = root_of(&sink, 103);
    assert!(
        matches!(attribute(&ood, "tracetopics.topic.task.label"), Some(Any::StringValue(l)) if l == "no_match"),
        "{:?}",
        ood.attributes
    );
    assert!(attribute(&ood, "tracetopics.topic.task.id").is_none());

    // A regeneration keeps the ids: the same intents land on the same topic ids.
    let second = topics.regenerate("task").await.unwrap();
    assert_eq!(second.version, 2);
    let kept = second.changes.as_ref().expect("matched to version 1");
    assert_eq!(
        (kept.kept.len(), kept.new.len(), kept.stability),
        (3, 0, Some(1.0))
    );
    // 99 apart: the same intent (n mod 3), asked in other words.
    for n in 199..202 {
        client
            .export(request("shop", "s", on_topic(n)))
            .await
            .unwrap();
    }
    assert_eq!(sink.wait_for_spans(194, WAIT).await, 194);
    for n in 199..202 {
        let before = attribute(&root_of(&sink, n - 99), "tracetopics.topic.task.id");
        let after = root_of(&sink, n);
        assert_eq!(
            attribute(&after, "tracetopics.topic.task.id"),
            before,
            "same intent, same id"
        );
        assert!(matches!(
            attribute(&after, "tracetopics.topic.task.map_version"),
            Some(Any::IntValue(2))
        ));
    }

    // The model goes down: spans still reach the sink, just without topics.
    server.script((0..8).map(|_| Scripted::Status(503, None)));
    client
        .export(request("shop", "s", on_topic(300)))
        .await
        .unwrap();
    assert_eq!(sink.wait_for_spans(196, WAIT).await, 196);
    assert!(attribute(&root_of(&sink, 300), "tracetopics.topic.task.label").is_none());

    let text = metrics_text(sidecar.addresses.metrics).await;
    assert!(
        text.contains(
            "tracetopics_classified_traces_total{facet=\"task\",topic_id=\"\",topic=\"no_match\"} 1"
        ),
        "{text}"
    );
    sidecar.shutdown().await;
    drop(topics);
    assert_eq!(
        sink.log_records().len(),
        90,
        "the regeneration kept every topic id: no trace changed topic, nothing more to tell"
    );

    // The backfill classified the traces stored before the first map, against the newest map.
    let (db, _) = tracetopics::store::open(&storage).unwrap();
    for n in [0u32, 1, 2] {
        let id: [u8; 16] = trace_id(n).try_into().unwrap();
        let stored = classifications::of_trace(&db, &id).unwrap();
        assert_eq!(stored.len(), 1, "trace {n} classified by the backfill");
        assert!(stored[0].topic_id.is_some());
        assert_eq!(stored[0].map_version, 2);
    }
}
