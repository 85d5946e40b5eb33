//! OpenAI-compatible HTTP client (`/chat/completions`, `/embeddings`) with per-endpoint
//! concurrency, rate limits, retries with back-off and jitter honouring `Retry-After`, and a
//! circuit breaker. Works with vLLM, llama.cpp server, Ollama, TGI, Baseten and OpenAI.

use super::config::ModelConfig;
use super::errors::{Decision, ModelError, backoff, classify, counts_as_outage};
use super::limits::{CircuitBreaker, RateLimiter};
use super::metrics::{ModelMetrics, outcome};
use super::structured::{EndpointModes, Step, StructuredOutput, refuses_format};
use serde_json::{Value, json};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// One chat call: a system prompt and one user message.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    pub system: String,
    pub user: String,
    /// JSON schema of the expected answer (sent as `response_format` where supported).
    pub schema: Option<Value>,
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatReply {
    pub content: String,
    /// From the server's `usage`; 0 when it reports none.
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

pub struct OpenAiClient {
    http: reqwest::Client,
    config: ModelConfig,
    limiter: RateLimiter,
    breaker: CircuitBreaker,
    in_flight: Semaphore,
    /// How this endpoint is asked for JSON, learned from its answers.
    modes: EndpointModes,
    metrics: ModelMetrics,
    /// `facets`, `naming` or `embeddings`, for metrics and logs.
    role: &'static str,
    failure_log: LogLimiter,
    /// The dimension learned from the first embedding reply (when not configured).
    dimensions: AtomicUsize,
}

/// At most one warning per `FAILURE_LOG_EVERY`; the rest are counted and summed into the next.
struct LogLimiter(Mutex<(Option<Instant>, u64)>);

const FAILURE_LOG_EVERY: Duration = Duration::from_secs(10);

impl LogLimiter {
    /// `Some(suppressed since the last one)` when this one may be logged.
    fn allow(&self, now: Instant) -> Option<u64> {
        let mut state = self.0.lock().expect("log limiter lock");
        match state.0 {
            Some(last) if now.saturating_duration_since(last) < FAILURE_LOG_EVERY => {
                state.1 += 1;
                None
            }
            _ => {
                let suppressed = state.1;
                *state = (Some(now), 0);
                Some(suppressed)
            }
        }
    }
}

impl OpenAiClient {
    pub fn new(config: &ModelConfig) -> Result<Self, String> {
        let url = config.base_url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "base_url `{url}` must start with http:// or https://"
            ));
        }
        if config.model.trim().is_empty() {
            return Err("model must be set".into());
        }
        let mut headers = crate::config::types::secret_headers(&config.headers)?;
        if let Some(key) = &config.api_key {
            let mut value =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                    .map_err(|_| "api_key has characters not allowed in a header".to_string())?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = config
            .tls
            .client_builder()?
            .default_headers(headers)
            .timeout(config.timeout.get())
            .connect_timeout(config.timeout.get().min(std::time::Duration::from_secs(10)))
            .user_agent(concat!("tracetopics/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        let structured = match (config.json_schema, config.structured_output) {
            (true, mode) => mode,
            (false, StructuredOutput::Auto | StructuredOutput::Instructions) => {
                StructuredOutput::Instructions
            }
            (false, mode) => {
                return Err(format!(
                    "json_schema: false contradicts structured_output: {}",
                    mode.as_str()
                ));
            }
        };
        let now = Instant::now();
        Ok(Self {
            http,
            limiter: RateLimiter::new(config.requests_per_minute, config.tokens_per_minute, now),
            breaker: CircuitBreaker::new(config.circuit_failures, config.circuit_open_for.get()),
            in_flight: Semaphore::new(config.max_concurrency.max(1)),
            modes: EndpointModes::new(structured),
            metrics: ModelMetrics::default(),
            role: "unknown",
            failure_log: LogLimiter(Mutex::new((None, 0))),
            dimensions: AtomicUsize::new(config.dimensions),
            config: config.clone(),
        })
    }

    /// Counts this client's requests into `metrics` under `role` (`facets`, `naming`,
    /// `embeddings`).
    pub fn with_metrics(mut self, metrics: &ModelMetrics, role: &'static str) -> Self {
        self.metrics = metrics.clone();
        self.role = role;
        if let (mode, false) = self.modes.current()
            && role != "embeddings"
        {
            // A configured mode needs no detection: export it now.
            self.metrics.set_mode(role, mode);
        }
        self
    }

    /// How requests ask for JSON now (while detecting: the mode being tried).
    pub fn structured_output(&self) -> StructuredOutput {
        self.modes.in_use()
    }

    pub fn model(&self) -> &str {
        &self.config.model
    }

    pub fn circuit_open(&self) -> bool {
        self.breaker.is_open()
    }

    pub async fn chat(&self, request: &ChatRequest) -> Result<ChatReply, ModelError> {
        let mut body = json!({
            "model": self.config.model,
            "messages": [
                {"role": "system", "content": request.system},
                {"role": "user", "content": request.user},
            ],
            "temperature": 0,
        });
        if let Some(max) = request.max_tokens {
            body["max_tokens"] = json!(max);
        }
        let estimate = ((request.system.len() + request.user.len()) / 4) as u64;
        let Some(schema) = &request.schema else {
            return self
                .post("chat/completions", &body, estimate, false, parse_chat)
                .await;
        };
        let (mut mode, mut probing) = self.modes.current();
        let mut refusals: Vec<(StructuredOutput, ModelError)> = Vec::new();
        loop {
            mode.apply(&mut body, Some(schema));
            let result = self
                .post("chat/completions", &body, estimate, probing, parse_chat)
                .await;
            let error = match result {
                Ok(reply) => {
                    if self.modes.succeeded(mode) {
                        self.log_mode(mode, &refusals);
                    }
                    return Ok(reply);
                }
                Err(error) => error,
            };
            match self.modes.refused(mode, &error) {
                Step::Retry(lower) => {
                    refusals.push((mode, error));
                    mode = lower;
                    probing = self.modes.current().1 && mode == self.modes.in_use();
                }
                Step::GiveUp => {
                    let in_use = self.modes.in_use();
                    if probing && in_use != mode && refusals.is_empty() {
                        // Another request settled the endpoint meanwhile.
                        mode = in_use;
                        probing = false;
                        continue;
                    }
                    if !refusals.is_empty()
                        && !refusals.iter().any(|(_, e)| refuses_format(e, true))
                    {
                        // Even the request without a format failed, and no refusal named the
                        // format: the endpoint is failing, not picky.
                        self.modes.inconclusive();
                    }
                    return Err(error);
                }
            }
        }
    }

    fn log_mode(&self, mode: StructuredOutput, refusals: &[(StructuredOutput, ModelError)]) {
        self.metrics.set_mode(self.role, mode);
        let refused: Vec<String> = refusals
            .iter()
            .map(|(m, e)| format!("{}: {e}", m.as_str()))
            .collect();
        tracing::info!(
            model = %self.config.model,
            base_url = %self.config.base_url,
            role = self.role,
            mode = mode.as_str(),
            refused = %refused.join("; "),
            "structured output mode for this endpoint"
        );
    }

    /// Embeds `texts` in batches of `batch_size`; vectors come back L2-normalized, one per text,
    /// all of one dimension.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, ModelError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.config.batch_size.max(1)) {
            let body = json!({"model": self.config.model, "input": batch});
            let estimate = batch.iter().map(|t| t.len() / 4).sum::<usize>() as u64;
            let expected = batch.len();
            let vectors = self
                .post("embeddings", &body, estimate, false, |reply| {
                    parse_embeddings(reply, expected)
                })
                .await?;
            for mut vector in vectors {
                let expected = self.dimensions.load(Ordering::Relaxed);
                if expected == 0 {
                    self.dimensions.store(vector.len(), Ordering::Relaxed);
                } else if vector.len() != expected {
                    return Err(ModelError::Garbage(format!(
                        "embedding has {} dimensions, expected {expected}",
                        vector.len()
                    )));
                }
                if !normalize(&mut vector) {
                    return Err(ModelError::Garbage("zero or non-finite embedding".into()));
                }
                out.push(vector);
            }
        }
        Ok(out)
    }

    /// One logical request, parsed by `parse`: retried per the rules in `errors.rs` (an answer
    /// that does not parse is garbage, and retried too). A `probe` (a structured-output mode
    /// not yet known to work) returns a possible refusal of its format at once, without retries
    /// and without counting it against the endpoint's health.
    async fn post<T>(
        &self,
        path: &str,
        body: &Value,
        estimate: u64,
        probe: bool,
        parse: impl Fn(&Value) -> Result<T, ModelError>,
    ) -> Result<T, ModelError> {
        let url = format!("{}/{path}", self.config.base_url.trim_end_matches('/'));
        let mut attempt = 0;
        loop {
            let started = Instant::now();
            let result = self
                .attempt(&url, body, estimate, probe)
                .await
                .and_then(|value| parse(&value));
            let sent = !matches!(result, Err(ModelError::CircuitOpen(_)));
            self.metrics.record(
                self.role,
                outcome(&result.as_ref().map(|_| ())),
                sent.then(|| started.elapsed()),
            );
            let error = match result {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            if probe && refuses_format(&error, false) {
                return Err(error);
            }
            match classify(&error) {
                Decision::Retry(server_delay) if attempt < self.config.max_retries => {
                    let delay = backoff(
                        attempt,
                        self.config.initial_backoff.get(),
                        self.config.max_backoff.get(),
                        server_delay,
                        fastrand::f64(),
                    );
                    if let Some(suppressed) = self.failure_log.allow(Instant::now()) {
                        tracing::warn!(model = %self.config.model, role = self.role, %error, retry_in = ?delay, suppressed, "model request failed; will retry");
                    }
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                _ => return Err(error),
            }
        }
    }

    async fn attempt(
        &self,
        url: &str,
        body: &Value,
        estimate: u64,
        probe: bool,
    ) -> Result<Value, ModelError> {
        self.breaker
            .check(Instant::now())
            .map_err(ModelError::CircuitOpen)?;
        let _permit = self.in_flight.acquire().await.expect("never closed");
        let wait = self.limiter.reserve(estimate, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let result = self.send(url, body).await;
        let outage = result
            .as_ref()
            .err()
            .is_some_and(|e| counts_as_outage(e) && !(probe && refuses_format(e, false)));
        self.breaker.record(outage, Instant::now());
        if let Ok(reply) = &result {
            let usage = |key: &str| {
                reply
                    .pointer(&format!("/usage/{key}"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            };
            self.metrics.add_tokens(
                self.role,
                usage("prompt_tokens"),
                usage("completion_tokens"),
            );
        }
        result
    }

    async fn send(&self, url: &str, body: &Value) -> Result<Value, ModelError> {
        let response = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(body).unwrap_or_default())
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| crate::core::retry::parse_retry_after(v, std::time::SystemTime::now()));
        let bytes = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            let message = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
            return Err(ModelError::Http {
                status: status.as_u16(),
                message,
                retry_after,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ModelError::Garbage(format!("not JSON: {e}")))
    }
}

fn transport(error: reqwest::Error) -> ModelError {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    ModelError::Transport {
        timeout: error.is_timeout(),
        message,
    }
}

pub fn parse_chat(reply: &Value) -> Result<ChatReply, ModelError> {
    let content = reply
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| ModelError::Garbage("no choices[0].message.content".into()))?;
    let usage = |key: &str| {
        reply
            .pointer(&format!("/usage/{key}"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Ok(ChatReply {
        content: content.to_string(),
        prompt_tokens: usage("prompt_tokens"),
        completion_tokens: usage("completion_tokens"),
    })
}

fn parse_embeddings(reply: &Value, expected: usize) -> Result<Vec<Vec<f32>>, ModelError> {
    let data = reply
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| ModelError::Garbage("no `data` array".into()))?;
    if data.len() != expected {
        return Err(ModelError::Garbage(format!(
            "{} embeddings for {expected} inputs",
            data.len()
        )));
    }
    let mut indexed: Vec<(usize, Vec<f32>)> = Vec::with_capacity(data.len());
    for (position, item) in data.iter().enumerate() {
        let index = item
            .get("index")
            .and_then(Value::as_u64)
            .map_or(position, |i| i as usize);
        let vector = item
            .get("embedding")
            .and_then(Value::as_array)
            .ok_or_else(|| ModelError::Garbage("an item has no `embedding` array".into()))?
            .iter()
            .map(|x| x.as_f64().map(|f| f as f32))
            .collect::<Option<Vec<f32>>>()
            .ok_or_else(|| ModelError::Garbage("an embedding holds a non-number".into()))?;
        indexed.push((index, vector));
    }
    indexed.sort_by_key(|(i, _)| *i);
    if indexed
        .iter()
        .enumerate()
        .any(|(i, (index, _))| i != *index)
    {
        return Err(ModelError::Garbage(
            "embedding indexes do not match the inputs".into(),
        ));
    }
    Ok(indexed.into_iter().map(|(_, v)| v).collect())
}

/// L2-normalizes in place; false for a zero or non-finite vector.
pub fn normalize(vector: &mut [f32]) -> bool {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !norm.is_finite() || norm == 0.0 {
        return false;
    }
    vector.iter_mut().for_each(|x| *x /= norm);
    true
}
