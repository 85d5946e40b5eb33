//! An in-process OpenAI-compatible server on loopback (`/v1/chat/completions`,
//! `/v1/embeddings`): the only stand-in allowed for remote models. Tests script its answers and
//! read back every request it received.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One scripted answer, used once, in order; when the script is empty the default answers.
#[derive(Clone, Debug)]
pub enum Scripted {
    Status(u16, Option<u64>),
    Body(String),
    /// Waits this long before answering normally (for client timeouts).
    Delay(Duration),
}

type Responder = Arc<dyn Fn(&str, &Value) -> Value + Send + Sync>;

/// How the server treats `response_format`, emulating the servers people run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// OpenAI, vLLM, Ollama, llama.cpp's server: `json_schema` and `json_object` are honoured.
    Schema,
    /// llama-cpp-python: `json_schema` fails its request validation, reported as HTTP 500;
    /// `{type: json_object, schema}` works; without a format the model fences its JSON.
    LlamaCppPython,
    /// Takes no `response_format` at all (HTTP 400 naming it); the model fences its JSON.
    NoFormat,
    /// Accepts any `response_format` and ignores it: prose around fenced JSON.
    Ignoring,
    /// A bare HTTP 500 (no word about the format) for `json_schema`; `json_object` works.
    BareRefusal,
}

/// The body llama-cpp-python 0.3.36's server sends with its HTTP 500 for `type: json_schema`
/// (captured from a real server; only the path is shortened).
pub const LLAMA_CPP_PYTHON_500: &str = r#"{"error":{"message":"1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema', 'ctx': {'expected': \"'text' or 'json_object'\"}}\n\n  File \"/app/llama_cpp/server/app.py\", line 376, in create_chat_completion\n    POST /v1/chat/completions","type":"internal_server_error","param":null,"code":null}}"#;

#[derive(Clone)]
pub struct ModelServer {
    pub addr: SocketAddr,
    state: Arc<ServerState>,
}

struct ServerState {
    script: Mutex<VecDeque<Scripted>>,
    requests: Mutex<Vec<(String, HeaderMap, Value)>>,
    respond: Responder,
    kind: ServerKind,
    seen: tokio::sync::watch::Sender<usize>,
}

impl ModelServer {
    /// `respond(path, request_body)` builds the default answer body.
    pub async fn start(respond: impl Fn(&str, &Value) -> Value + Send + Sync + 'static) -> Self {
        Self::start_kind(ServerKind::Schema, respond).await
    }

    /// A server that treats `response_format` like `kind`.
    pub async fn start_kind(
        kind: ServerKind,
        respond: impl Fn(&str, &Value) -> Value + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, Arc::new(respond), kind)
    }

    pub async fn start_on(addr: SocketAddr, respond: Responder) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        Self::serve(listener, respond, ServerKind::Schema)
    }

    fn serve(listener: tokio::net::TcpListener, respond: Responder, kind: ServerKind) -> Self {
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ServerState {
            script: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            respond,
            kind,
            seen: tokio::sync::watch::channel(0).0,
        });
        let router = axum::Router::new()
            .route("/v1/chat/completions", axum::routing::post(handle))
            .route("/v1/embeddings", axum::routing::post(handle))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        ModelServer { addr, state }
    }

    /// A model config pointing here: no retries, short back-off (tests script the failures).
    pub fn model_config(&self) -> tracetopics::model::ModelConfig {
        tracetopics::model::ModelConfig {
            provider: tracetopics::model::Provider::Openai,
            base_url: self.base_url(),
            model: "m".into(),
            max_retries: 0,
            initial_backoff: tracetopics::config::types::HumanDuration::from_millis(5),
            ..Default::default()
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn script(&self, answers: impl IntoIterator<Item = Scripted>) {
        self.state.script.lock().unwrap().extend(answers);
    }

    /// Every request received: path, headers, JSON body.
    pub fn requests(&self) -> Vec<(String, HeaderMap, Value)> {
        self.state.requests.lock().unwrap().clone()
    }

    pub async fn wait_for_requests(&self, n: usize, limit: Duration) -> usize {
        let mut seen = self.state.seen.subscribe();
        let _ = tokio::time::timeout(limit, seen.wait_for(|c| *c >= n)).await;
        *seen.borrow()
    }
}

async fn handle(
    State(state): State<Arc<ServerState>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let path = uri.path().to_string();
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state
        .requests
        .lock()
        .unwrap()
        .push((path.clone(), headers, value.clone()));
    state.seen.send_modify(|n| *n += 1);
    let scripted = state.script.lock().unwrap().pop_front();
    match scripted {
        Some(Scripted::Status(code, retry_after)) => {
            let mut response = (
                StatusCode::from_u16(code).unwrap(),
                json!({"error": {"message": format!("scripted {code}")}}).to_string(),
            )
                .into_response();
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", seconds.to_string().parse().unwrap());
            }
            response
        }
        Some(Scripted::Body(text)) => {
            ([("content-type", "application/json")], text).into_response()
        }
        Some(Scripted::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            json_response(&(state.respond)(&path, &value))
        }
        None => answer_as(state.kind, &(state.respond)(&path, &value), &value),
    }
}

