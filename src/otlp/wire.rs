//! Protobuf wire-level reading of OTLP trace requests, so a request is split by trace without
//! decoding spans into structs and encoding them again: each span's bytes are checked against the
//! OTLP schema (wire types, nesting, UTF-8 of strings — everything a downstream decoder would
//! reject) and then copied as they are. Unknown fields pass through untouched.

use std::str;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub String);

fn err(message: impl Into<String>) -> WireError {
    WireError(message.into())
}

/// One field's value as it sits on the wire.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64,
    Fixed32,
    Len(&'a [u8]),
}

/// Iterates the fields of one message.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for (i, byte) in self.buf.iter().take(10).enumerate() {
            // The tenth byte holds bit 63 only; prost refuses anything more.
            if i == 9 && *byte > 1 {
                return Err(err("invalid varint"));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        Err(err("invalid varint"))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < len {
            return Err(err("truncated message"));
        }
        let (head, tail) = self.buf.split_at(len);
        self.buf = tail;
        Ok(head)
    }

    pub fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, WireError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        if key > u64::from(u32::MAX) {
            return Err(err("field key out of range"));
        }
        let field = (key >> 3) as u32;
        if field == 0 {
            return Err(err("field number 0"));
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let len =
                    usize::try_from(self.varint()?).map_err(|_| err("length out of range"))?;
                Value::Len(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Value::Fixed32
            }
            other => return Err(err(format!("unsupported wire type {other}"))),
        };
        Ok(Some((field, value)))
    }
}

/// What a known field must hold.
#[derive(Clone, Copy)]
pub enum Kind {
    Str,
    Bytes,
    Varint,
    Fixed64,
    Fixed32,
    Message(Schema),
}

pub type Schema = fn(u32) -> Option<Kind>;

const MAX_DEPTH: u32 = 64;

/// Checks that `bytes` is a message a strict decoder accepts under `schema`.
pub fn validate(bytes: &[u8], schema: Schema) -> Result<(), WireError> {
    validate_at(bytes, schema, 0)
}

fn validate_at(bytes: &[u8], schema: Schema, depth: u32) -> Result<(), WireError> {
    if depth > MAX_DEPTH {
        return Err(err("message nested too deeply"));
    }
    let mut reader = Reader::new(bytes);
    while let Some((field, value)) = reader.next_field()? {
        let Some(kind) = schema(field) else { continue };
        match (kind, value) {
            (Kind::Str, Value::Len(b)) => {
                str::from_utf8(b)
                    .map_err(|_| err(format!("field {field}: string is not valid UTF-8")))?;
            }
            (Kind::Bytes, Value::Len(_))
            | (Kind::Varint, Value::Varint(_))
            | (Kind::Fixed64, Value::Fixed64)
            | (Kind::Fixed32, Value::Fixed32) => {}
            (Kind::Message(inner), Value::Len(b)) => validate_at(b, inner, depth + 1)?,
            _ => return Err(err(format!("field {field}: unexpected wire type"))),
        }
    }
    Ok(())
}

// The OTLP v1 messages a trace request carries (opentelemetry-proto v1.x field numbers).

pub fn any_value(field: u32) -> Option<Kind> {
    Some(match field {
        1 => Kind::Str,
        2 | 3 | 8 => Kind::Varint,
        4 => Kind::Fixed64,
        5 => Kind::Message(array_value),
        6 => Kind::Message(key_value_list),
        7 => Kind::Bytes,
        _ => return None,
    })
}

fn array_value(field: u32) -> Option<Kind> {
    (field == 1).then_some(Kind::Message(any_value))
}

fn key_value_list(field: u32) -> Option<Kind> {
    (field == 1).then_some(Kind::Message(key_value))
}

pub fn key_value(field: u32) -> Option<Kind> {
    Some(match field {
        1 => Kind::Str,
        2 => Kind::Message(any_value),
        3 => Kind::Varint,
        _ => return None,
    })
}

pub fn scope(field: u32) -> Option<Kind> {
    Some(match field {
        1 | 2 => Kind::Str,
        3 => Kind::Message(key_value),
        4 => Kind::Varint,
        _ => return None,
    })
}

fn entity_ref(field: u32) -> Option<Kind> {
    matches!(field, 1..=4).then_some(Kind::Str)
}

pub fn resource(field: u32) -> Option<Kind> {
    Some(match field {
        1 => Kind::Message(key_value),
        2 => Kind::Varint,
        3 => Kind::Message(entity_ref),
        _ => return None,
    })
}

pub fn span(field: u32) -> Option<Kind> {
    Some(match field {
        1 | 2 | 4 => Kind::Bytes,
        3 | 5 => Kind::Str,
        6 | 10 | 12 | 14 => Kind::Varint,
        7 | 8 => Kind::Fixed64,
        9 => Kind::Message(key_value),
        11 => Kind::Message(event),
        13 => Kind::Message(link),
        15 => Kind::Message(status),
        16 => Kind::Fixed32,
        _ => return None,
    })
}

fn event(field: u32) -> Option<Kind> {
    Some(match field {
        1 => Kind::Fixed64,
        2 => Kind::Str,
        3 => Kind::Message(key_value),
        4 => Kind::Varint,
        _ => return None,
    })
}

