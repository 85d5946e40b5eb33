//! Value hygiene before anything reaches a model: attachments (data URIs, long base64 runs,
//! embedding vectors) shrink to short placeholders, and JSON is written canonically so the same
//! content compares equal whichever instrumentation serialized it.

use serde_json::{Map, Value};
use std::borrow::Cow;

/// A run of base64 characters this long is binary data, not prose.
const BASE64_RUN: usize = 200;
/// An array of this many numbers is a vector (embedding, logits), not content.
const VECTOR_LEN: usize = 16;

/// Parses a string that holds JSON (object, array or quoted string); `None` for plain text.
pub fn parse_json_str(text: &str) -> Option<Value> {
    let trimmed = text.trim_start();
    match trimmed.as_bytes().first() {
        Some(b'{' | b'[' | b'"') => serde_json::from_str(trimmed).ok(),
        _ => None,
    }
}

/// Parses a value that may be a JSON string into structured JSON; other values pass unchanged.
pub fn structured(value: &Value) -> Cow<'_, Value> {
    match value {
        Value::String(s) => match parse_json_str(s) {
            Some(parsed) => Cow::Owned(parsed),
            None => Cow::Borrowed(value),
        },
        other => Cow::Borrowed(other),
    }
}

/// Message text as read: trimmed. Attachments are stripped later, once per distinct message
/// (see `Conversation::merge`), not in every re-sent copy of the history.
pub fn message_text(text: &str) -> String {
    text.trim().to_string()
}

/// Replaces data URIs and long base64 runs with a placeholder. Borrowed when nothing changes,
/// which is the common case, so ordinary text costs one scan.
pub fn strip_attachments(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        // `data:<mime>;base64,<payload>`
        if bytes[i] == b'd' && bytes[i..].starts_with(b"data:") {
            if let Some(comma) = text[i..].find(',').filter(|&c| c < 100) {
                let header = &text[i + 5..i + comma];
                if header.ends_with(";base64") && !header.contains(char::is_whitespace) {
                    let mime = header.trim_end_matches(";base64");
                    let start = i + comma + 1;
                    let end = start + bytes[start..].iter().take_while(|b| is_base64(**b)).count();
                    let out = out.get_or_insert_with(|| String::with_capacity(text.len() / 2));
                    out.push_str(&text[copied..i]);
                    out.push_str(&format!(
                        "[attachment {}, {} bytes]",
                        if mime.is_empty() { "data" } else { mime },
                        (end - start) * 3 / 4
                    ));
                    copied = end;
                    i = end;
                    continue;
                }
            }
        }
        if is_base64(bytes[i]) {
            let run = bytes[i..].iter().take_while(|b| is_base64(**b)).count();
            if run >= BASE64_RUN {
                let out = out.get_or_insert_with(|| String::with_capacity(text.len() / 2));
                out.push_str(&text[copied..i]);
                out.push_str(&format!("[binary data, {} bytes]", run * 3 / 4));
                copied = i + run;
            }
            i += run;
            continue;
        }
        i += 1;
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut out) => {
            out.push_str(&text[copied..]);
            Cow::Owned(out)
        }
    }
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='
}

/// Compact JSON with sorted keys, attachments stripped and vectors collapsed.
pub fn canonical_json(value: &Value) -> String {
    serde_json::to_string(&sanitize(value)).unwrap_or_default()
}

fn sanitize(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(strip_attachments(s).into_owned()),
        Value::Array(items) if items.len() >= VECTOR_LEN && items.iter().all(Value::is_number) => {
            Value::String(format!("[vector of {} numbers]", items.len()))
        }
        Value::Array(items) => Value::Array(items.iter().map(sanitize).collect()),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::with_capacity(map.len());
            for key in keys {
                out.insert(key.clone(), sanitize(&map[key]));
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn attachments_shrink_and_prose_is_untouched() {
        let prose = "The user asked about data: limits, see https://x.io/a+b=c.";
        assert!(matches!(strip_attachments(prose), Cow::Borrowed(_)));
        let image = format!("look: data:image/png;base64,{} done", "QUJD".repeat(300));
        assert_eq!(
            strip_attachments(&image),
            "look: [attachment image/png, 900 bytes] done"
        );
        let blob = format!("x {} y", "A".repeat(400));
        assert_eq!(strip_attachments(&blob), "x [binary data, 300 bytes] y");
        let short_hash = "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(strip_attachments(short_hash), short_hash);
    }

    #[test]
    fn canonical_json_sorts_keys_and_collapses_vectors() {
        let a = json!({"b": 1, "a": {"y": [1, 2], "x": "data:image/gif;base64,R0lGOD=="}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":"[attachment image/gif, 6 bytes]","y":[1,2]},"b":1}"#
        );
        let embedding =
            json!({"embedding": (0..384).map(|i| i as f64 / 384.0).collect::<Vec<_>>()});
        assert_eq!(
            canonical_json(&embedding),
            r#"{"embedding":"[vector of 384 numbers]"}"#
        );
        assert_eq!(parse_json_str(" {\"a\": 1}"), Some(json!({"a": 1})));
        assert_eq!(parse_json_str("{not json"), None);
        assert_eq!(parse_json_str("plain"), None);
    }
}
