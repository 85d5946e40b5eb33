//! Validates the spans (or log records) of one export request and splits it into one chunk per
//! trace, each a self-contained `TracesData` (or `LogsData`) that keeps every item under its
//! original resource and scope. Chunks are assembled at the protobuf wire level so each item,
//! resource and scope is encoded exactly once however many traces share them. Traces and logs
//! share the envelope layout (resource 1, scope list 2, schema url 3), so one splitter serves both.

use super::wire::{self, Reader, Value, WireError};
use crate::core::{Signal, TraceChunk, TraceId, UNTRACED};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
use std::borrow::Cow;
use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct SplitRequest {
    pub chunks: Vec<TraceChunk>,
    /// Spans or log records, by the request's signal.
    pub accepted_spans: u64,
    pub rejected_spans: u64,
    /// Why items were rejected (for OTLP partial success), empty if none were.
    pub reject_message: String,
}

/// Why a span with these ids cannot be accepted.
pub fn id_problem(trace_id: &[u8], span_id: &[u8], parent_span_id: &[u8]) -> Option<&'static str> {
    if trace_id.len() != 16 || trace_id.iter().all(|b| *b == 0) {
        return Some("invalid trace id (must be 16 bytes, not all zero)");
    }
    if span_id.len() != 8 || span_id.iter().all(|b| *b == 0) {
        return Some("invalid span id (must be 8 bytes, not all zero)");
    }
    if !parent_span_id.is_empty() && parent_span_id.len() != 8 {
        return Some("invalid parent span id (must be empty or 8 bytes)");
    }
    None
}

pub fn span_problem(span: &Span) -> Option<&'static str> {
    id_problem(&span.trace_id, &span.span_id, &span.parent_span_id)
}

struct Entry<'a> {
    resource: usize,
    scope: usize,
    span: &'a [u8],
}

#[derive(Default)]
struct Group<'a> {
    entries: Vec<Entry<'a>>,
    has_root: bool,
}

/// Splits a decoded request (OTLP/JSON arrives this way). Fails only where the request nests
/// deeper than the wire validator allows.
pub fn split_by_trace(request: ExportTraceServiceRequest) -> Result<SplitRequest, WireError> {
    split_encoded(&request.encode_to_vec())
}

/// Splits an encoded `ExportTraceServiceRequest`. A span whose bytes a strict decoder would
/// refuse (bad UTF-8, wrong wire types) or whose ids are invalid is rejected alone; a request
/// whose structure is broken is refused whole.
pub fn split_encoded(request: &[u8]) -> Result<SplitRequest, WireError> {
    split_signal(request, Signal::Traces)
}

/// Splits an encoded `ExportLogsServiceRequest` by the trace id of each log record. Records
/// without one (or with an all-zero one) form an `UNTRACED` chunk; ids of a wrong length are
/// rejected record by record.
pub fn split_encoded_logs(request: &[u8]) -> Result<SplitRequest, WireError> {
    split_signal(request, Signal::Logs)
}

/// Splits a decoded logs request (OTLP/JSON arrives this way).
pub fn split_logs(
    request: opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest,
) -> Result<SplitRequest, WireError> {
    split_encoded_logs(&request.encode_to_vec())
}

/// The trace id an item belongs to (`UNTRACED` for a log record without one), whether it is a
/// root span, or why it is rejected.
fn classify_item(item: &[u8], signal: Signal) -> Result<(TraceId, bool), &'static str> {
    match signal {
        Signal::Traces => {
            if wire::validate(item, wire::span).is_err() {
                return Err("undecodable span (invalid UTF-8 or wire types)");
            }
            let (trace_id, span_id, parent) =
                wire::span_ids(item).map_err(|_| "undecodable span")?;
            if let Some(reason) = id_problem(trace_id, span_id, parent) {
                return Err(reason);
            }
            Ok((
                trace_id.try_into().expect("validated length"),
                parent.is_empty(),
            ))
        }
        Signal::Logs => {
            if wire::validate(item, wire::log_record).is_err() {
                return Err("undecodable log record (invalid UTF-8 or wire types)");
            }
            let (trace_id, span_id) =
                wire::log_record_ids(item).map_err(|_| "undecodable log record")?;
            if !span_id.is_empty() && span_id.len() != 8 {
                return Err("invalid span id (must be empty or 8 bytes)");
            }
            match trace_id.len() {
                0 => Ok((UNTRACED, false)),
                16 => Ok((trace_id.try_into().expect("16 bytes"), false)),
                _ => Err("invalid trace id (must be empty or 16 bytes)"),
            }
        }
    }
}