fn link(field: u32) -> Option<Kind> {
    Some(match field {
        1 | 2 => Kind::Bytes,
        3 => Kind::Str,
        4 => Kind::Message(key_value),
        5 => Kind::Varint,
        6 => Kind::Fixed32,
        _ => return None,
    })
}

fn status(field: u32) -> Option<Kind> {
    Some(match field {
        2 => Kind::Str,
        3 => Kind::Varint,
        _ => return None,
    })
}

/// The ids of an (already validated) span: trace id, span id, parent span id.
/// `opentelemetry.proto.logs.v1.LogRecord`.
pub fn log_record(field: u32) -> Option<Kind> {
    Some(match field {
        1 | 11 => Kind::Fixed64,
        2 | 7 => Kind::Varint,
        3 | 12 => Kind::Str,
        5 => Kind::Message(any_value),
        6 => Kind::Message(key_value),
        8 => Kind::Fixed32,
        9 | 10 => Kind::Bytes,
        _ => return None,
    })
}

/// A log record's trace id and span id (either may be empty).
pub fn log_record_ids(record: &[u8]) -> Result<(&[u8], &[u8]), WireError> {
    let (mut trace_id, mut span_id): (&[u8], &[u8]) = (&[], &[]);
    let mut reader = Reader::new(record);
    while let Some((field, value)) = reader.next_field()? {
        match (field, value) {
            (9, Value::Len(b)) => trace_id = b,
            (10, Value::Len(b)) => span_id = b,
            _ => {}
        }
    }
    Ok((trace_id, span_id))
}

pub fn span_ids(span: &[u8]) -> Result<(&[u8], &[u8], &[u8]), WireError> {
    let (mut trace_id, mut span_id, mut parent): (&[u8], &[u8], &[u8]) = (&[], &[], &[]);
    let mut reader = Reader::new(span);
    while let Some((field, value)) = reader.next_field()? {
        match (field, value) {
            (1, Value::Len(b)) => trace_id = b,
            (2, Value::Len(b)) => span_id = b,
            (4, Value::Len(b)) => parent = b,
            _ => {}
        }
    }
    Ok((trace_id, span_id, parent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value as av};
    use opentelemetry_proto::tonic::trace::v1::{Span, span as sp};
    use prost::Message;

    fn nested(depth: usize) -> AnyValue {
        let mut value = AnyValue {
            value: Some(av::Value::StringValue("leaf".into())),
        };
        for _ in 0..depth {
            value = AnyValue {
                value: Some(av::Value::ArrayValue(ArrayValue {
                    values: vec![value],
                })),
            };
        }
        value
    }

    fn rich_span() -> Span {
        Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            parent_span_id: vec![3; 8],
            name: "chat".into(),
            flags: 0x301,
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            attributes: vec![KeyValue {
                key: "k".into(),
                value: Some(nested(5)),
                ..Default::default()
            }],
            events: vec![sp::Event {
                name: "e".into(),
                time_unix_nano: 3,
                ..Default::default()
            }],
            links: vec![sp::Link {
                trace_id: vec![4; 16],
                flags: 1,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn what_prost_encodes_validates_and_ids_are_found() {
        let bytes = rich_span().encode_to_vec();
        validate(&bytes, span).unwrap();
        let (t, s, p) = span_ids(&bytes).unwrap();
        assert_eq!((t, s, p), (&[1u8; 16][..], &[2u8; 8][..], &[3u8; 8][..]));
    }

    #[test]
    fn agrees_with_prost_on_what_is_invalid() {
        let good = rich_span().encode_to_vec();
        // Every truncation of a valid span is either still valid for both or invalid for both.
        for cut in 0..good.len() {
            let ours = validate(&good[..cut], span).is_ok();
            let prosts = Span::decode(&good[..cut]).is_ok();
            assert_eq!(ours, prosts, "cut at {cut}");
        }
        // Invalid UTF-8 in a string field.
        let mut bad_utf8 = Span {
            name: "XY".into(),
            ..Default::default()
        }
        .encode_to_vec();
        let at = bad_utf8.len() - 2;
        bad_utf8[at] = 0xff;
        assert!(Span::decode(bad_utf8.as_slice()).is_err());
        assert!(validate(&bad_utf8, span).unwrap_err().0.contains("UTF-8"));
        // A known field with the wrong wire type: name (5) as a varint.
        assert!(Span::decode(&[0x28, 0x01][..]).is_err());
        assert!(validate(&[0x28, 0x01], span).is_err());
        // Over-long varints and keys beyond 32 bits.
        let long_varint = [
            0x30, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ];
        assert!(Span::decode(&long_varint[..]).is_err());
        assert!(validate(&long_varint, span).is_err());
        let big_key = [0x80, 0x80, 0x80, 0x80, 0x10, 0x01];
        assert!(Span::decode(&big_key[..]).is_err());
        assert!(validate(&big_key, span).is_err());
        // Unknown fields are fine for both.
        assert!(Span::decode(&[0xf8, 0x06, 0x01][..]).is_ok());
        assert!(validate(&[0xf8, 0x06, 0x01], span).is_ok());
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let deep = Span {
            attributes: vec![KeyValue {
                key: "k".into(),
                value: Some(nested(200)),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(
            validate(&deep.encode_to_vec(), span)
                .unwrap_err()
                .0
                .contains("deeply")
        );
    }
}
