//! OTLP/JSON decoding. OTLP/JSON is not plain proto3 JSON: trace and span ids are hex, enums are
//! integers, 64-bit integers may be strings or numbers, and unknown fields are ignored. The serde
//! support in `opentelemetry-proto` rejects numeric `timeUnixNano` and numeric `intValue`, so the
//! mapping is done here, field by field, leniently where the spec allows it.
//!
//! An id that is not valid hex does not fail the whole request: it decodes to a wrong-length id,
//! which validation then rejects span by span (OTLP partial success).

use base64::Engine;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use serde_json::{Map, Value};

/// Why a JSON payload could not be decoded at all (answered with 400 / INVALID_ARGUMENT).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(String);

type Obj = Map<String, Value>;

pub(crate) fn invalid_json(message: String) -> JsonError {
    JsonError(format!("invalid JSON: {message}"))
}

pub fn decode_traces(body: &[u8]) -> Result<ExportTraceServiceRequest, JsonError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| JsonError(format!("invalid JSON: {e}")))?;
    let root = as_object(&value, "request")?;
    Ok(ExportTraceServiceRequest {
        resource_spans: array(root, "resourceSpans", "resource_spans")?
            .iter()
            .map(resource_spans)
            .collect::<Result<_, _>>()?,
    })
}

fn resource_spans(value: &Value) -> Result<ResourceSpans, JsonError> {
    let obj = as_object(value, "resourceSpans[]")?;
    Ok(ResourceSpans {
        resource: field(obj, "resource", "resource")
            .map(resource)
            .transpose()?,
        scope_spans: array(obj, "scopeSpans", "scope_spans")?
            .iter()
            .map(scope_spans)
            .collect::<Result<_, _>>()?,
        schema_url: string(obj, "schemaUrl", "schema_url")?,
    })
}

pub(crate) fn resource(value: &Value) -> Result<Resource, JsonError> {
    let obj = as_object(value, "resource")?;
    Ok(Resource {
        attributes: attributes(obj)?,
        dropped_attributes_count: uint(obj, "droppedAttributesCount", "dropped_attributes_count")?
            as u32,
        ..Default::default()
    })
}

fn scope_spans(value: &Value) -> Result<ScopeSpans, JsonError> {
    let obj = as_object(value, "scopeSpans[]")?;
    Ok(ScopeSpans {
        scope: field(obj, "scope", "scope").map(scope).transpose()?,
        spans: array(obj, "spans", "spans")?
            .iter()
            .map(span_from)
            .collect::<Result<_, _>>()?,
        schema_url: string(obj, "schemaUrl", "schema_url")?,
    })
}

pub(crate) fn scope(value: &Value) -> Result<InstrumentationScope, JsonError> {
    let obj = as_object(value, "scope")?;
    Ok(InstrumentationScope {
        name: string(obj, "name", "name")?,
        version: string(obj, "version", "version")?,
        attributes: attributes(obj)?,
        dropped_attributes_count: uint(obj, "droppedAttributesCount", "dropped_attributes_count")?
            as u32,
    })
}

fn span_from(value: &Value) -> Result<Span, JsonError> {
    let obj = as_object(value, "span")?;
    Ok(Span {
        trace_id: id(obj, "traceId", "trace_id", 16)?,
        span_id: id(obj, "spanId", "span_id", 8)?,
        trace_state: string(obj, "traceState", "trace_state")?,
        parent_span_id: id(obj, "parentSpanId", "parent_span_id", 8)?,
        flags: uint(obj, "flags", "flags")? as u32,
        name: string(obj, "name", "name")?,
        kind: enumeration(
            obj,
            "kind",
            "kind",
            &[
                "SPAN_KIND_UNSPECIFIED",
                "SPAN_KIND_INTERNAL",
                "SPAN_KIND_SERVER",
                "SPAN_KIND_CLIENT",
                "SPAN_KIND_PRODUCER",
                "SPAN_KIND_CONSUMER",
            ],
        )?,
        start_time_unix_nano: uint(obj, "startTimeUnixNano", "start_time_unix_nano")?,
        end_time_unix_nano: uint(obj, "endTimeUnixNano", "end_time_unix_nano")?,
        attributes: attributes(obj)?,
        dropped_attributes_count: uint(obj, "droppedAttributesCount", "dropped_attributes_count")?
            as u32,
        events: array(obj, "events", "events")?
            .iter()
            .map(event)
            .collect::<Result<_, _>>()?,
        dropped_events_count: uint(obj, "droppedEventsCount", "dropped_events_count")? as u32,
        links: array(obj, "links", "links")?
            .iter()
            .map(link)
            .collect::<Result<_, _>>()?,
        dropped_links_count: uint(obj, "droppedLinksCount", "dropped_links_count")? as u32,
        status: field(obj, "status", "status").map(status).transpose()?,
    })
}

