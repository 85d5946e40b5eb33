//! What one span says about the conversation, under each convention that may describe it: OTel
//! GenAI (≥ 1.37 attributes, older events and log records), OpenLLMetry/Traceloop, OpenInference,
//! Vercel AI SDK, Langfuse, Braintrust and generic wrapper keys. Every source yields its own
//! message list; the conversation merges them and drops what recurs.

use super::Role;
use super::messages::{Msg, parse_message, parse_messages, role_of, tool_call_from, value_text};
use super::trace::{Attributes, LogView, SpanView};
use super::values::structured;
use serde_json::{Map, Value, json};

/// What one span contributes. Inputs are placed at the span's start, outputs and errors at its
/// end (after its children).
#[derive(Debug, Default)]
pub struct Extracted {
    pub inputs: Vec<Vec<Msg>>,
    pub outputs: Vec<Vec<Msg>>,
    /// Plain inputs/outputs of non-LLM spans (workflow, chain), used only when a trace has no
    /// recognizable conversation at all.
    pub fallback: Vec<Msg>,
    pub errors: Vec<String>,
}

impl Extracted {
    fn input(&mut self, list: Vec<Msg>) {
        if !list.is_empty() {
            self.inputs.push(list);
        }
    }
    fn output(&mut self, list: Vec<Msg>) {
        if !list.is_empty() {
            self.outputs.push(list);
        }
    }
}

fn str_attr<'a>(attrs: &'a Attributes, key: &str) -> Option<&'a str> {
    attrs
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Whether a span is a scorer or evaluator, whose subtree is not part of the conversation.
pub fn is_scorer(span: &SpanView) -> bool {
    let a = &span.attributes;
    let eq =
        |key: &str, value: &str| str_attr(a, key).is_some_and(|v| v.eq_ignore_ascii_case(value));
    if eq("openinference.span.kind", "EVALUATOR") || eq("langfuse.observation.type", "evaluator") {
        return true;
    }
    if let Some(bt) = a.get("braintrust.span_attributes").map(structured) {
        let field = |k: &str| bt.get(k).and_then(Value::as_str).unwrap_or_default();
        if field("type").eq_ignore_ascii_case("score")
            || field("purpose").eq_ignore_ascii_case("scorer")
        {
            return true;
        }
    }
    a.keys().any(|k| k.starts_with("gen_ai.evaluation."))
        || str_attr(a, "gen_ai.operation.name").is_some_and(|op| op.starts_with("evaluat"))
}

/// The agent a span invokes, if it is an agent span.
pub fn agent_name(span: &SpanView) -> Option<String> {
    let a = &span.attributes;
    let invoke = str_attr(a, "gen_ai.operation.name") == Some("invoke_agent")
        || span.name.starts_with("invoke_agent");
    if invoke {
        if let Some(name) = str_attr(a, "gen_ai.agent.name") {
            return Some(name.to_string());
        }
        return span.name.strip_prefix("invoke_agent ").map(str::to_string);
    }
    if str_attr(a, "openinference.span.kind") == Some("AGENT") {
        return str_attr(a, "agent.name")
            .map(str::to_string)
            .or(Some(span.name.clone()));
    }
    if str_attr(a, "traceloop.span.kind") == Some("agent") {
        return str_attr(a, "traceloop.entity.name").map(str::to_string);
    }
    None
}

pub fn extract(span: &SpanView, logs: &[&LogView]) -> Extracted {
    let mut ex = Extracted::default();
    let a = &span.attributes;
    genai_attributes(a, &mut ex);
    execute_tool(span, &mut ex);
    events(span, logs, &mut ex);
    flattened(a, "gen_ai.prompt.", Role::User, &mut ex, false);
    flattened(a, "gen_ai.completion.", Role::Assistant, &mut ex, true);
    openinference(span, &mut ex);
    vercel(span, &mut ex);
    wrappers(span, &mut ex);
    errors(span, logs, &mut ex);
    ex
}