fn split_signal(request: &[u8], signal: Signal) -> Result<SplitRequest, WireError> {
    let mut out = SplitRequest::default();
    let mut reasons: Vec<&'static str> = Vec::new();
    let mut reject = |out: &mut SplitRequest, reason: &'static str| {
        out.rejected_spans += 1;
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
    };
    let mut order: Vec<TraceId> = Vec::new();
    let mut groups: HashMap<TraceId, Group> = HashMap::new();
    // Per resource and per scope: their encoded message and schema url, kept as slices.
    let mut resources: Vec<Head> = Vec::new();
    let mut scopes: Vec<Head> = Vec::new();

    let mut top = Reader::new(request);
    while let Some((field, value)) = top.next_field()? {
        let resource_spans = match (field, value) {
            (1, Value::Len(bytes)) => bytes,
            (1, _) => return Err(WireError("resource list: unexpected wire type".into())),
            _ => continue,
        };
        let (resource, schema_url, scope_spans_list) = parts(resource_spans, wire::resource)?;
        let resource_index = resources.len();
        resources.push((resource, schema_url));
        for scope_spans in scope_spans_list {
            let (scope, schema_url, spans) = parts(scope_spans, wire::scope)?;
            let scope_index = scopes.len();
            scopes.push((scope, schema_url));
            for span in spans {
                let (trace_id, is_root) = match classify_item(span, signal) {
                    Ok(found) => found,
                    Err(reason) => {
                        reject(&mut out, reason);
                        continue;
                    }
                };
                out.accepted_spans += 1;
                let group = groups.entry(trace_id).or_insert_with(|| {
                    order.push(trace_id);
                    Group::default()
                });
                group.has_root |= is_root;
                group.entries.push(Entry {
                    resource: resource_index,
                    scope: scope_index,
                    span,
                });
            }
        }
    }
    if out.rejected_spans > 0 {
        let what = match signal {
            Signal::Traces => "span(s)",
            Signal::Logs => "log record(s)",
        };
        out.reject_message = format!(
            "{} {what} rejected: {}",
            out.rejected_spans,
            reasons.join("; ")
        );
    }
    out.chunks = order
        .into_iter()
        .map(|trace_id| {
            let group = groups.remove(&trace_id).expect("ordered ids are grouped");
            TraceChunk {
                trace_id,
                signal,
                items: group.entries.len() as u32,
                has_root: group.has_root,
                payload: encode_group(&group.entries, &resources, &scopes),
            }
        })
        .collect();
    Ok(out)
}

/// The three fields shared by `ResourceSpans` and `ScopeSpans`: the (validated) resource or
/// scope message (field 1), the repeated children (field 2) and the schema url (field 3). A
/// message field that occurs twice is merged, as protobuf does, by concatenating its bodies.
/// Unknown fields at this level are dropped.
fn parts(message: &[u8], head_schema: wire::Schema) -> Result<Parts<'_>, WireError> {
    let (mut head, mut schema_url, mut children): (Cow<[u8]>, &[u8], Vec<&[u8]>) =
        (Cow::Borrowed(&[]), &[], Vec::new());
    let mut reader = Reader::new(message);
    while let Some((field, value)) = reader.next_field()? {
        match (field, value) {
            (1, Value::Len(bytes)) => {
                wire::validate(bytes, head_schema)?;
                if head.is_empty() {
                    head = Cow::Borrowed(bytes);
                } else {
                    head.to_mut().extend_from_slice(bytes);
                }
            }
            (2, Value::Len(bytes)) => children.push(bytes),
            (3, Value::Len(bytes)) => {
                std::str::from_utf8(bytes)
                    .map_err(|_| WireError("schema_url is not valid UTF-8".into()))?;
                schema_url = bytes;
            }
            (1..=3, _) => return Err(WireError(format!("field {field}: unexpected wire type"))),
            _ => {}
        }
    }
    Ok((head, schema_url, children))
}

