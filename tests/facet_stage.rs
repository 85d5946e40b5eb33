//! The facet stage in the running sidecar: OTLP in → preprocess → one facet call per trace →
//! embeddings → records in redb, with spans exported regardless of the model's health.

mod common;

use common::openai::{ModelServer, Scripted, ServerKind, chat_reply, embedding_reply};
use common::*;
use serde_json::Value;
use std::time::Duration;
use tracetopics::Sidecar;
use tracetopics::config::types::HumanDuration;
use tracetopics::model::ModelConfig;
use tracetopics::store::facets;

const WAIT: Duration = Duration::from_secs(20);

fn model_server_answers(_: &str, body: &Value) -> Value {
    if body.get("input").is_some() {
        return embedding_reply(body, 16);
    }
    chat_reply(
        r#"{"task": "Find out where a refund is", "sentiment": "NEGATIVE: The user waited two weeks.", "issues": "NONE"}"#,
        321,
    )
}

fn remote(server: &ModelServer) -> ModelConfig {
    server.model_config()
}

fn genai_trace(trace: u32) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
    let mut span = rich_span(trace, 0);
    span.events.clear();
    span.status = None;
    span.attributes = vec![
        string_attr("gen_ai.operation.name", "chat"),
        string_attr(
            "gen_ai.input.messages",
            r#"[{"role":"user","content":"Where is my refund? I have waited two weeks."}]"#,
        ),
    ];
    vec![span]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_are_faceted_embedded_and_stored() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour::default()).await;
    let server = ModelServer::start(model_server_answers).await;
    let mut config = config(dir.path(), sink.addr);
    config.models.facets = remote(&server);
    config.models.embeddings = remote(&server);
    let storage = config.storage.clone();
    let sidecar = Sidecar::start(config).await.unwrap();
    let mut client = grpc_client(sidecar.addresses.grpc.unwrap()).await;
    client
        .export(request("shop", "s", genai_trace(1)))
        .await
        .unwrap();
    assert_eq!(sink.wait_for_spans(1, WAIT).await, 1);
    // One chat call, then one embeddings call for the two non-excluded answers.
    assert_eq!(server.wait_for_requests(2, WAIT).await, 2);
    let text = metrics_text(sidecar.addresses.metrics).await;
    sidecar.shutdown().await;
    let requests = server.requests();
    assert_eq!(requests[0].0, "/v1/chat/completions");
    assert_eq!(requests[1].0, "/v1/embeddings");
    // A labelled facet's map clusters its reason only: the label is already its topic.
    let mut inputs: Vec<&str> = requests[1].2["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    inputs.sort_unstable();
    assert_eq!(
        inputs,
        vec!["Find out where a refund is", "The user waited two weeks."]
    );
    assert_eq!(
        metric(&text, "tracetopics_facet_prompt_tokens_total"),
        321.0
    );

    let (db, _) = tracetopics::store::open(&storage).unwrap();
    let mut records = facets::of_trace(&db, &trace_id(1).try_into().unwrap()).unwrap();
    records.sort_by(|a, b| a.facet.cmp(&b.facet));
    let summary: Vec<(&str, &str, bool, usize)> = records
        .iter()
        .map(|r| {
            (
                r.facet.as_str(),
                r.text.as_str(),
                r.excluded,
                r.embedding.len(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("issues", "NONE", true, 0),
            (
                "sentiment",
                "NEGATIVE: The user waited two weeks.",
                false,
                16
            ),
            ("task", "Find out where a refund is", false, 16),
        ]
    );
    assert_eq!(records[2].service_name.as_deref(), Some("shop"));
    assert_eq!(records[2].embedding_model, "openai:m");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_outage_delays_facets_but_never_spans() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour::default()).await;
    let server = ModelServer::start(model_server_answers).await;
    // Down for a while: every request fails until the script runs out.
    server.script((0..3).map(|_| Scripted::Status(503, None)));
    let mut config = config(dir.path(), sink.addr);
    config.models.facets = remote(&server);
    config.models.embeddings = remote(&server);
    config.facets.retry_backoff = HumanDuration::from_millis(50);
    let storage = config.storage.clone();
    let sidecar = Sidecar::start(config).await.unwrap();
    let mut client = grpc_client(sidecar.addresses.grpc.unwrap()).await;
    client
        .export(request("shop", "s", genai_trace(2)))
        .await
        .unwrap();
    assert_eq!(
        sink.wait_for_spans(1, WAIT).await,
        1,
        "spans do not wait for the model"
    );
    // 1 joint call + 2 single-facet retries fail (3 × 503; issues needs no call, the trace
    // shows no trouble), the trace is parked, retried, and then answered: one more chat call
    // and the embeddings call.
    assert_eq!(server.wait_for_requests(5, WAIT).await, 5);
    sidecar.shutdown().await;
    let (db, _) = tracetopics::store::open(&storage).unwrap();
    let records = facets::of_trace(&db, &trace_id(2).try_into().unwrap()).unwrap();
    assert_eq!(records.len(), 3, "facets completed after recovery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builtin_models_work_offline() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour::default()).await;
    let config = config(dir.path(), sink.addr);
    let storage = config.storage.clone();
    let sidecar = Sidecar::start(config).await.unwrap();
    let mut client = grpc_client(sidecar.addresses.grpc.unwrap()).await;
    client
        .export(request("shop", "s", genai_trace(3)))
        .await
        .unwrap();
    assert_eq!(sink.wait_for_spans(1, WAIT).await, 1);
    sidecar.shutdown().await;
    let (db, _) = tracetopics::store::open(&storage).unwrap();
    let records = facets::of_trace(&db, &trace_id(3).try_into().unwrap()).unwrap();
    let task = records
        .iter()
        .find(|r| r.facet == "task")
        .expect("task facet");
    assert_eq!(task.text, "Where is my refund? I have waited two weeks.");
    assert_eq!(task.embedding.len(), 384);
    assert!(task.facet_model.starts_with("builtin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_parked_by_an_outage_are_faceted_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour::default()).await;
    let down = ModelServer::start(|_: &str, _: &Value| serde_json::json!({"garbage": true})).await;
    let mut config = config(dir.path(), sink.addr);
    config.models.facets = remote(&down);
    config.models.embeddings = remote(&down);
    config.facets.retry_backoff = HumanDuration::from_secs(3600);
    let storage = config.storage.clone();
    let sidecar = Sidecar::start(config.clone()).await.unwrap();
    let mut client = grpc_client(sidecar.addresses.grpc.unwrap()).await;
    client
        .export(request("shop", "s", genai_trace(7)))
        .await
        .unwrap();
    assert_eq!(sink.wait_for_spans(1, WAIT).await, 1);
    // Parked (gauge at 1) before the restart; the retry would be an hour away.
    let parked = async {
        loop {
            let text = metrics_text(sidecar.addresses.metrics).await;
            if metric(&text, "tracetopics_facet_retry_queue") == 1.0 {
                break;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, parked)
        .await
        .expect("trace parked");
    sidecar.shutdown().await;

    let up = ModelServer::start(model_server_answers).await;
    config.models.facets = remote(&up);
    config.models.embeddings = remote(&up);
    let sidecar = Sidecar::start(config).await.unwrap();
    assert_eq!(up.wait_for_requests(2, WAIT).await, 2, "retried at start");
    sidecar.shutdown().await;
    let (db, _) = tracetopics::store::open(&storage).unwrap();
    let records = facets::of_trace(&db, &trace_id(7).try_into().unwrap()).unwrap();
    assert_eq!(records.len(), 3);
    assert!(
        tracetopics::store::facet_retry::all(&db)
            .unwrap()
            .is_empty(),
        "done, so no longer parked"
    );
}

/// With the default config, a llama-cpp-python server (HTTP 500 for `json_schema`) facets every
/// trace: the client steps down to `json_object` once, remembers it, and the probes neither park
/// traces nor open the circuit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_config_facets_everything_on_llama_cpp_python() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour::default()).await;
    let server = ModelServer::start_kind(ServerKind::LlamaCppPython, model_server_answers).await;
    let mut config = config(dir.path(), sink.addr);
    let defaults = ModelConfig {
        provider: tracetopics::model::Provider::Openai,
        base_url: server.base_url(),
        model: "qwen".into(),
        ..ModelConfig::default()
    };
    config.models.facets = defaults.clone();
    config.models.embeddings = defaults;
    let storage = config.storage.clone();
    let sidecar = Sidecar::start(config).await.unwrap();
    let mut client = grpc_client(sidecar.addresses.grpc.unwrap()).await;
    const TRACES: u32 = 6;
    for trace in 0..TRACES {
        client
            .export(request("shop", "s", varied_trace(100 + trace)))
            .await
            .unwrap();
    }
    assert_eq!(
        sink.wait_for_spans(TRACES as usize, WAIT).await,
        TRACES as usize
    );
    let done = async {
        loop {
            let text = metrics_text(sidecar.addresses.metrics).await;
            if metric(&text, "tracetopics_facet_traces_total{reason=\"ok\"}") == f64::from(TRACES) {
                break text;
            }
            tokio::task::yield_now().await;
        }
    };
    let text = tokio::time::timeout(WAIT, done).await.expect("all faceted");
    sidecar.shutdown().await;
    assert_eq!(metric(&text, "tracetopics_facet_retry_queue"), 0.0);
    assert_eq!(
        metric(
            &text,
            "tracetopics_model_structured_output{role=\"facets\",mode=\"json_object\"}"
        ),
        1.0,
        "{text}"
    );
    let chat: Vec<Value> = server
        .requests()
        .into_iter()
        .filter(|(path, _, _)| path.ends_with("chat/completions"))
        .map(|(_, _, body)| body)
        .collect();
    let probes = chat
        .iter()
        .filter(|b| b["response_format"]["type"] == "json_schema")
        .count();
    // Probes overlap at most once per facet worker; everything after uses json_object.
    assert!((1..=4).contains(&probes), "{probes} probes");
    assert_eq!(chat.len(), probes + TRACES as usize);
    assert_eq!(
        metric(
            &text,
            "tracetopics_model_requests_total{role=\"facets\",outcome=\"http_error\"}"
        ),
        probes as f64
    );
    assert!(
        metric(
            &text,
            "tracetopics_model_tokens_total{role=\"facets\",kind=\"prompt\"}"
        ) >= 321.0 * f64::from(TRACES)
    );
    // Sentiment's label is its topic: on the spans and counted, with no map.
    assert_eq!(
        metric(
            &text,
            "tracetopics_facet_labels_total{facet=\"sentiment\",label=\"NEGATIVE\"}"
        ),
        f64::from(TRACES)
    );
    let labelled = sink
        .spans()
        .iter()
        .filter(|(_, _, span)| {
            span.attributes.iter().any(|kv| {
                kv.key == "tracetopics.facet.sentiment.label"
                    && kv.value.as_ref().and_then(|v| v.value.as_ref())
                        == Some(
                            &opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                                "NEGATIVE".into(),
                            ),
                        )
            })
        })
        .count();
    assert_eq!(labelled, TRACES as usize);
    let (db, _) = tracetopics::store::open(&storage).unwrap();
    for trace in 0..TRACES {
        let records = facets::of_trace(&db, &trace_id(100 + trace).try_into().unwrap()).unwrap();
        assert_eq!(records.len(), 3, "trace {trace}");
    }
}

/// A one-span trace whose user message differs per trace (so no answer comes from the cache).
fn varied_trace(trace: u32) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
    let mut spans = genai_trace(trace);
    spans[0].attributes[1] = string_attr(
        "gen_ai.input.messages",
        &format!(
            r#"[{{"role":"user","content":"Where is my refund for order {trace}? I have waited two weeks."}}]"#
        ),
    );
    spans
}

/// A label with no reason is the facet's whole answer: counted and on the spans, stored without
/// a vector (nothing for a map to cluster), and nothing of it is sent to the embedder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_without_a_reason_is_stored_and_put_on_spans_but_not_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour::default()).await;
    let server = ModelServer::start(|_, body| {
        if body.get("input").is_some() {
            return embedding_reply(body, 16);
        }
        chat_reply(
            r#"{"task": "Find out where a refund is", "sentiment": "LABEL: negative", "issues": "NONE"}"#,
            10,
        )
    })
    .await;
    let mut config = config(dir.path(), sink.addr);
    config.models.facets = remote(&server);
    config.models.embeddings = remote(&server);
    let storage = config.storage.clone();
    let sidecar = Sidecar::start(config).await.unwrap();
    let mut client = grpc_client(sidecar.addresses.grpc.unwrap()).await;
    client
        .export(request("shop", "s", genai_trace(7)))
        .await
        .unwrap();
    assert_eq!(sink.wait_for_spans(1, WAIT).await, 1);
    assert_eq!(server.wait_for_requests(2, WAIT).await, 2);
    let done = async {
        loop {
            let text = metrics_text(sidecar.addresses.metrics).await;
            if metric(&text, "tracetopics_facet_records_total") == 3.0 {
                break text;
            }
            tokio::task::yield_now().await;
        }
    };
    let text = tokio::time::timeout(WAIT, done).await.expect("stored");
    sidecar.shutdown().await;
    let requests = server.requests();
    assert_eq!(requests[1].0, "/v1/embeddings");
    assert_eq!(
        requests[1].2["input"],
        serde_json::json!(["Find out where a refund is"])
    );
    assert_eq!(
        metric(
            &text,
            "tracetopics_facet_labels_total{facet=\"sentiment\",label=\"NEGATIVE\"}"
        ),
        1.0
    );
    let on_span = sink.spans().iter().any(|(_, _, span)| {
        span.attributes.iter().any(|kv| {
            kv.key == "tracetopics.facet.sentiment.label"
                && kv.value.as_ref().and_then(|v| v.value.as_ref())
                    == Some(
                        &opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                            "NEGATIVE".into(),
                        ),
                    )
        })
    });
    assert!(on_span, "the label is on the spans");
    let (db, _) = tracetopics::store::open(&storage).unwrap();
    let records = facets::of_trace(&db, &trace_id(7).try_into().unwrap()).unwrap();
    let sentiment = records.iter().find(|r| r.facet == "sentiment").unwrap();
    assert_eq!(
        (
            sentiment.text.as_str(),
            sentiment.excluded,
            sentiment.embedding.len()
        ),
        ("NEGATIVE", false, 0)
    );
    let task = records.iter().find(|r| r.facet == "task").unwrap();
    assert_eq!(task.embedding.len(), 16);
}