/// GenAI ≥ 1.37: `gen_ai.system_instructions`, `gen_ai.input.messages`, `gen_ai.output.messages`.
fn genai_attributes(a: &Attributes, ex: &mut Extracted) {
    if let Some(value) = a.get("gen_ai.system_instructions") {
        let value = structured(value);
        let mut list = Vec::new();
        match value.as_ref() {
            Value::Array(parts) => {
                for part in parts {
                    parse_message(
                        &json!({"role": "system", "parts": [part]}),
                        Role::System,
                        &mut list,
                    );
                }
            }
            other => list.push(Msg::text(Role::System, value_text(other))),
        }
        ex.input(list);
    }
    if let Some(list) = a
        .get("gen_ai.input.messages")
        .and_then(|v| parse_messages(v, Role::User))
    {
        ex.input(list);
    }
    if let Some(list) = a
        .get("gen_ai.output.messages")
        .and_then(|v| parse_messages(v, Role::Assistant))
    {
        ex.output(list);
    }
}

fn execute_tool(span: &SpanView, ex: &mut Extracted) {
    let a = &span.attributes;
    let is_tool = str_attr(a, "gen_ai.operation.name") == Some("execute_tool")
        || span.name.starts_with("execute_tool");
    if !is_tool {
        return;
    }
    let name = str_attr(a, "gen_ai.tool.name")
        .map(str::to_string)
        .or_else(|| span.name.strip_prefix("execute_tool ").map(str::to_string));
    let id = str_attr(a, "gen_ai.tool.call.id").map(str::to_string);
    let args = a.get("gen_ai.tool.call.arguments").unwrap_or(&Value::Null);
    ex.input(vec![Msg::tool_call(name.clone(), id.clone(), args)]);
    if let Some(result) = a.get("gen_ai.tool.call.result") {
        ex.output(vec![Msg::tool_result(name, id, result)]);
    }
}

/// Older GenAI events, as span events or as log records of this span.
fn events(span: &SpanView, logs: &[&LogView], ex: &mut Extracted) {
    let mut items: Vec<(u64, &str, Value, &Attributes)> = span
        .events
        .iter()
        .map(|e| {
            (
                e.time_unix_nano,
                e.name.as_str(),
                Value::Null,
                &e.attributes,
            )
        })
        .collect();
    items.extend(logs.iter().map(|l| {
        (
            l.time_unix_nano,
            l.event_name.as_str(),
            l.body.clone(),
            &l.attributes,
        )
    }));
    items.sort_by_key(|(time, ..)| *time);
    let mut per_message_inputs = Vec::new();
    let mut choices = Vec::new();
    for (_, name, body, attrs) in items {
        let body = match structured(&body).into_owned() {
            Value::Null => Value::Object(attrs.clone()),
            other => other,
        };
        match name {
            "gen_ai.content.prompt" => {
                if let Some(list) = attrs
                    .get("gen_ai.prompt")
                    .and_then(|v| parse_messages(v, Role::User))
                {
                    ex.input(list);
                }
            }
            "gen_ai.content.completion" => {
                if let Some(list) = attrs
                    .get("gen_ai.completion")
                    .and_then(|v| parse_messages(v, Role::Assistant))
                {
                    ex.output(list);
                }
            }
            "gen_ai.system.message"
            | "gen_ai.user.message"
            | "gen_ai.assistant.message"
            | "gen_ai.tool.message" => {
                let role = role_of(&name["gen_ai.".len()..name.len() - ".message".len()])
                    .unwrap_or(Role::User);
                let mut body = body;
                if let Value::Object(obj) = &mut body {
                    obj.entry("role").or_insert_with(|| json!(role_name(role)));
                }
                parse_message(&body, role, &mut per_message_inputs);
            }
            "gen_ai.choice" => parse_message(&body, Role::Assistant, &mut choices),
            "gen_ai.client.inference.operation.details" => genai_attributes(attrs, ex),
            _ => {}
        }
    }
    ex.input(per_message_inputs);
    ex.output(choices);
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool | Role::Error => "tool",
    }
}

