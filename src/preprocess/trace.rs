//! A trace as plain data: every span (and log record) with its attributes as JSON values. This is
//! what the default preprocessor walks and, serialized, the `trace` object a JavaScript plugin
//! receives.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogsData;
use opentelemetry_proto::tonic::trace::v1::TracesData;
use prost::Message;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub type Attributes = Map<String, Value>;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TraceView {
    pub trace_id: String,
    pub spans: Vec<SpanView>,
    /// Log records of the trace (GenAI events are often emitted as logs).
    pub logs: Vec<LogView>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SpanView {
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub kind: i32,
    /// Nanoseconds as decimal strings, as OTLP/JSON writes 64-bit integers.
    #[serde(
        serialize_with = "as_string",
        deserialize_with = "from_string_or_number"
    )]
    pub start_time_unix_nano: u64,
    #[serde(
        serialize_with = "as_string",
        deserialize_with = "from_string_or_number"
    )]
    pub end_time_unix_nano: u64,
    pub status: StatusView,
    pub attributes: Attributes,
    pub events: Vec<EventView>,
    pub links: Vec<LinkView>,
    pub resource: Attributes,
    pub scope: ScopeView,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusView {
    /// 0 unset, 1 ok, 2 error.
    pub code: i32,
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EventView {
    pub name: String,
    #[serde(
        serialize_with = "as_string",
        deserialize_with = "from_string_or_number"
    )]
    pub time_unix_nano: u64,
    pub attributes: Attributes,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LinkView {
    pub trace_id: String,
    pub span_id: String,
    pub attributes: Attributes,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ScopeView {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LogView {
    pub span_id: String,
    #[serde(
        serialize_with = "as_string",
        deserialize_with = "from_string_or_number"
    )]
    pub time_unix_nano: u64,
    /// `event_name`, or the `event.name` attribute of older SDKs.
    pub event_name: String,
    pub severity_text: String,
    pub body: Value,
    pub attributes: Attributes,
    pub resource: Attributes,
    pub scope: ScopeView,
}

fn from_string_or_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<u64, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(s) => s.parse().map_err(serde::de::Error::custom),
        Value::Number(n) => Ok(n.as_u64().unwrap_or(0)),
        _ => Ok(0),
    }
}

fn as_string<S: serde::Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("undecodable TracesData: {0}")]
    Traces(prost::DecodeError),
    #[error("undecodable LogsData: {0}")]
    Logs(prost::DecodeError),
}

impl TraceView {
    /// Builds the view from an assembled trace's `TracesData` and `LogsData` bytes.
    pub fn decode(trace_id: &[u8], spans: &[u8], logs: &[u8]) -> Result<TraceView, DecodeError> {
        let traces = TracesData::decode(spans).map_err(DecodeError::Traces)?;
        let logs = LogsData::decode(logs).map_err(DecodeError::Logs)?;
        Ok(Self::from_data(trace_id, traces, logs))
    }

