//! Writes attributes onto spans at the protobuf wire level: the span's bytes are kept as they
//! are (unknown fields included) and the new `KeyValue`s are appended as further `attributes`
//! fields, which a decoder merges into the repeated field. Only the lengths of the enclosing
//! messages change.

use crate::otlp::wire::{Reader, Value, WireError, span_ids};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;
use prost::encoding::encode_varint;
use std::collections::HashSet;

/// `TracesData.resource_spans`, `ResourceSpans.scope_spans`, `ScopeSpans.spans`.
const RESOURCE_SPANS: u32 = 1;
const SCOPE_SPANS: u32 = 2;
const SPANS: u32 = 2;
/// `Span.attributes`.
const SPAN_ATTRIBUTES: u32 = 9;

/// Which spans of a payload get the attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Spans whose parent is not in the payload: the trace's root, or the top spans of this
    /// service when the root lives upstream.
    LocalRoots,
    /// Only spans without a parent (for late spans, whose siblings are gone).
    Roots,
    /// Every span.
    All,
}

/// Returns `payload` (concatenated `TracesData`) with `attributes` appended to the target spans,
/// and how many spans got them.
pub fn add_attributes(
    payload: &[u8],
    attributes: &[KeyValue],
    target: Target,
) -> Result<(Vec<u8>, usize), WireError> {
    if attributes.is_empty() {
        return Ok((payload.to_vec(), 0));
    }
    let mut extra = Vec::new();
    for attribute in attributes {
        put_len(&mut extra, SPAN_ATTRIBUTES, &attribute.encode_to_vec());
    }
    let known: HashSet<Vec<u8>> = match target {
        Target::LocalRoots => span_ids_in(payload)?,
        _ => HashSet::new(),
    };
    let wants = |span: &[u8]| -> Result<bool, WireError> {
        let (_, _, parent) = span_ids(span)?;
        Ok(match target {
            Target::All => true,
            Target::Roots => parent.is_empty(),
            Target::LocalRoots => parent.is_empty() || !known.contains(parent),
        })
    };
    let mut enriched = 0;
    let out = rewrite(payload, RESOURCE_SPANS, &mut |resource| {
        rewrite(resource, SCOPE_SPANS, &mut |scope| {
            rewrite(scope, SPANS, &mut |span| {
                if !wants(span)? {
                    return Ok(None);
                }
                enriched += 1;
                let mut bytes = Vec::with_capacity(span.len() + extra.len());
                bytes.extend_from_slice(span);
                bytes.extend_from_slice(&extra);
                Ok(Some(bytes))
            })
            .map(Some)
        })
        .map(Some)
    })?;
    Ok((out, enriched))
}

type Rewrite<'f> = dyn FnMut(&[u8]) -> Result<Option<Vec<u8>>, WireError> + 'f;

/// Copies `message`, passing every length-delimited field numbered `field` through `edit`
/// (`None` keeps it as is) and every other field byte for byte.
fn rewrite(message: &[u8], field: u32, edit: &mut Rewrite<'_>) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let mut reader = Reader::new(message);
    loop {
        let start = message.len() - reader.remaining();
        let Some((number, value)) = reader.next_field()? else {
            break;
        };
        let raw = &message[start..message.len() - reader.remaining()];
        match value {
            Value::Len(bytes) if number == field => match edit(bytes)? {
                Some(new) => put_len(&mut out, number, &new),
                None => out.extend_from_slice(raw),
            },
            _ => out.extend_from_slice(raw),
        }
    }
    Ok(out)
}

fn span_ids_in(payload: &[u8]) -> Result<HashSet<Vec<u8>>, WireError> {
    let mut ids = HashSet::new();
    for_each_len(payload, RESOURCE_SPANS, &mut |resource| {
        for_each_len(resource, SCOPE_SPANS, &mut |scope| {
            for_each_len(scope, SPANS, &mut |span| {
                ids.insert(span_ids(span)?.1.to_vec());
                Ok(())
            })
        })
    })?;
    Ok(ids)
}

fn for_each_len(
    message: &[u8],
    field: u32,
    each: &mut dyn FnMut(&[u8]) -> Result<(), WireError>,
) -> Result<(), WireError> {
    let mut reader = Reader::new(message);
    while let Some((number, value)) = reader.next_field()? {
        if let (true, Value::Len(bytes)) = (number == field, value) {
            each(bytes)?;
        }
    }
    Ok(())
}

fn put_len(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    encode_varint(u64::from(field << 3 | 2), out);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, TracesData};

    fn span(id: u8, parent: Option<u8>) -> Span {
        Span {
            trace_id: vec![1; 16],
            span_id: vec![id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: format!("span {id}"),
            attributes: vec![attribute("existing", "yes")],
            ..Default::default()
        }
    }

    fn attribute(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    fn payload(spans: Vec<Span>) -> Vec<u8> {
        TracesData {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    fn keys_by_span(payload: &[u8]) -> Vec<(String, Vec<String>)> {
        let data = TracesData::decode(payload).expect("still valid OTLP");
        data.resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| {
                (
                    s.name.clone(),
                    s.attributes.iter().map(|a| a.key.clone()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn local_roots_get_the_attributes_and_children_do_not() {
        // Span 2's parent (9) lives upstream: it is this service's top span.
        let input = payload(vec![span(1, None), span(2, Some(9)), span(3, Some(1))]);
        let (out, enriched) =
            add_attributes(&input, &[attribute("topic", "refunds")], Target::LocalRoots).unwrap();
        assert_eq!(enriched, 2);
        let spans = keys_by_span(&out);
        assert_eq!(spans[0].1, ["existing", "topic"]);
        assert_eq!(spans[1].1, ["existing", "topic"]);
        assert_eq!(spans[2].1, ["existing"]);
    }

    #[test]
    fn roots_only_and_all() {
        let input = payload(vec![span(1, None), span(2, Some(9))]);
        let (out, n) = add_attributes(&input, &[attribute("t", "x")], Target::Roots).unwrap();
        assert_eq!(n, 1);
        assert_eq!(keys_by_span(&out)[1].1, ["existing"]);
        let (out, n) = add_attributes(&input, &[attribute("t", "x")], Target::All).unwrap();
        assert_eq!(n, 2);
        assert!(keys_by_span(&out).iter().all(|(_, keys)| keys.len() == 2));
    }

    #[test]
    fn unknown_fields_and_concatenated_messages_survive() {
        let mut root = span(1, None).encode_to_vec();
        // Field 99, varint 7: not in the OTLP schema a decoder knows.
        root.extend_from_slice(&[0x98, 0x06, 7]);
        let mut scope = Vec::new();
        put_len(&mut scope, SPANS, &root);
        let mut resource = Vec::new();
        put_len(&mut resource, SCOPE_SPANS, &scope);
        let mut input = Vec::new();
        put_len(&mut input, RESOURCE_SPANS, &resource);
        input.extend_from_slice(&payload(vec![span(2, Some(1))]));

        let (out, n) = add_attributes(&input, &[attribute("t", "x")], Target::LocalRoots).unwrap();
        assert_eq!(n, 1, "span 2's parent is in the other message of the trace");
        let marker = [0x98, 0x06, 7];
        assert!(out.windows(3).any(|w| w == marker), "unknown field kept");
        assert_eq!(keys_by_span(&out)[0].1, ["existing", "t"]);
    }

    #[test]
    fn broken_payload_is_an_error() {
        assert!(add_attributes(&[0x0a, 0x05, 1], &[attribute("t", "x")], Target::All).is_err());
    }
}
