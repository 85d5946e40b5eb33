//! One generated agent trace: an `invoke_agent` root, `chat` spans carrying the whole message
//! history (`gen_ai.input.messages` / `gen_ai.output.messages`, GenAI semconv ≥ 1.37, shaped
//! like opentelemetry-instrumentation-openai-v2 with util-genai) and `execute_tool` spans, some
//! failing with an error status and an `exception` event, some retried, some multi-turn.

use super::catalog::{
    FAILURE_ANSWERS, IntentSpec, OFF_TOPIC, OFF_TOPIC_ANSWERS, SUPPORT_INTENTS, Sentiment,
    TOOL_FAILURES, ToolStep,
};
use super::entities::Entities;
use super::{Intent, TraceTruth};
use crate::cluster::vectors::mix_seed;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value::Value as Any,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, TracesData, span, status,
};
use serde_json::{Value, json};

const SYSTEM_PROMPTS: &[&str] = &[
    "You are the customer support assistant for Northwind Shop. Use the tools to look up orders, accounts and subscriptions, and resolve the customer's request. Be concise and polite.",
    "You are Northwind Shop's support agent. Always check the customer's data with the tools before answering. Keep answers short and friendly.",
];
const MODELS: &[(&str, &str)] = &[
    ("gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
    ("gpt-4.1", "gpt-4.1-2025-04-14"),
];
const LLM_SCOPE: &str = "opentelemetry.util.genai.handler";
const APP_SCOPE: &str = "support_agent.app";
const SPAN_KIND_INTERNAL: i32 = 1;
const SPAN_KIND_CLIENT: i32 = 3;

/// Chance that a given tool call fails (at most one failure per trace).
const TOOL_FAILURE_RATE: f64 = 0.12;
/// Chance that the agent retries a failed tool call (the retry succeeds).
const RETRY_RATE: f64 = 0.6;
const MULTI_TURN_RATE: f64 = 0.35;

/// A deterministic stream of support-agent traces: `trace(i)` depends only on the seed, the
/// off-topic share, the start time and `i`.
#[derive(Clone, Debug)]
pub struct Workload {
    seed: u64,
    ood_share: f64,
    start_unix_nano: u64,
    service_name: String,
}

impl Workload {
    /// 2025-06-01T12:00:00Z, so traces are reproducible byte for byte.
    pub const DEFAULT_START_UNIX_NANO: u64 = 1_748_779_200_000_000_000;

    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            ood_share: 0.0,
            start_unix_nano: Self::DEFAULT_START_UNIX_NANO,
            service_name: "support-agent".into(),
        }
    }

    /// Share (0..=1) of traces that are off-topic requests rather than support intents.
    pub fn with_ood_share(mut self, share: f64) -> Self {
        self.ood_share = share.clamp(0.0, 1.0);
        self
    }

    /// Trace `i` starts `i` seconds after this time.
    pub fn starting_at(mut self, unix_nano: u64) -> Self {
        self.start_unix_nano = unix_nano;
        self
    }

    pub fn with_service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = name.into();
        self
    }

    pub fn trace(&self, i: u64) -> (TracesData, TraceTruth) {
        let mut rng = fastrand::Rng::with_seed(mix_seed(self.seed, i, 0x10ad));
        let start = self
            .start_unix_nano
            .saturating_add(i.saturating_mul(1_000_000_000));
        let mut b = TraceBuilder::new(&mut rng, start);
        let truth = if rng.f64() < self.ood_share {
            off_topic(&mut rng, &mut b)
        } else {
            let spec = &SUPPORT_INTENTS[rng.usize(..SUPPORT_INTENTS.len())];
            support(&mut rng, &mut b, spec)
        };
        (b.finish(&mut rng, &self.service_name), truth)
    }
}

fn pick<'a>(rng: &mut fastrand::Rng, list: &[&'a str]) -> &'a str {
    list[rng.usize(..list.len())]
}

