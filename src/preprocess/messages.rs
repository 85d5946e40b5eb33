//! Chat messages in the shapes instrumentations write them — OpenAI chat (`content`, `tool_calls`,
//! `tool_call_id`), OTel GenAI parts (`parts: [{type: text|tool_call|tool_call_response|…}]`),
//! Vercel AI SDK parts (`tool-call`, `tool-result`), Anthropic-style blocks (`tool_use`,
//! `tool_result`), LangChain roles (`human`, `ai`) — parsed into one form.

use super::values::{canonical_json, message_text, parse_json_str};
use super::{Kind, Role};
use serde_json::Value;

/// One conversation item before it is placed in the trace's conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub role: Role,
    pub kind: Kind,
    /// Tool name for calls and results.
    pub name: Option<String>,
    /// Tool call id, used to name results whose message does not.
    pub id: Option<String>,
    pub text: String,
}

impl Msg {
    pub fn text(role: Role, text: impl Into<String>) -> Msg {
        Msg {
            role,
            kind: Kind::Text,
            name: None,
            id: None,
            text: text.into(),
        }
    }

    pub fn tool_call(name: Option<String>, id: Option<String>, arguments: &Value) -> Msg {
        Msg {
            role: Role::Assistant,
            kind: Kind::ToolCall,
            name,
            id,
            text: value_text(arguments),
        }
    }

    pub fn tool_result(name: Option<String>, id: Option<String>, result: &Value) -> Msg {
        Msg {
            role: Role::Tool,
            kind: Kind::ToolResult,
            name,
            id,
            text: value_text(result),
        }
    }
}

pub fn role_of(text: &str) -> Option<Role> {
    Some(match text.to_ascii_lowercase().as_str() {
        "system" | "developer" => Role::System,
        "user" | "human" => Role::User,
        "assistant" | "ai" | "model" | "bot" => Role::Assistant,
        "tool" | "function" | "ipython" => Role::Tool,
        _ => return None,
    })
}

/// Text of a value: strings as they are (JSON strings are normalized so `{"a":1}` and
/// `{ "a": 1 }` compare equal), anything else as compact canonical JSON.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => match parse_json_str(s) {
            Some(parsed @ (Value::Object(_) | Value::Array(_))) => canonical_json(&parsed),
            _ => message_text(s),
        },
        other => canonical_json(other),
    }
}

/// Parses a list of chat messages (or a single message object). Returns `None` when the value
/// does not look like messages at all, so callers can fall back to plain text.
pub fn parse_messages(value: &Value, default_role: Role) -> Option<Vec<Msg>> {
    match value {
        Value::String(s) => parse_messages(&parse_json_str(s)?, default_role),
        Value::Array(items) if !items.is_empty() && items.iter().all(is_message) => {
            let mut out = Vec::new();
            for item in items {
                parse_message(item, default_role, &mut out);
            }
            Some(out)
        }
        Value::Object(obj) if is_message(value) && obj.contains_key("role") => {
            let mut out = Vec::new();
            parse_message(value, default_role, &mut out);
            Some(out)
        }
        Value::Object(obj) => {
            // Wrappers: {messages: [...]}, {system, prompt, messages} (Vercel ai.prompt),
            // {choices: [{message}]} (an OpenAI response), {message: {...}}.
            let mut out = Vec::new();
            let mut found = false;
            if let Some(system) = obj.get("system").filter(|v| v.is_string()) {
                out.push(Msg::text(Role::System, value_text(system)));
                found = true;
            }
            for key in ["messages", "input_messages", "inputs"] {
                if let Some(messages) = obj.get(key).and_then(|v| parse_messages(v, default_role)) {
                    out.extend(messages);
                    found = true;
                    break;
                }
            }
            if let Some(prompt) = obj.get("prompt").filter(|v| v.is_string()) {
                out.push(Msg::text(Role::User, value_text(prompt)));
                found = true;
            }
            if let Some(Value::Array(choices)) = obj.get("choices") {
                for choice in choices {
                    if let Some(message) = choice.get("message") {
                        parse_message(message, Role::Assistant, &mut out);
                        found = true;
                    } else if let Some(text) = choice.get("text").filter(|v| v.is_string()) {
                        out.push(Msg::text(Role::Assistant, value_text(text)));
                        found = true;
                    }
                }
            }
            if !found {
                if let Some(message) = obj.get("message").filter(|m| is_message(m)) {
                    parse_message(message, default_role, &mut out);
                    found = true;
                }
            }
            found.then_some(out)
        }
        _ => None,
    }
}