/// Flattened lists: `<prefix>N.role|content|tool_calls.M.*` (OpenLLMetry) and
/// `llm.input_messages.N.message.*` (OpenInference), rebuilt into message objects.
fn flattened(a: &Attributes, prefix: &str, default_role: Role, ex: &mut Extracted, output: bool) {
    let messages = unflatten(a, prefix);
    if messages.is_empty() {
        return;
    }
    let mut list = Vec::new();
    for message in messages {
        // OpenInference nests everything under `message.`.
        let mut message = match message.get("message") {
            Some(Value::Object(inner)) => Value::Object(inner.clone()),
            _ => message,
        };
        normalize_flattened(&mut message);
        parse_message(&message, default_role, &mut list);
    }
    if output {
        ex.output(list);
    } else {
        ex.input(list);
    }
}

/// `{"0": {...}, "1": {...}}` objects (from numbered keys) become arrays, and OpenInference's
/// `contents[].message_content` / `tool_calls[].tool_call` wrappers are unwrapped.
fn normalize_flattened(value: &mut Value) {
    if let Value::Object(obj) = value {
        for (key, inner) in obj.iter_mut() {
            normalize_flattened(inner);
            if key == "tool_calls" || key == "contents" {
                if let Value::Array(items) = inner {
                    for item in items.iter_mut() {
                        for wrapper in ["tool_call", "message_content"] {
                            if let Some(unwrapped) = item.get(wrapper).cloned() {
                                *item = unwrapped;
                            }
                        }
                    }
                }
            }
        }
        if let Some(contents) = obj.remove("contents") {
            obj.entry("content").or_insert(contents);
        } else if let Some(Value::String(content)) = obj.get("content") {
            // Multimodal OpenLLMetry content is a JSON string of parts.
            if let Some(parts @ Value::Array(_)) = super::values::parse_json_str(content) {
                obj.insert("content".into(), parts);
            }
        }
        // Traceloop writes `tool_calls.N.name|arguments`; OpenInference `function.name`.
        if let Some(Value::Array(calls)) = obj.get("tool_calls") {
            let calls: Vec<Value> = calls.iter().map(|c| json!({
                "id": c.get("id").cloned().unwrap_or(Value::Null),
                "name": c.get("name").or_else(|| c.get("function").and_then(|f| f.get("name"))).cloned().unwrap_or(Value::Null),
                "arguments": c.get("arguments").or_else(|| c.get("function").and_then(|f| f.get("arguments"))).cloned().unwrap_or(Value::Null),
            })).collect();
            obj.insert("tool_calls".into(), Value::Array(calls));
        }
    }
}

/// Rebuilds `prefix.N.a.b = v` keys into an ordered list of nested objects (numeric path
/// segments become arrays).
fn unflatten(a: &Attributes, prefix: &str) -> Vec<Value> {
    let mut root: Vec<(usize, Value)> = Vec::new();
    for (key, value) in a.iter() {
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        let mut parts = rest.split('.');
        let Some(index) = parts.next().and_then(|p| p.parse::<usize>().ok()) else {
            continue;
        };
        let path: Vec<&str> = parts.collect();
        if path.is_empty() {
            continue;
        }
        let slot = match root.iter().position(|(i, _)| *i == index) {
            Some(pos) => &mut root[pos].1,
            None => {
                root.push((index, Value::Object(Map::new())));
                &mut root.last_mut().expect("just pushed").1
            }
        };
        insert_path(slot, &path, value.clone());
    }
    root.sort_by_key(|(i, _)| *i);
    root.into_iter()
        .map(|(_, v)| arrays_from_numbered(v))
        .collect()
}