fn event(value: &Value) -> Result<span::Event, JsonError> {
    let obj = as_object(value, "event")?;
    Ok(span::Event {
        time_unix_nano: uint(obj, "timeUnixNano", "time_unix_nano")?,
        name: string(obj, "name", "name")?,
        attributes: attributes(obj)?,
        dropped_attributes_count: uint(obj, "droppedAttributesCount", "dropped_attributes_count")?
            as u32,
    })
}

fn link(value: &Value) -> Result<span::Link, JsonError> {
    let obj = as_object(value, "link")?;
    Ok(span::Link {
        trace_id: id(obj, "traceId", "trace_id", 16)?,
        span_id: id(obj, "spanId", "span_id", 8)?,
        trace_state: string(obj, "traceState", "trace_state")?,
        attributes: attributes(obj)?,
        dropped_attributes_count: uint(obj, "droppedAttributesCount", "dropped_attributes_count")?
            as u32,
        flags: uint(obj, "flags", "flags")? as u32,
    })
}

fn status(value: &Value) -> Result<Status, JsonError> {
    let obj = as_object(value, "status")?;
    Ok(Status {
        message: string(obj, "message", "message")?,
        code: enumeration(
            obj,
            "code",
            "code",
            &["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"],
        )?,
    })
}

pub(crate) fn attributes(obj: &Obj) -> Result<Vec<KeyValue>, JsonError> {
    array(obj, "attributes", "attributes")?
        .iter()
        .map(key_value)
        .collect()
}

fn key_value(value: &Value) -> Result<KeyValue, JsonError> {
    let obj = as_object(value, "attribute")?;
    Ok(KeyValue {
        key: string(obj, "key", "key")?,
        value: field(obj, "value", "value")
            .map(any_value)
            .transpose()?
            .flatten(),
        ..Default::default()
    })
}

pub(crate) fn any_value(value: &Value) -> Result<Option<AnyValue>, JsonError> {
    let obj = as_object(value, "value")?;
    use any_value::Value as V;
    let inner = if let Some(v) = field(obj, "stringValue", "string_value") {
        V::StringValue(
            v.as_str()
                .ok_or_else(|| type_error("stringValue", "a string"))?
                .to_string(),
        )
    } else if let Some(v) = field(obj, "boolValue", "bool_value") {
        V::BoolValue(
            v.as_bool()
                .ok_or_else(|| type_error("boolValue", "a boolean"))?,
        )
    } else if let Some(v) = field(obj, "intValue", "int_value") {
        V::IntValue(int64(v, "intValue")?)
    } else if let Some(v) = field(obj, "doubleValue", "double_value") {
        V::DoubleValue(double(v)?)
    } else if let Some(v) = field(obj, "arrayValue", "array_value") {
        let values = array(as_object(v, "arrayValue")?, "values", "values")?
            .iter()
            .map(|item| any_value(item).map(Option::unwrap_or_default))
            .collect::<Result<_, _>>()?;
        V::ArrayValue(ArrayValue { values })
    } else if let Some(v) = field(obj, "kvlistValue", "kvlist_value") {
        let values = array(as_object(v, "kvlistValue")?, "values", "values")?
            .iter()
            .map(key_value)
            .collect::<Result<_, _>>()?;
        V::KvlistValue(KeyValueList { values })
    } else if let Some(v) = field(obj, "bytesValue", "bytes_value") {
        let text = v
            .as_str()
            .ok_or_else(|| type_error("bytesValue", "a base64 string"))?;
        V::BytesValue(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| JsonError(format!("bytesValue is not base64: {e}")))?,
        )
    } else {
        return Ok(None);
    };
    Ok(Some(AnyValue { value: Some(inner) }))
}

