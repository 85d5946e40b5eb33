//! The OpenAI-compatible client against an in-process server over real HTTP: retries, limits,
//! garbage, timeouts, outages and the circuit breaker.

mod common;

use common::openai::{ModelServer, Scripted, ServerKind, chat_reply, embedding_reply};
use serde_json::json;
use std::time::{Duration, Instant};
use tracetopics::config::types::{HumanDuration, Secret};
use tracetopics::model::{
    ChatRequest, ModelConfig, ModelError, ModelMetrics, OpenAiClient, Provider, StructuredOutput,
};

fn config(server: &ModelServer) -> ModelConfig {
    ModelConfig {
        provider: Provider::Openai,
        base_url: server.base_url(),
        model: "test-model".into(),
        api_key: Some(Secret("sk-test-123".into())),
        initial_backoff: HumanDuration::from_millis(10),
        max_backoff: HumanDuration::from_millis(50),
        timeout: HumanDuration::from_secs(5),
        ..ModelConfig::default()
    }
}

fn request() -> ChatRequest {
    ChatRequest {
        system: "You label traces.".into(),
        user: "[user] hello".into(),
        schema: Some(json!({"type": "object", "properties": {"task": {"type": "string"}}})),
        max_tokens: Some(100),
    }
}

#[tokio::test]
async fn a_chat_call_sends_the_model_key_and_schema_and_reads_usage() {
    let server = ModelServer::start(|_, _| chat_reply("{\"task\": \"greet\"}", 1234)).await;
    let client = OpenAiClient::new(&config(&server)).unwrap();
    let reply = client.chat(&request()).await.unwrap();
    assert_eq!(reply.content, "{\"task\": \"greet\"}");
    assert_eq!((reply.prompt_tokens, reply.completion_tokens), (1234, 20));
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let (path, headers, body) = &requests[0];
    assert_eq!(path, "/v1/chat/completions");
    assert_eq!(headers["authorization"], "Bearer sk-test-123");
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["messages"][1]["content"], "[user] hello");
    assert_eq!(body["response_format"]["type"], "json_schema");
}

#[tokio::test]
async fn status_429_with_retry_after_is_honoured() {
    let server = ModelServer::start(|_, _| chat_reply("ok", 1)).await;
    server.script([Scripted::Status(429, Some(1))]);
    let client = OpenAiClient::new(&config(&server)).unwrap();
    let started = Instant::now();
    assert_eq!(client.chat(&request()).await.unwrap().content, "ok");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}, the server asked for 1s",
        started.elapsed()
    );
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn garbage_and_5xx_are_retried_client_errors_are_not() {
    let server = ModelServer::start(|_, _| chat_reply("fine", 1)).await;
    server.script([
        Scripted::Body("<html>bad gateway</html>".into()),
        Scripted::Status(503, None),
        Scripted::Body("{\"choices\": []}".into()),
    ]);
    let client = OpenAiClient::new(&config(&server)).unwrap();
    assert_eq!(client.chat(&request()).await.unwrap().content, "fine");
    assert_eq!(server.requests().len(), 4);

    server.script([Scripted::Status(401, None)]);
    let err = client.chat(&request()).await.unwrap_err();
    assert!(matches!(err, ModelError::Http { status: 401, .. }), "{err}");
    assert_eq!(server.requests().len(), 5, "a 401 is not retried");
}

/// The `response_format` each request to `server` carried: its type, or `none`.
fn formats(server: &ModelServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .map(|(_, _, body)| {
            body.pointer("/response_format/type")
                .and_then(|t| t.as_str())
                .unwrap_or("none")
                .to_string()
        })
        .collect()
}