/// The customer's words: a sentiment-coloured opening, the request, a closing remark.
fn phrase(rng: &mut fastrand::Rng, sentiment: Sentiment, request: &str) -> String {
    let prefix = pick(rng, sentiment.prefixes());
    let suffix = pick(rng, sentiment.suffixes());
    // "…, but " continues the sentence, so the request loses its capital (not "I …").
    let continues = prefix.ends_with(' ') && !prefix.trim_end().ends_with(['.', '!', '?', ')']);
    let request = if continues && !request.starts_with("I ") && !request.starts_with("I'") {
        let mut chars = request.chars();
        chars.next().map_or(String::new(), |first| {
            first.to_lowercase().chain(chars).collect()
        })
    } else {
        request.to_string()
    };
    format!("{prefix}{request}{suffix}")
}

fn support(rng: &mut fastrand::Rng, b: &mut TraceBuilder, spec: &IntentSpec) -> TraceTruth {
    let sentiment = Sentiment::ALL[rng.usize(..Sentiment::ALL.len())];
    let e = Entities::draw(rng);
    b.customer = e.get("customer").to_string();
    let opener = e.fill(pick(rng, spec.openers));
    let request = phrase(rng, sentiment, &opener);
    b.user(&request);
    let mut failed_tool = None;
    let mut retried = false;
    let mut gave_up = false;
    for step in spec.tools {
        b.call_tool(rng, step, &e);
        if failed_tool.is_none() && rng.f64() < TOOL_FAILURE_RATE {
            let (kind, message) = TOOL_FAILURES[rng.usize(..TOOL_FAILURES.len())];
            b.fail_last_tool(rng, kind, &e.fill(message));
            failed_tool = Some(step.name.to_string());
            if rng.f64() < RETRY_RATE {
                b.call_tool(rng, step, &e);
                retried = true;
            } else {
                gave_up = true;
                break;
            }
        }
    }
    let answer = if gave_up {
        e.fill(pick(rng, FAILURE_ANSWERS))
    } else {
        let opener = pick(rng, sentiment.agent_openers());
        format!("{opener}{}", e.fill(pick(rng, spec.answers)))
    };
    b.answer(rng, &answer);
    let mut turns = 1;
    if !gave_up && rng.f64() < MULTI_TURN_RATE {
        let (question, reply) = spec.follow_ups[rng.usize(..spec.follow_ups.len())];
        b.user(&e.fill(question));
        b.answer(rng, &e.fill(reply));
        turns += 1;
        if rng.bool() {
            b.user(pick(rng, sentiment.closings()));
            b.answer(
                rng,
                "You're welcome! Is there anything else I can help you with?",
            );
            turns += 1;
        }
    }
    TraceTruth {
        intent: spec.intent,
        sentiment,
        failed_tool,
        retried,
        turns,
        ood: false,
        request,
    }
}

fn off_topic(rng: &mut fastrand::Rng, b: &mut TraceBuilder) -> TraceTruth {
    let sentiment = [Sentiment::Happy, Sentiment::Neutral][rng.usize(..2)];
    b.customer = format!("cust_{:06}", rng.u32(0..1_000_000));
    let question = pick(rng, OFF_TOPIC);
    let request = phrase(rng, sentiment, question);
    b.user(&request);
    let answer = pick(rng, OFF_TOPIC_ANSWERS);
    b.answer(rng, answer);
    TraceTruth {
        intent: Intent::OffTopic,
        sentiment,
        failed_tool: None,
        retried: false,
        turns: 1,
        ood: true,
        request,
    }
}

/// Accumulates the spans of one trace while the conversation unfolds on a simulated clock.
struct TraceBuilder {
    trace_id: Vec<u8>,
    root_id: Vec<u8>,
    start: u64,
    clock: u64,
    model: (&'static str, &'static str),
    /// Messages so far, in the GenAI parts format, system prompt first.
    history: Vec<Value>,
    llm_spans: Vec<Span>,
    app_spans: Vec<Span>,
    customer: String,
    calls: u32,
}

fn kv(key: &str, value: Any) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, Any::StringValue(value.into()))
}

fn int(key: &str, value: i64) -> KeyValue {
    kv(key, Any::IntValue(value))
}