pub(crate) fn field<'a>(obj: &'a Obj, camel: &str, snake: &str) -> Option<&'a Value> {
    obj.get(camel)
        .or_else(|| obj.get(snake))
        .filter(|v| !v.is_null())
}

pub(crate) fn as_object<'a>(value: &'a Value, what: &str) -> Result<&'a Obj, JsonError> {
    value
        .as_object()
        .ok_or_else(|| type_error(what, "an object"))
}

pub(crate) fn array<'a>(obj: &'a Obj, camel: &str, snake: &str) -> Result<&'a [Value], JsonError> {
    match field(obj, camel, snake) {
        None => Ok(&[]),
        Some(v) => v
            .as_array()
            .map(Vec::as_slice)
            .ok_or_else(|| type_error(camel, "an array")),
    }
}

pub(crate) fn string(obj: &Obj, camel: &str, snake: &str) -> Result<String, JsonError> {
    match field(obj, camel, snake) {
        None => Ok(String::new()),
        Some(v) => v
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| type_error(camel, "a string")),
    }
}

/// Unsigned 64-bit field: JSON number or decimal string.
pub(crate) fn uint(obj: &Obj, camel: &str, snake: &str) -> Result<u64, JsonError> {
    match field(obj, camel, snake) {
        None => Ok(0),
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| type_error(camel, "a non-negative integer")),
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| type_error(camel, "a non-negative integer")),
        Some(_) => Err(type_error(camel, "an integer or a string of digits")),
    }
}

fn int64(value: &Value, name: &str) -> Result<i64, JsonError> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| type_error(name, "a 64-bit integer")),
        Value::String(s) => s.parse().map_err(|_| type_error(name, "a 64-bit integer")),
        _ => Err(type_error(name, "an integer or a string of digits")),
    }
}

fn double(value: &Value) -> Result<f64, JsonError> {
    match value {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| type_error("doubleValue", "a number")),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other
                .parse()
                .map_err(|_| type_error("doubleValue", "a number")),
        },
        _ => Err(type_error("doubleValue", "a number")),
    }
}

/// Enums are integers in OTLP/JSON; their names are accepted too, as proto3 JSON writes them.
pub(crate) fn enumeration(
    obj: &Obj,
    camel: &str,
    snake: &str,
    names: &[&str],
) -> Result<i32, JsonError> {
    match field(obj, camel, snake) {
        None => Ok(0),
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(|| type_error(camel, "an enum integer")),
        Some(Value::String(s)) => names
            .iter()
            .position(|name| name == s)
            .map(|i| i as i32)
            .ok_or_else(|| JsonError(format!("{camel}: unknown value `{s}`"))),
        Some(_) => Err(type_error(camel, "an enum integer")),
    }
}

/// A hex id. A malformed one becomes an id of the wrong length so validation rejects just that
/// span; an empty one stays empty (no parent).
pub(crate) fn id(obj: &Obj, camel: &str, snake: &str, len: usize) -> Result<Vec<u8>, JsonError> {
    let text = string(obj, camel, snake)?;
    if text.is_empty() {
        return Ok(Vec::new());
    }
    match hex::decode(&text) {
        Ok(bytes) if bytes.len() == len => Ok(bytes),
        _ => Ok(vec![0xff; len + 1]),
    }
}

pub(crate) fn type_error(field: &str, expected: &str) -> JsonError {
    JsonError(format!("{field}: expected {expected}"))
}

/// The OTLP/JSON body of a successful export response.
pub fn export_response(rejected: u64, message: &str) -> Vec<u8> {
    partial_success_body("rejectedSpans", rejected, message)
}

/// The OTLP/JSON body of a successful logs export response.
pub fn logs_export_response(rejected: u64, message: &str) -> Vec<u8> {
    partial_success_body("rejectedLogRecords", rejected, message)
}

fn partial_success_body(counter: &str, rejected: u64, message: &str) -> Vec<u8> {
    let value = if rejected == 0 && message.is_empty() {
        serde_json::json!({})
    } else {
        serde_json::json!({"partialSuccess": {counter: rejected.to_string(), "errorMessage": message}})
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

/// The OTLP/JSON form of a `google.rpc.Status` error body.
pub fn status_body(code: i32, message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"code": code, "message": message})).unwrap_or_default()
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