/// Every kind of server is detected with the default config, the answer is remembered, the
/// probe never opens the circuit, and the metric says which mode is in use.
#[tokio::test]
async fn each_kind_of_server_gets_the_structured_output_it_accepts() {
    let cases = [
        (ServerKind::Schema, "json_schema", vec!["json_schema"]),
        (
            ServerKind::LlamaCppPython,
            "json_object",
            vec!["json_schema", "json_object"],
        ),
        (
            ServerKind::NoFormat,
            "instructions",
            vec!["json_schema", "json_object", "none"],
        ),
        (ServerKind::Ignoring, "json_schema", vec!["json_schema"]),
        (
            ServerKind::BareRefusal,
            "json_object",
            vec!["json_schema", "json_object"],
        ),
    ];
    for (kind, mode, first_call) in cases {
        let server =
            ModelServer::start_kind(kind, |_, _| chat_reply("{\"task\": \"greet\"}", 9)).await;
        let metrics = ModelMetrics::default();
        let client = OpenAiClient::new(&ModelConfig {
            // One failure would open the circuit: a probe must not count as one.
            circuit_failures: 1,
            ..config(&server)
        })
        .unwrap()
        .with_metrics(&metrics, "facets");
        let reply = client.chat(&request()).await.unwrap();
        let parsed = tracetopics::facet::spec::parse_answer(&reply.content).unwrap();
        assert_eq!(parsed["task"], "greet", "{kind:?}: {}", reply.content);
        assert_eq!(formats(&server), first_call, "{kind:?}");
        assert!(!client.circuit_open(), "{kind:?}");
        // Remembered: the next call goes straight to the mode that worked.
        client.chat(&request()).await.unwrap();
        assert_eq!(formats(&server).last().unwrap(), first_call.last().unwrap());
        assert_eq!(server.requests().len(), first_call.len() + 1, "{kind:?}");
        assert_eq!(client.structured_output().as_str(), mode, "{kind:?}");
        let mut registry = prometheus_client::registry::Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert_eq!(
            common::metric(
                &text,
                &format!("tracetopics_model_structured_output{{role=\"facets\",mode=\"{mode}\"}}")
            ),
            1.0,
            "{kind:?}: {text}"
        );
        assert_eq!(
            common::metric(
                &text,
                "tracetopics_model_requests_total{role=\"facets\",outcome=\"ok\"}"
            ),
            2.0,
            "{kind:?}"
        );
        assert_eq!(
            common::metric(
                &text,
                "tracetopics_model_requests_total{role=\"facets\",outcome=\"http_error\"}"
            ),
            (first_call.len() - 1) as f64,
            "{kind:?}"
        );
    }
}

/// A request that fails whatever its format is an outage, not a picky server: it is retried
/// and counted against the endpoint as usual, and the next request probes again.
#[tokio::test]
async fn an_endpoint_failing_every_format_is_not_taken_for_a_picky_one() {
    let server = ModelServer::start(|_, _| chat_reply("{}", 1)).await;
    server.script((0..3).map(|_| Scripted::Status(500, None)));
    let client = OpenAiClient::new(&ModelConfig {
        max_retries: 0,
        ..config(&server)
    })
    .unwrap();
    let err = client.chat(&request()).await.unwrap_err();
    assert!(matches!(err, ModelError::Http { status: 500, .. }), "{err}");
    assert_eq!(formats(&server), ["json_schema", "json_object", "none"]);
    client.chat(&request()).await.unwrap();
    assert_eq!(
        formats(&server)[3],
        "json_schema",
        "probed again from the top"
    );
    assert_eq!(client.structured_output(), StructuredOutput::JsonSchema);

    // Pinned modes are used as they are, and `json_schema: false` sends no format at all.
    for (pinned, sent) in [
        (StructuredOutput::JsonObject, "json_object"),
        (StructuredOutput::Instructions, "none"),
    ] {
        let server = ModelServer::start(|_, _| chat_reply("{}", 1)).await;
        let metrics = ModelMetrics::default();
        let client = OpenAiClient::new(&ModelConfig {
            structured_output: pinned,
            ..config(&server)
        })
        .unwrap()
        .with_metrics(&metrics, "naming");
        client.chat(&request()).await.unwrap();
        assert_eq!(formats(&server), [sent]);
        let gauge = metrics
            .structured_output
            .get_or_create(&tracetopics::model::metrics::ModeLabel {
                role: "naming",
                mode: sent_mode(sent),
            })
            .get();
        assert_eq!(gauge, 1, "a pinned mode is exported from the start");
    }
    let server = ModelServer::start(|_, _| chat_reply("{}", 1)).await;
    let client = OpenAiClient::new(&ModelConfig {
        json_schema: false,
        ..config(&server)
    })
    .unwrap();
    client.chat(&request()).await.unwrap();
    assert_eq!(formats(&server), ["none"]);
    assert!(
        OpenAiClient::new(&ModelConfig {
            json_schema: false,
            structured_output: StructuredOutput::JsonSchema,
            ..config(&server)
        })
        .is_err()
    );
}