fn nonzero_id(rng: &mut fastrand::Rng, len: usize) -> Vec<u8> {
    loop {
        let id: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        if id.iter().any(|b| *b != 0) {
            return id;
        }
    }
}

/// Rough token count of JSON text (≈ 4 characters a token), as the usage attributes need one.
fn tokens(value: &Value) -> i64 {
    (value.to_string().len() / 4).max(1) as i64
}

impl TraceBuilder {
    fn new(rng: &mut fastrand::Rng, start: u64) -> Self {
        let system = pick(rng, SYSTEM_PROMPTS);
        Self {
            trace_id: nonzero_id(rng, 16),
            root_id: nonzero_id(rng, 8),
            start,
            clock: start + rng.u64(1_000_000..5_000_000),
            model: MODELS[rng.usize(..MODELS.len())],
            history: vec![json!({"role":"system","parts":[{"type":"text","content":system}]})],
            llm_spans: Vec::new(),
            app_spans: Vec::new(),
            customer: String::new(),
            calls: 0,
        }
    }

    fn span(&self, rng: &mut fastrand::Rng, name: String, kind: i32, millis: (u64, u64)) -> Span {
        let start = self.clock;
        Span {
            trace_id: self.trace_id.clone(),
            span_id: nonzero_id(rng, 8),
            parent_span_id: self.root_id.clone(),
            name,
            kind,
            start_time_unix_nano: start,
            end_time_unix_nano: start + rng.u64(millis.0..millis.1) * 1_000_000,
            flags: 0x100,
            ..Default::default()
        }
    }

    fn user(&mut self, content: &str) {
        self.history
            .push(json!({"role":"user","parts":[{"type":"text","content":content}]}));
    }

