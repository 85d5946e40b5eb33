use super::*;
use opentelemetry_proto::tonic::common::v1::any_value::Value as V;

fn only_span(body: &str) -> Span {
    let request = decode_traces(body.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    request.resource_spans[0].scope_spans[0].spans[0].clone()
}

fn attr(span: &Span, key: &str) -> V {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .unwrap()
        .value
        .clone()
        .unwrap()
        .value
        .unwrap()
}

#[test]
fn numeric_and_string_64_bit_integers_both_decode() {
    // The two gaps of opentelemetry-proto's serde: numeric timeUnixNano and numeric intValue.
    let span = only_span(
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{
            "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174",
            "startTimeUnixNano":1544712660000000000,"endTimeUnixNano":"1544712661000000000",
            "attributes":[
              {"key":"n","value":{"intValue":42}},
              {"key":"s","value":{"intValue":"-9007199254740993"}},
              {"key":"d","value":{"doubleValue":"NaN"}},
              {"key":"f","value":{"doubleValue":1.5}},
              {"key":"b","value":{"boolValue":true}},
              {"key":"raw","value":{"bytesValue":"aGk="}},
              {"key":"arr","value":{"arrayValue":{"values":[{"stringValue":"x"},{"intValue":1}]}}},
              {"key":"kv","value":{"kvlistValue":{"values":[{"key":"inner","value":{"stringValue":"y"}}]}}},
              {"key":"empty","value":{}}
            ],
            "events":[{"timeUnixNano":1544712660500000000,"name":"e"}]
        }]}]}]}"#,
    );
    assert_eq!(
        span.trace_id,
        hex::decode("5b8efff798038103d269b633813fc60c").unwrap(),
        "hex is case-insensitive"
    );
    assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
    assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
    assert_eq!(span.events[0].time_unix_nano, 1_544_712_660_500_000_000);
    assert_eq!(attr(&span, "n"), V::IntValue(42));
    assert_eq!(attr(&span, "s"), V::IntValue(-9_007_199_254_740_993));
    assert!(matches!(attr(&span, "d"), V::DoubleValue(d) if d.is_nan()));
    assert_eq!(attr(&span, "f"), V::DoubleValue(1.5));
    assert_eq!(attr(&span, "b"), V::BoolValue(true));
    assert_eq!(attr(&span, "raw"), V::BytesValue(b"hi".to_vec()));
    let V::ArrayValue(array) = attr(&span, "arr") else {
        panic!()
    };
    assert_eq!(array.values.len(), 2);
    let V::KvlistValue(list) = attr(&span, "kv") else {
        panic!()
    };
    assert_eq!(list.values[0].key, "inner");
    assert!(
        span.attributes
            .iter()
            .find(|kv| kv.key == "empty")
            .unwrap()
            .value
            .is_none()
    );
}

#[test]
fn enums_are_integers_or_names_and_unknown_fields_are_ignored() {
    let span = only_span(
        r#"{"resourceSpans":[{"futureField":1,"scopeSpans":[{"scope":{"name":"lib","version":"2"},"spans":[{
            "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
            "kind":3,"status":{"code":"STATUS_CODE_ERROR","message":"x"},"unknownThing":[1,2]
        }]}]}]}"#,
    );
    assert_eq!(span.kind, 3);
    assert_eq!(span.status.unwrap().code, 2);
    let span = only_span(
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","kind":"SPAN_KIND_CLIENT"}]}]}]}"#,
    );
    assert_eq!(span.kind, 3);
}

#[test]
fn bad_ids_become_invalid_lengths_for_per_span_rejection() {
    let span = only_span(
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"not-hex","spanId":"eee19b7ec3c1b174","parentSpanId":"abc"}]}]}]}"#,
    );
    assert_ne!(span.trace_id.len(), 16);
    assert_ne!(span.parent_span_id.len(), 8);
    assert!(crate::otlp::split::span_problem(&span).is_some());
}

#[test]
fn structural_errors_fail_the_request() {
    for body in [
        "not json",
        "[]",
        r#"{"resourceSpans":{}}"#,
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"soon"}]}]}]}"#,
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":-1}]}]}]}"#,
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"k","value":{"intValue":1.5}}]}]}]}]}"#,
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_BOGUS"}]}]}]}"#,
    ] {
        assert!(decode_traces(body.as_bytes()).is_err(), "{body}");
    }
    // Bad UTF-8 is a decode error, never a panic.
    assert!(decode_traces(b"{\"resourceSpans\":[{\"schemaUrl\":\"\xff\"}]}").is_err());
}

#[test]
fn responses_are_otlp_json() {
    assert_eq!(export_response(0, ""), b"{}");
    let partial: serde_json::Value =
        serde_json::from_slice(&export_response(2, "bad ids")).unwrap();
    assert_eq!(partial["partialSuccess"]["rejectedSpans"], "2");
    assert_eq!(partial["partialSuccess"]["errorMessage"], "bad ids");
}