type Parts<'a> = (Cow<'a, [u8]>, &'a [u8], Vec<&'a [u8]>);
type Head<'a> = (Cow<'a, [u8]>, &'a [u8]);

/// `TracesData { resource_spans: [ResourceSpans { resource, scope_spans: [ScopeSpans { scope,
/// spans }] }] }`, written field by field from already encoded parts.
fn encode_group(entries: &[Entry], resources: &[Head], scopes: &[Head]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.iter().map(|e| e.span.len() + 4).sum::<usize>() + 64);
    let mut i = 0;
    while i < entries.len() {
        let resource = entries[i].resource;
        let mut resource_body = Vec::new();
        let (resource_bytes, resource_schema) = &resources[resource];
        if !resource_bytes.is_empty() {
            put_bytes(&mut resource_body, 1, resource_bytes);
        }
        while i < entries.len() && entries[i].resource == resource {
            let scope = entries[i].scope;
            let (scope_bytes, scope_schema) = &scopes[scope];
            let mut scope_body = Vec::new();
            if !scope_bytes.is_empty() {
                put_bytes(&mut scope_body, 1, scope_bytes);
            }
            while i < entries.len() && entries[i].scope == scope {
                put_bytes(&mut scope_body, 2, entries[i].span);
                i += 1;
            }
            if !scope_schema.is_empty() {
                put_bytes(&mut scope_body, 3, scope_schema);
            }
            put_bytes(&mut resource_body, 2, &scope_body);
        }
        if !resource_schema.is_empty() {
            put_bytes(&mut resource_body, 3, resource_schema);
        }
        put_bytes(&mut out, 1, &resource_body);
    }
    out
}