#[tokio::test]
async fn a_timeout_is_retried_and_then_reported() {
    let server = ModelServer::start(|_, _| chat_reply("late but fine", 1)).await;
    server.script([Scripted::Delay(Duration::from_secs(3))]);
    let mut config = config(&server);
    config.timeout = HumanDuration::from_millis(300);
    let client = OpenAiClient::new(&config).unwrap();
    assert_eq!(
        client.chat(&request()).await.unwrap().content,
        "late but fine"
    );

    config.max_retries = 1;
    let client = OpenAiClient::new(&config).unwrap();
    server.script([
        Scripted::Delay(Duration::from_secs(3)),
        Scripted::Delay(Duration::from_secs(3)),
    ]);
    match client.chat(&request()).await {
        Err(ModelError::Transport { timeout: true, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_endpoint_down_for_a_while_opens_the_circuit_then_recovers() {
    // Reserve a port, then free it: nothing listens there until the server "comes back".
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut config = ModelConfig {
        provider: Provider::Openai,
        base_url: format!("http://{addr}/v1"),
        model: "m".into(),
        max_retries: 0,
        circuit_failures: 2,
        circuit_open_for: HumanDuration::from_millis(300),
        ..ModelConfig::default()
    };
    config.timeout = HumanDuration::from_secs(2);
    let client = OpenAiClient::new(&config).unwrap();
    for _ in 0..2 {
        assert!(matches!(
            client.chat(&request()).await,
            Err(ModelError::Transport { .. })
        ));
    }
    assert!(matches!(
        client.chat(&request()).await,
        Err(ModelError::CircuitOpen(_))
    ));
    assert!(client.circuit_open());
    let server = ModelServer::start_on(
        addr,
        std::sync::Arc::new(|_: &str, _: &serde_json::Value| chat_reply("back", 1)),
    )
    .await;
    // Calls fail fast until the open period is over; then the probe goes through.
    let mut outcome = client.chat(&request()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while matches!(outcome, Err(ModelError::CircuitOpen(_))) && Instant::now() < deadline {
        let Err(ModelError::CircuitOpen(wait)) = outcome else {
            unreachable!()
        };
        tokio::time::sleep(wait).await;
        outcome = client.chat(&request()).await;
    }
    assert_eq!(outcome.unwrap().content, "back");
    assert!(!client.circuit_open());
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn embeddings_are_batched_normalized_and_dimension_checked() {
    let server = ModelServer::start(|_, body| embedding_reply(body, 8)).await;
    let mut config = config(&server);
    config.batch_size = 3;
    let client = OpenAiClient::new(&config).unwrap();
    let texts: Vec<String> = (0..7).map(|i| "x".repeat(i + 1)).collect();
    let vectors = client.embed(&texts).await.unwrap();
    assert_eq!(vectors.len(), 7);
    for v in &vectors {
        assert_eq!(v.len(), 8);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
    let batches: Vec<usize> = server
        .requests()
        .iter()
        .map(|(_, _, body)| body["input"].as_array().unwrap().len())
        .collect();
    assert_eq!(batches, vec![3, 3, 1]);

    // A server that changes dimension (or miscounts) is an error, not a silent mix.
    config.dimensions = 16;
    config.max_retries = 0;
    let client = OpenAiClient::new(&config).unwrap();
    let err = client.embed(&texts[..1]).await.unwrap_err();
    assert!(err.to_string().contains("dimensions"), "{err}");
    server.script([Scripted::Body(
        json!({"data": [{"index": 0, "embedding": [1.0, 2.0]}]}).to_string(),
    )]);
    let client = OpenAiClient::new(&ModelConfig {
        dimensions: 0,
        ..config.clone()
    })
    .unwrap();
    let err = client.embed(&texts[..2]).await.unwrap_err();
    assert!(
        err.to_string().contains("1 embeddings for 2 inputs"),
        "{err}"
    );
}

#[tokio::test]
async fn requests_per_minute_paces_calls() {
    let server = ModelServer::start(|_, _| chat_reply("ok", 1)).await;
    let mut config = config(&server);
    config.requests_per_minute = 120; // one every 0.5 s after a burst of 120
    let client = OpenAiClient::new(&config).unwrap();
    for _ in 0..120 {
        client.chat(&request()).await.unwrap();
    }
    let started = Instant::now();
    client.chat(&request()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
}

/// `https://` model endpoints: verified against the system roots plus `tls.ca_file`; a server
/// whose certificate nobody vouches for is refused before any request (and API key) is sent.
#[tokio::test]
async fn https_endpoints_are_verified_against_the_configured_ca() {
    use common::tls::{fixture, tls_proxy};
    use tracetopics::config::tls::ClientTlsConfig;
    let server = ModelServer::start(|_, _| chat_reply("{\"task\": \"greet\"}", 7)).await;
    let proxy = tls_proxy(server.addr).await;
    let https = |tls: ClientTlsConfig| ModelConfig {
        base_url: format!("https://127.0.0.1:{}/v1", proxy.port()),
        max_retries: 0,
        tls,
        ..config(&server)
    };

    let untrusted = OpenAiClient::new(&https(ClientTlsConfig::default())).unwrap();
    let err = untrusted.chat(&request()).await.unwrap_err();
    assert!(
        server.requests().is_empty(),
        "nothing may reach the server: {err:?}"
    );

    let trusted = OpenAiClient::new(&https(ClientTlsConfig {
        ca_file: Some(fixture("ca.pem")),
        ..Default::default()
    }))
    .unwrap();
    let reply = trusted.chat(&request()).await.unwrap();
    assert_eq!(reply.prompt_tokens, 7);
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].1["authorization"], "Bearer sk-test-123");

    let skip = OpenAiClient::new(&https(ClientTlsConfig {
        insecure_skip_verify: true,
        ..Default::default()
    }))
    .unwrap();
    skip.chat(&request()).await.unwrap();
    assert_eq!(server.requests().len(), 2);
}

fn sent_mode(sent: &str) -> &'static str {
    match sent {
        "json_object" => "json_object",
        _ => "instructions",
    }
}