    /// A `chat` span whose output is `output` (one assistant message), then appended to history.
    fn chat(&mut self, rng: &mut fastrand::Rng, parts: Value, finish_reason: &str) {
        let (request_model, response_model) = self.model;
        let mut span = self.span(
            rng,
            format!("chat {request_model}"),
            SPAN_KIND_CLIENT,
            (350, 2_500),
        );
        let input = Value::Array(self.history.clone());
        let output = json!([{"role":"assistant","parts":parts,"finish_reason":finish_reason}]);
        span.attributes = vec![
            text("gen_ai.operation.name", "chat"),
            text("gen_ai.request.model", request_model),
            text("gen_ai.provider.name", "openai"),
            kv("gen_ai.request.temperature", Any::DoubleValue(0.2)),
            kv(
                "gen_ai.response.finish_reasons",
                Any::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Any::StringValue(finish_reason.into())),
                    }],
                }),
            ),
            text("gen_ai.response.model", response_model),
            text(
                "gen_ai.response.id",
                format!("chatcmpl-{:016x}", rng.u64(..)),
            ),
            int("gen_ai.usage.input_tokens", tokens(&input)),
            int("gen_ai.usage.output_tokens", tokens(&output)),
            text("gen_ai.input.messages", input.to_string()),
            text("gen_ai.output.messages", output.to_string()),
        ];
        self.clock = span.end_time_unix_nano + rng.u64(200_000..2_000_000);
        self.llm_spans.push(span);
        self.history.push(json!({"role":"assistant","parts":parts}));
    }

    fn answer(&mut self, rng: &mut fastrand::Rng, content: &str) {
        self.chat(rng, json!([{"type":"text","content":content}]), "stop");
    }

    /// The model asks for `step`, then the `execute_tool` span runs it successfully.
    fn call_tool(&mut self, rng: &mut fastrand::Rng, step: &ToolStep, e: &Entities) {
        self.calls += 1;
        let id = format!("call_{}_{}", step.name, self.calls);
        let arguments_text = e.fill(step.arguments);
        let arguments: Value = serde_json::from_str(&arguments_text).unwrap_or(Value::Null);
        self.chat(
            rng,
            json!([{"type":"tool_call","id":id,"name":step.name,"arguments":arguments}]),
            "tool_calls",
        );
        let mut span = self.span(
            rng,
            format!("execute_tool {}", step.name),
            SPAN_KIND_INTERNAL,
            (20, 900),
        );
        let result = e.fill(step.result);
        span.attributes = vec![
            text("gen_ai.operation.name", "execute_tool"),
            text("gen_ai.tool.name", step.name),
            text("gen_ai.tool.type", "function"),
            text("gen_ai.tool.call.id", id.as_str()),
            text("gen_ai.tool.call.arguments", arguments_text),
            text("gen_ai.tool.call.result", result.as_str()),
        ];
        self.clock = span.end_time_unix_nano + rng.u64(100_000..1_000_000);
        self.app_spans.push(span);
        self.history.push(json!({"role":"tool","parts":[{"type":"tool_call_response","id":id,"response":result}]}));
    }

    /// Turns the last tool call into a failure: error status, `error.type`, an `exception`
    /// event, no result, and the model is told `Error: <message>`.
    fn fail_last_tool(&mut self, rng: &mut fastrand::Rng, kind: &str, message: &str) {
        let span = self.app_spans.last_mut().expect("a tool span");
        span.attributes
            .retain(|kv| kv.key != "gen_ai.tool.call.result");
        let short_type = kind.rsplit('.').next().unwrap_or(kind);
        span.attributes.push(text("error.type", short_type));
        span.status = Some(Status {
            message: message.into(),
            code: status::StatusCode::Error as i32,
        });
        let tool = span.name.trim_start_matches("execute_tool ").to_string();
        span.events.push(span::Event {
            time_unix_nano: span.end_time_unix_nano - rng.u64(1..1_000),
            name: "exception".into(),
            attributes: vec![
                text("exception.type", kind),
                text("exception.message", message),
                text(
                    "exception.stacktrace",
                    format!(
                        "Traceback (most recent call last):\n  File \"/app/support_agent/tools.py\", line {}, in {tool}\n    return client.call(**arguments)\n{kind}: {message}\n",
                        rng.u32(40..400)
                    ),
                ),
                kv("exception.escaped", Any::BoolValue(false)),
            ],
            dropped_attributes_count: 0,
        });
        if let Some(last) = self.history.last_mut() {
            last["parts"][0]["response"] = Value::String(format!("Error: {message}"));
        }
    }

    fn finish(mut self, rng: &mut fastrand::Rng, service_name: &str) -> TracesData {
        let (request_model, _) = self.model;
        let root = Span {
            trace_id: self.trace_id.clone(),
            span_id: self.root_id.clone(),
            name: "invoke_agent support-agent".into(),
            kind: SPAN_KIND_INTERNAL,
            start_time_unix_nano: self.start,
            end_time_unix_nano: self.clock + rng.u64(100_000..1_000_000),
            flags: 0x100,
            attributes: vec![
                text("gen_ai.operation.name", "invoke_agent"),
                text("gen_ai.provider.name", "openai"),
                text("gen_ai.agent.name", "support-agent"),
                text("gen_ai.agent.id", "asst_support_v3"),
                text("gen_ai.request.model", request_model),
                text(
                    "gen_ai.conversation.id",
                    format!("conv_{}", hex::encode(&self.trace_id[..8])),
                ),
                text("user.id", self.customer.as_str()),
            ],
            ..Default::default()
        };
        self.app_spans.push(root);
        // SDK batch processors export spans as they end.
        self.app_spans.sort_by_key(|s| s.end_time_unix_nano);
        let scope = |name: &str, spans| ScopeSpans {
            scope: Some(InstrumentationScope {
                name: name.into(),
                version: if name == LLM_SCOPE { "1.0b0" } else { "" }.into(),
                ..Default::default()
            }),
            spans,
            schema_url: String::new(),
        };
        TracesData {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        text("service.name", service_name),
                        text("service.version", "2.3.1"),
                        text("deployment.environment.name", "production"),
                        text("telemetry.sdk.language", "python"),
                        text("telemetry.sdk.name", "opentelemetry"),
                        text("telemetry.sdk.version", "1.38.0"),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![
                    scope(LLM_SCOPE, std::mem::take(&mut self.llm_spans)),
                    scope(APP_SCOPE, std::mem::take(&mut self.app_spans)),
                ],
                schema_url: String::new(),
            }],
        }
    }
}