fn is_message(value: &Value) -> bool {
    let Some(obj) = value.as_object() else {
        return false;
    };
    obj.contains_key("role")
        || (obj.contains_key("type")
            && obj
                .get("type")
                .and_then(Value::as_str)
                .and_then(role_of)
                .is_some()
            && obj.contains_key("content"))
        || obj.contains_key("parts") && obj.get("parts").is_some_and(Value::is_array)
        || (obj.contains_key("tool_calls") && obj.contains_key("content"))
        || obj.contains_key("finish_reason") && obj.contains_key("message")
}

/// One message, possibly several items (text plus tool calls).
pub fn parse_message(value: &Value, default_role: Role, out: &mut Vec<Msg>) {
    let Some(obj) = value.as_object() else {
        if let Some(text) = value.as_str() {
            push_text(out, default_role, text);
        }
        return;
    };
    // A `gen_ai.choice` body or OpenAI choice: {index, finish_reason, message}.
    if let Some(message) = obj.get("message").filter(|m| m.is_object()) {
        if !obj.contains_key("role") && !obj.contains_key("content") {
            return parse_message(message, Role::Assistant, out);
        }
    }
    let role = obj
        .get("role")
        .or_else(|| obj.get("type"))
        .and_then(Value::as_str)
        .and_then(role_of)
        .unwrap_or(default_role);
    let tool_call_id = obj
        .get("tool_call_id")
        .or_else(|| obj.get("toolCallId"))
        .or_else(|| {
            if role == Role::Tool {
                obj.get("id")
            } else {
                None
            }
        })
        .and_then(Value::as_str)
        .map(str::to_string);
    let name = obj.get("name").and_then(Value::as_str).map(str::to_string);
    let content = obj.get("parts").or_else(|| obj.get("content"));
    match content {
        Some(Value::Array(parts)) => {
            for part in parts {
                parse_part(part, role, out);
            }
        }
        Some(Value::Object(_)) => parse_part(content.expect("matched"), role, out),
        Some(Value::String(text)) if role == Role::Tool => {
            out.push(Msg::tool_result(
                name.clone(),
                tool_call_id.clone(),
                &Value::String(text.clone()),
            ));
        }
        Some(Value::String(text)) => push_text(out, role, text),
        Some(other @ (Value::Number(_) | Value::Bool(_))) => {
            push_text(out, role, &other.to_string())
        }
        _ => {}
    }
    if let Some(Value::Array(calls)) = obj.get("tool_calls").or_else(|| obj.get("toolCalls")) {
        for call in calls {
            out.push(tool_call_from(call));
        }
    }
    // Legacy OpenAI `function_call: {name, arguments}`.
    if let Some(call) = obj.get("function_call").filter(|c| c.is_object()) {
        out.push(tool_call_from(call));
    }
}

fn push_text(out: &mut Vec<Msg>, role: Role, text: &str) {
    let text = message_text(text);
    if !text.trim().is_empty() {
        out.push(Msg::text(role, text));
    }
}