fn insert_path(target: &mut Value, path: &[&str], value: Value) {
    let Value::Object(obj) = target else { return };
    if path.len() == 1 {
        obj.insert(path[0].to_string(), value);
        return;
    }
    let child = obj
        .entry(path[0].to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !child.is_object() {
        *child = Value::Object(Map::new());
    }
    insert_path(child, &path[1..], value);
}

fn arrays_from_numbered(value: Value) -> Value {
    match value {
        Value::Object(obj) => {
            let numbered = !obj.is_empty() && obj.keys().all(|k| k.parse::<usize>().is_ok());
            if numbered {
                let mut items: Vec<(usize, Value)> = obj
                    .into_iter()
                    .map(|(k, v)| (k.parse().expect("checked"), arrays_from_numbered(v)))
                    .collect();
                items.sort_by_key(|(i, _)| *i);
                Value::Array(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(
                    obj.into_iter()
                        .map(|(k, v)| (k, arrays_from_numbered(v)))
                        .collect(),
                )
            }
        }
        other => other,
    }
}

fn openinference(span: &SpanView, ex: &mut Extracted) {
    let a = &span.attributes;
    flattened(a, "llm.input_messages.", Role::User, ex, false);
    flattened(a, "llm.output_messages.", Role::Assistant, ex, true);
    let kind = str_attr(a, "openinference.span.kind").unwrap_or_default();
    let (input, output) = (a.get("input.value"), a.get("output.value"));
    match kind {
        "TOOL" => {
            let name = str_attr(a, "tool.name")
                .map(str::to_string)
                .or(Some(span.name.clone()));
            if let Some(input) = input {
                ex.input(vec![Msg::tool_call(name.clone(), None, input)]);
            }
            if let Some(output) = output {
                ex.output(vec![Msg::tool_result(name, None, output)]);
            }
        }
        "LLM" => {
            if let Some(list) = input.and_then(|v| parse_messages(v, Role::User)) {
                ex.input(list);
            }
            if let Some(list) = output.and_then(|v| parse_messages(v, Role::Assistant)) {
                ex.output(list);
            }
        }
        "" => {}
        _ => io_fallback(input, output, ex),
    }
}

fn vercel(span: &SpanView, ex: &mut Extracted) {
    let a = &span.attributes;
    for key in ["ai.prompt", "ai.prompt.messages"] {
        if let Some(value) = a.get(key) {
            match parse_messages(value, Role::User) {
                Some(list) => ex.input(list),
                None if key == "ai.prompt" => {
                    ex.input(vec![Msg::text(Role::User, value_text(value))])
                }
                None => {}
            }
        }
    }
    let mut output = Vec::new();
    for key in ["ai.response.text", "ai.result.text"] {
        if let Some(text) = str_attr(a, key) {
            output.push(Msg::text(
                Role::Assistant,
                value_text(&Value::String(text.into())),
            ));
            break;
        }
    }
    for key in ["ai.response.toolCalls", "ai.result.toolCalls"] {
        if let Some(Value::Array(calls)) = a.get(key).map(|v| structured(v).into_owned()) {
            output.extend(calls.iter().map(tool_call_from));
            break;
        }
    }
    ex.output(output);
    if let Some(name) = str_attr(a, "ai.toolCall.name") {
        let id = str_attr(a, "ai.toolCall.id").map(str::to_string);
        let args = a
            .get("ai.toolCall.args")
            .or_else(|| a.get("ai.toolCall.input"));
        ex.input(vec![Msg::tool_call(
            Some(name.into()),
            id.clone(),
            args.unwrap_or(&Value::Null),
        )]);
        if let Some(result) = a
            .get("ai.toolCall.result")
            .or_else(|| a.get("ai.toolCall.output"))
        {
            ex.output(vec![Msg::tool_result(Some(name.into()), id, result)]);
        }
    }
}

/// Langfuse, Braintrust, Traceloop entities and generic keys: input/output pairs whose meaning
/// depends on the span's type.
fn wrappers(span: &SpanView, ex: &mut Extracted) {
    let a = &span.attributes;
    let bt = a
        .get("braintrust.span_attributes")
        .map(|v| structured(v).into_owned());
    let bt_type = bt
        .as_ref()
        .and_then(|v| v.get("type"))
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    let sources: [(Option<String>, &str, &str, Option<String>); 3] = [
        (
            str_attr(a, "langfuse.observation.type").map(str::to_ascii_lowercase),
            "langfuse.observation.input",
            "langfuse.observation.output",
            str_attr(a, "langfuse.observation.name").map(str::to_string),
        ),
        (
            bt_type,
            "braintrust.input_json",
            "braintrust.output_json",
            bt.as_ref()
                .and_then(|v| v.get("name"))
                .and_then(Value::as_str)
                .map(str::to_string),
        ),
        (
            str_attr(a, "traceloop.span.kind").map(str::to_ascii_lowercase),
            "traceloop.entity.input",
            "traceloop.entity.output",
            str_attr(a, "traceloop.entity.name").map(str::to_string),
        ),
    ];
    for (kind, input_key, output_key, name) in sources {
        let (input, output) = (a.get(input_key), a.get(output_key));
        if input.is_none() && output.is_none() {
            continue;
        }
        let input = input.map(|v| unwrap_call_args(&structured(v)));
        let output = output.map(|v| structured(v).into_owned());
        match kind.as_deref().unwrap_or_default() {
            "tool" | "function" => {
                let name = name.or(Some(span.name.clone()));
                if let Some(input) = &input {
                    ex.input(vec![Msg::tool_call(name.clone(), None, input)]);
                }
                if let Some(output) = &output {
                    ex.output(vec![Msg::tool_result(name, None, output)]);
                }
            }
            "generation" | "llm" => {
                if let Some(list) = input.as_ref().and_then(|v| parse_messages(v, Role::User)) {
                    ex.input(list);
                }
                match output
                    .as_ref()
                    .map(|v| (v, parse_messages(v, Role::Assistant)))
                {
                    Some((_, Some(list))) => ex.output(list),
                    Some((Value::String(text), None)) => {
                        ex.output(vec![Msg::text(Role::Assistant, value_text(&json!(text)))])
                    }
                    _ => {}
                }
            }
            _ => io_fallback(input.as_ref(), output.as_ref(), ex),
        }
    }
    for key in ["messages", "prompt", "input", "choices"] {
        if a.contains_key(key) {
            io_fallback(a.get(key), None, ex);
        }
    }
    for key in ["output", "result", "response"] {
        if a.contains_key(key) {
            io_fallback(None, a.get(key), ex);
        }
    }
}

/// Traceloop writes task inputs as `{"args": [...], "kwargs": {...}}`.
fn unwrap_call_args(value: &Value) -> Value {
    if let Value::Object(obj) = value {
        if obj.contains_key("args") && obj.len() <= 2 {
            let args = obj
                .get("args")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let kwargs = obj
                .get("kwargs")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            return match (args.len(), kwargs.is_empty()) {
                (1, true) => args[0].clone(),
                (0, false) => Value::Object(kwargs),
                (0, true) => Value::Null,
                _ => value.clone(),
            };
        }
    }
    value.clone()
}

/// Inputs and outputs of non-LLM spans: conversation when they hold messages, otherwise plain
/// text kept for traces that have nothing better.
fn io_fallback(input: Option<&Value>, output: Option<&Value>, ex: &mut Extracted) {
    if let Some(input) = input {
        match parse_messages(input, Role::User) {
            Some(list) => ex.input(list),
            None => push_fallback(input, Role::User, ex),
        }
    }
    if let Some(output) = output {
        match parse_messages(output, Role::Assistant) {
            Some(list) => ex.output(list),
            None => push_fallback(output, Role::Assistant, ex),
        }
    }
}

fn push_fallback(value: &Value, role: Role, ex: &mut Extracted) {
    let text = value_text(value);
    if !text.is_empty() {
        ex.fallback.push(Msg::text(role, text));
    }
}

/// Error status and exception events (on the span or as log records of it).
fn errors(span: &SpanView, logs: &[&LogView], ex: &mut Extracted) {
    let exceptions = span
        .events
        .iter()
        .filter(|e| e.name == "exception")
        .map(|e| &e.attributes)
        .chain(
            logs.iter()
                .filter(|l| {
                    l.attributes.contains_key("exception.type")
                        || l.attributes.contains_key("exception.message")
                })
                .map(|l| &l.attributes),
        );
    for attrs in exceptions {
        let kind = str_attr(attrs, "exception.type").unwrap_or("exception");
        let message = str_attr(attrs, "exception.message").unwrap_or_default();
        ex.errors.push(
            format!("{}: {kind}: {message}", span.name)
                .trim_end_matches([':', ' '])
                .to_string(),
        );
    }
    if span.status.code == 2 {
        let message = span.status.message.trim();
        let covered = ex
            .errors
            .iter()
            .any(|e| message.is_empty() || e.contains(message));
        if !covered || ex.errors.is_empty() {
            let text = if message.is_empty() {
                format!("{} failed", span.name)
            } else {
                format!("{}: {message}", span.name)
            };
            ex.errors.push(text);
        }
    }
}
