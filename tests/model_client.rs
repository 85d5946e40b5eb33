//! The OpenAI-compatible client against an in-process server over real HTTP: retries, limits,
//! garbage, timeouts, outages and the circuit breaker.

mod common;

use common::openai::{ModelServer, Scripted, chat_reply, embedding_reply, json_response};
use serde_json::json;
use std::time::{Duration, Instant};
use tracetopics::config::types::{HumanDuration, Secret};
use tracetopics::model::{ChatRequest, ModelConfig, ModelError, OpenAiClient, Provider};

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

#[tokio::test]
async fn a_server_that_rejects_json_schema_gets_plain_requests() {
    let server = ModelServer::start(|_, _| chat_reply("{}", 1)).await;
    server.script([Scripted::Status(400, None)]);
    let client = OpenAiClient::new(&config(&server)).unwrap();
    // The scripted 400 body does not mention response_format: a real client error.
    assert!(client.chat(&request()).await.is_err());
    // A server that says it does not support response_format is asked without it from then on.
    let rejecting = axum_400_server().await;
    let client = OpenAiClient::new(&ModelConfig {
        base_url: format!("http://{rejecting}/v1"),
        ..config(&server)
    })
    .unwrap();
    assert_eq!(client.chat(&request()).await.unwrap().content, "plain");
    assert_eq!(client.chat(&request()).await.unwrap().content, "plain");
}

/// Answers 400 "response_format is not supported" to requests that carry one.
async fn axum_400_server() -> std::net::SocketAddr {
    async fn handle(body: axum::body::Bytes) -> axum::response::Response {
        use axum::response::IntoResponse;
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if body.get("response_format").is_some() {
            (
                axum::http::StatusCode::BAD_REQUEST,
                "{\"error\": {\"message\": \"response_format json_schema is not supported\"}}",
            )
                .into_response()
        } else {
            json_response(&chat_reply("plain", 1))
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().route("/v1/chat/completions", axum::routing::post(handle));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
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