    pub fn from_data(trace_id: &[u8], traces: TracesData, logs: LogsData) -> TraceView {
        let mut view = TraceView {
            trace_id: hex::encode(trace_id),
            ..Default::default()
        };
        for rs in traces.resource_spans {
            let resource = resource_of(rs.resource);
            for ss in rs.scope_spans {
                let scope = scope_of(ss.scope);
                for span in ss.spans {
                    let status = span.status.unwrap_or_default();
                    view.spans.push(SpanView {
                        span_id: hex::encode(&span.span_id),
                        parent_span_id: hex::encode(&span.parent_span_id),
                        name: span.name,
                        kind: span.kind,
                        start_time_unix_nano: span.start_time_unix_nano,
                        end_time_unix_nano: span.end_time_unix_nano,
                        status: StatusView {
                            code: status.code,
                            message: status.message,
                        },
                        attributes: attributes(span.attributes),
                        events: span
                            .events
                            .into_iter()
                            .map(|e| EventView {
                                name: e.name,
                                time_unix_nano: e.time_unix_nano,
                                attributes: attributes(e.attributes),
                            })
                            .collect(),
                        links: span
                            .links
                            .into_iter()
                            .map(|l| LinkView {
                                trace_id: hex::encode(&l.trace_id),
                                span_id: hex::encode(&l.span_id),
                                attributes: attributes(l.attributes),
                            })
                            .collect(),
                        resource: resource.clone(),
                        scope: scope.clone(),
                    });
                }
            }
        }
        for rl in logs.resource_logs {
            let resource = resource_of(rl.resource);
            for sl in rl.scope_logs {
                let scope = scope_of(sl.scope);
                for record in sl.log_records {
                    let attributes = attributes(record.attributes);
                    let event_name = if record.event_name.is_empty() {
                        attributes
                            .get("event.name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string()
                    } else {
                        record.event_name
                    };
                    view.logs.push(LogView {
                        span_id: hex::encode(&record.span_id),
                        time_unix_nano: record.time_unix_nano.max(record.observed_time_unix_nano),
                        event_name,
                        severity_text: record.severity_text,
                        body: record.body.map(any_to_json).unwrap_or(Value::Null),
                        attributes,
                        resource: resource.clone(),
                        scope: scope.clone(),
                    });
                }
            }
        }
        view
    }
}

/// Shared by spans and log records: their resource and scope come in the same shape.
fn resource_of(resource: Option<opentelemetry_proto::tonic::resource::v1::Resource>) -> Attributes {
    resource
        .map(|r| attributes(r.attributes))
        .unwrap_or_default()
}

fn scope_of(
    scope: Option<opentelemetry_proto::tonic::common::v1::InstrumentationScope>,
) -> ScopeView {
    scope
        .map(|s| ScopeView {
            name: s.name,
            version: s.version,
        })
        .unwrap_or_default()
}

pub fn attributes(kvs: Vec<KeyValue>) -> Attributes {
    let mut map = Map::with_capacity(kvs.len());
    for kv in kvs {
        map.insert(kv.key, kv.value.map(any_to_json).unwrap_or(Value::Null));
    }
    map
}

/// OTLP values as JSON. Bytes never reach a model, so they become a short placeholder.
pub fn any_to_json(value: AnyValue) -> Value {
    use any_value::Value as V;
    match value.value {
        None => Value::Null,
        Some(V::StringValue(s)) => Value::String(s),
        Some(V::BoolValue(b)) => Value::Bool(b),
        Some(V::IntValue(i)) => Value::from(i),
        Some(V::DoubleValue(d)) => {
            serde_json::Number::from_f64(d).map_or(Value::Null, Value::Number)
        }
        Some(V::ArrayValue(a)) => Value::Array(a.values.into_iter().map(any_to_json).collect()),
        Some(V::KvlistValue(kv)) => Value::Object(attributes(kv.values)),
        Some(V::BytesValue(b)) => Value::String(format!("[binary {} bytes]", b.len())),
        #[allow(unreachable_patterns)]
        Some(_) => Value::Null,
    }
}

/// Reads an OTLP/JSON file: one export request, or JSON Lines of requests (as the Collector's
/// file exporter writes them), each with `resourceSpans` and/or `resourceLogs`. All spans and log
/// records are gathered under the first trace id found.
pub fn from_otlp_json(text: &str) -> Result<TraceView, String> {
    let mut traces = TracesData::default();
    let mut logs = LogsData::default();
    let documents: Vec<Value> = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items,
        Ok(value) => vec![value],
        Err(_) => text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                serde_json::from_str(line).map_err(|e| format!("line {}: invalid JSON: {e}", i + 1))
            })
            .collect::<Result<_, _>>()?,
    };
    for document in &documents {
        let object = document
            .as_object()
            .ok_or("expected an OTLP/JSON export request (an object)")?;
        if object.contains_key("resourceSpans") || object.contains_key("resource_spans") {
            let bytes = serde_json::to_vec(document).map_err(|e| e.to_string())?;
            let request = crate::otlp::json::decode_traces(&bytes).map_err(|e| e.to_string())?;
            traces.resource_spans.extend(request.resource_spans);
        }
        if object.contains_key("resourceLogs") || object.contains_key("resource_logs") {
            let request =
                crate::otlp::json_logs::decode_logs_value(document).map_err(|e| e.to_string())?;
            logs.resource_logs.extend(request.resource_logs);
        }
    }
    let trace_id = traces
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.trace_id.clone())
        .next()
        .unwrap_or_default();
    if trace_id.is_empty() && logs.resource_logs.is_empty() {
        return Err("the file holds no spans".into());
    }
    Ok(TraceView::from_data(&trace_id, traces, logs))
}