/// `{id, type: function, function: {name, arguments}}`, `{id, name, arguments}`, Vercel
/// `{toolCallId, toolName, args}` and Anthropic `{id, name, input}`.
pub fn tool_call_from(call: &Value) -> Msg {
    let function = call.get("function").unwrap_or(call);
    let name = function
        .get("name")
        .or_else(|| call.get("toolName"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let id = call
        .get("id")
        .or_else(|| call.get("toolCallId"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let arguments = function
        .get("arguments")
        .or_else(|| call.get("args"))
        .or_else(|| call.get("input"))
        .unwrap_or(&Value::Null);
    Msg::tool_call(name, id, arguments)
}

fn parse_part(part: &Value, role: Role, out: &mut Vec<Msg>) {
    let Some(obj) = part.as_object() else {
        if let Some(text) = part.as_str() {
            push_text(out, role, text);
        }
        return;
    };
    let kind = obj.get("type").and_then(Value::as_str).unwrap_or("text");
    let text_field = || {
        obj.get("content")
            .or_else(|| obj.get("text"))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    match kind {
        "text" | "input_text" | "output_text" => push_text(out, role, text_field()),
        "reasoning" | "thinking" => {
            let text = message_text(
                obj.get("content")
                    .or_else(|| obj.get("text"))
                    .or_else(|| obj.get("thinking"))
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            );
            if !text.trim().is_empty() {
                out.push(Msg {
                    role,
                    kind: Kind::Reasoning,
                    name: None,
                    id: None,
                    text,
                });
            }
        }
        "tool_call" | "tool-call" | "tool_use" | "function_call" | "server_tool_call" => {
            out.push(tool_call_from(part))
        }
        "tool_call_response"
        | "tool-result"
        | "tool_result"
        | "function_call_output"
        | "server_tool_call_response" => {
            let mut result = obj
                .get("response")
                .or_else(|| obj.get("result"))
                .or_else(|| obj.get("output"))
                .or_else(|| obj.get("content"))
                .unwrap_or(&Value::Null);
            // Vercel AI SDK 5 wraps results: `{"type": "json" | "text" | "error-text", "value"}`.
            if let (Some(Value::String(_)), Some(value)) = (
                result.get("type"),
                result
                    .get("value")
                    .filter(|_| result.as_object().is_some_and(|o| o.len() == 2)),
            ) {
                result = value;
            }
            let id = obj
                .get("id")
                .or_else(|| obj.get("toolCallId"))
                .or_else(|| obj.get("tool_use_id"))
                .or_else(|| obj.get("call_id"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let name = obj
                .get("name")
                .or_else(|| obj.get("toolName"))
                .and_then(Value::as_str)
                .map(str::to_string);
            out.push(Msg::tool_result(name, id, result));
        }
        "blob" | "image" | "image_url" | "input_image" | "input_audio" | "audio" | "file"
        | "uri" | "document" => {
            let mime = obj
                .get("mime_type")
                .or_else(|| obj.get("mimeType"))
                .or_else(|| obj.get("media_type"))
                .or_else(|| obj.get("modality"))
                .and_then(Value::as_str)
                .unwrap_or(kind);
            let reference = obj
                .get("uri")
                .or_else(|| obj.get("file_id"))
                .or_else(|| obj.get("url"))
                .or_else(|| obj.get("image_url").and_then(|u| u.get("url").or(Some(u))))
                .and_then(Value::as_str)
                .filter(|r| !r.starts_with("data:") && r.len() <= 200);
            let text = match reference {
                Some(r) => format!("[attachment {mime}: {r}]"),
                None => format!("[attachment {mime}]"),
            };
            out.push(Msg::text(role, text));
        }
        _ => {
            // Unknown part types keep their text if they have any.
            let text = text_field();
            if !text.is_empty() {
                push_text(out, role, text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openai_genai_parts_and_vercel_shapes_parse_to_the_same_items() {
        let openai = json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "18C sunny"}
        ]);
        let genai = json!([
            {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
            {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
            {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "get_weather", "arguments": {"city": "Paris"}}]},
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "result": "18C sunny"}]}
        ]);
        let vercel = json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
            {"role": "assistant", "content": [{"type": "tool-call", "toolCallId": "c1", "toolName": "get_weather", "args": {"city": "Paris"}}]},
            {"role": "tool", "content": [{"type": "tool-result", "toolCallId": "c1", "toolName": "get_weather", "result": "18C sunny"}]}
        ]);
        let a = parse_messages(&openai, Role::User).unwrap();
        let b = parse_messages(&genai, Role::User).unwrap();
        let c = parse_messages(&vercel, Role::User).unwrap();
        let texts = |m: &[Msg]| {
            m.iter()
                .map(|m| (m.role, m.kind, m.text.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(texts(&a), texts(&b));
        assert_eq!(texts(&a), texts(&c));
        assert_eq!(a[2].text, r#"{"city":"Paris"}"#);
        assert_eq!(a[2].name.as_deref(), Some("get_weather"));
        assert_eq!(a[3].id.as_deref(), Some("c1"));
    }

    #[test]
    fn wrappers_and_non_messages() {
        let prompt = json!({"system": "S", "prompt": "P"});
        let items = parse_messages(&prompt, Role::User).unwrap();
        assert_eq!(
            items,
            vec![Msg::text(Role::System, "S"), Msg::text(Role::User, "P")]
        );
        let choices =
            json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}}]});
        assert_eq!(
            parse_messages(&choices, Role::User).unwrap(),
            vec![Msg::text(Role::Assistant, "Hi")]
        );
        assert!(parse_messages(&json!({"city": "Paris"}), Role::User).is_none());
        assert!(parse_messages(&json!("plain text"), Role::User).is_none());
        assert!(parse_messages(&json!([1, 2, 3]), Role::User).is_none());
    }

    #[test]
    fn attachments_become_placeholders() {
        let message = json!({"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "blob", "modality": "image", "mime_type": "image/jpeg", "content": "AAAA"},
            {"type": "uri", "uri": "https://example.com/cat.png", "modality": "image"}
        ]});
        let items = parse_messages(&json!([message]), Role::User).unwrap();
        let texts: Vec<_> = items.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "What is this?",
                "[attachment image_url]",
                "[attachment image/jpeg]",
                "[attachment image: https://example.com/cat.png]"
            ]
        );
    }
}