/// The default answer as a server of `kind` gives it for `request`.
fn answer_as(kind: ServerKind, answer: &Value, request: &Value) -> Response {
    let format = request
        .pointer("/response_format/type")
        .and_then(Value::as_str);
    let refuse = |status: StatusCode, body: &str| (status, body.to_string()).into_response();
    let fenced = || {
        let mut answer = answer.clone();
        if let Some(content) = answer.pointer_mut("/choices/0/message/content") {
            let text = content.as_str().unwrap_or_default();
            *content = json!(format!("Here is the JSON:\n```json\n{text}\n```"));
        }
        json_response(&answer)
    };
    match (kind, format) {
        (ServerKind::Schema, _) => json_response(answer),
        (ServerKind::LlamaCppPython, Some("json_schema")) => {
            refuse(StatusCode::INTERNAL_SERVER_ERROR, LLAMA_CPP_PYTHON_500)
        }
        (ServerKind::LlamaCppPython, Some(_)) => json_response(answer),
        (ServerKind::LlamaCppPython | ServerKind::NoFormat, None) => fenced(),
        (ServerKind::NoFormat, Some(_)) => refuse(
            StatusCode::BAD_REQUEST,
            r#"{"error": {"message": "Unrecognized request argument supplied: response_format"}}"#,
        ),
        (ServerKind::Ignoring, _) => fenced(),
        (ServerKind::BareRefusal, Some("json_schema")) => {
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
        (ServerKind::BareRefusal, _) => json_response(answer),
    }
}

/// A chat completion body with `content` and usage.
pub fn chat_reply(content: &str, prompt_tokens: u64) -> Value {
    json!({
        "id": "chatcmpl-test", "object": "chat.completion", "model": "test",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 20, "total_tokens": prompt_tokens + 20}
    })
}

/// An embeddings body: a deterministic, unnormalized vector per input.
pub fn embedding_reply(request: &Value, dims: usize) -> Value {
    let inputs = request["input"].as_array().cloned().unwrap_or_default();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let seed = text.as_str().unwrap_or("").len() as f32 + 1.0;
            let vector: Vec<f32> = (0..dims).map(|d| seed * (d as f32 + 1.0)).collect();
            json!({"object": "embedding", "index": i, "embedding": vector})
        })
        .collect();
    json!({"object": "list", "data": data, "model": "test", "usage": {"prompt_tokens": 5, "total_tokens": 5}})
}

/// A 200 answer with a JSON body.
pub fn json_response(value: &Value) -> Response {
    ([("content-type", "application/json")], value.to_string()).into_response()
}