fn put_bytes(buf: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    buf.reserve(1 + encoded_len_varint(bytes.len() as u64) + bytes.len());
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(bytes.len() as u64, buf);
    buf.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, InstrumentationScope, KeyValue, any_value,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, TracesData};

    fn span(trace: u8, id: u8, parent: Option<u8>) -> Span {
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: format!("span-{trace}-{id}"),
            ..Default::default()
        }
    }

    fn resource(service: &str) -> Option<Resource> {
        Some(Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(service.into())),
                }),
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    #[test]
    fn splits_by_trace_keeping_resource_and_scope() {
        let scope = |name: &str| {
            Some(InstrumentationScope {
                name: name.into(),
                ..Default::default()
            })
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    resource: resource("a"),
                    scope_spans: vec![
                        ScopeSpans {
                            scope: scope("s1"),
                            spans: vec![span(1, 1, None), span(2, 2, Some(9))],
                            schema_url: "u".into(),
                        },
                        ScopeSpans {
                            scope: scope("s2"),
                            spans: vec![span(1, 3, Some(1))],
                            ..Default::default()
                        },
                    ],
                    schema_url: "r".into(),
                },
                ResourceSpans {
                    resource: resource("b"),
                    scope_spans: vec![ScopeSpans {
                        scope: scope("s3"),
                        spans: vec![span(2, 4, Some(2))],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
        };
        let split = split_by_trace(request).unwrap();
        assert_eq!(
            (
                split.accepted_spans,
                split.rejected_spans,
                split.chunks.len()
            ),
            (3 + 1, 0, 2)
        );
        let first = &split.chunks[0];
        assert_eq!(
            (first.trace_id, first.items, first.has_root),
            ([1; 16], 2, true)
        );
        let decoded = TracesData::decode(first.payload.as_slice()).unwrap();
        assert_eq!(decoded.resource_spans.len(), 1);
        assert_eq!(decoded.resource_spans[0].resource, resource("a"));
        assert_eq!(decoded.resource_spans[0].schema_url, "r");
        let scopes = &decoded.resource_spans[0].scope_spans;
        assert_eq!(
            scopes
                .iter()
                .map(|s| s.scope.as_ref().unwrap().name.as_str())
                .collect::<Vec<_>>(),
            ["s1", "s2"]
        );
        assert_eq!(scopes[0].schema_url, "u");
        assert_eq!(scopes[1].spans[0], span(1, 3, Some(1)));

        let second = TracesData::decode(split.chunks[1].payload.as_slice()).unwrap();
        assert!(!split.chunks[1].has_root);
        assert_eq!(
            second.resource_spans.len(),
            2,
            "trace 2 spans two resources"
        );
        assert_eq!(second.resource_spans[1].resource, resource("b"));
    }

    #[test]
    fn undecodable_spans_are_rejected_alone_and_broken_structure_fails_the_request() {
        let good = request_with(vec![span(1, 1, None)]);
        let mut bytes = good.encode_to_vec();
        // The span's name is its last field: corrupt one byte of it into invalid UTF-8.
        let at = bytes.len() - 1;
        bytes[at] = 0xff;
        let split = split_encoded(&bytes).unwrap();
        assert_eq!((split.accepted_spans, split.rejected_spans), (0, 1));
        assert!(
            split.reject_message.contains("undecodable"),
            "{}",
            split.reject_message
        );
        assert!(
            split_encoded(&bytes[..bytes.len() - 3]).is_err(),
            "truncated request"
        );
        assert!(
            split_encoded(&[0x08, 0x01]).is_err(),
            "resource_spans as a varint"
        );
    }

    fn request_with(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn a_resource_sent_in_two_pieces_is_merged_like_protobuf_does() {
        // One ResourceSpans entry holding two `resource` fields: prost merges them.
        let mut one = Vec::new();
        put_bytes(&mut one, 1, &resource("a").unwrap().encode_to_vec());
        put_bytes(&mut one, 1, &resource("b").unwrap().encode_to_vec());
        put_bytes(
            &mut one,
            2,
            &ScopeSpans {
                spans: vec![span(1, 1, None)],
                ..Default::default()
            }
            .encode_to_vec(),
        );
        let mut wire_request = Vec::new();
        put_bytes(&mut wire_request, 1, &one);
        let expected = ExportTraceServiceRequest::decode(wire_request.as_slice()).unwrap();
        assert_eq!(
            expected.resource_spans[0]
                .resource
                .as_ref()
                .unwrap()
                .attributes
                .len(),
            2
        );
        let split = split_encoded(&wire_request).unwrap();
        let chunk = TracesData::decode(split.chunks[0].payload.as_slice()).unwrap();
        assert_eq!(
            chunk.resource_spans[0].resource,
            expected.resource_spans[0].resource
        );

        // Two separate ResourceSpans entries stay separate; only the first holds a span.
        let mut with_span = request_with(vec![span(1, 1, None)])
            .resource_spans
            .remove(0);
        with_span.resource = resource("a");
        let without = ResourceSpans {
            resource: resource("b"),
            ..Default::default()
        };
        let mut bytes = Vec::new();
        for entry in [with_span, without] {
            put_bytes(&mut bytes, 1, &entry.encode_to_vec());
        }
        assert_eq!(split_encoded(&bytes).unwrap().accepted_spans, 1);
    }

    #[test]
    fn invalid_spans_are_rejected_individually() {
        let mut bad_trace = span(1, 1, None);
        bad_trace.trace_id = vec![0; 16];
        let mut short_span = span(1, 2, None);
        short_span.span_id = vec![1, 2, 3];
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![bad_trace, short_span, span(3, 3, None)],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let split = split_by_trace(request).unwrap();
        assert_eq!((split.accepted_spans, split.rejected_spans), (1, 2));
        assert!(
            split.reject_message.contains("invalid trace id"),
            "{}",
            split.reject_message
        );
        assert!(
            split.reject_message.contains("invalid span id"),
            "{}",
            split.reject_message
        );
    }
}
