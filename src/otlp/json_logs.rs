//! OTLP/JSON logs, decoded with the same lenient rules as traces (hex ids, integer or named
//! enums, 64-bit integers as numbers or strings, unknown fields ignored).

use super::json::{
    JsonError, any_value, array, as_object, attributes, enumeration, field, id, resource, scope,
    string, uint,
};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use serde_json::Value;

pub fn decode_logs(body: &[u8]) -> Result<ExportLogsServiceRequest, JsonError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| super::json::invalid_json(e.to_string()))?;
    decode_logs_value(&value)
}

pub fn decode_logs_value(value: &Value) -> Result<ExportLogsServiceRequest, JsonError> {
    let root = as_object(value, "request")?;
    Ok(ExportLogsServiceRequest {
        resource_logs: array(root, "resourceLogs", "resource_logs")?
            .iter()
            .map(resource_logs)
            .collect::<Result<_, _>>()?,
    })
}

fn resource_logs(value: &Value) -> Result<ResourceLogs, JsonError> {
    let obj = as_object(value, "resourceLogs[]")?;
    Ok(ResourceLogs {
        resource: field(obj, "resource", "resource")
            .map(resource)
            .transpose()?,
        scope_logs: array(obj, "scopeLogs", "scope_logs")?
            .iter()
            .map(scope_logs)
            .collect::<Result<_, _>>()?,
        schema_url: string(obj, "schemaUrl", "schema_url")?,
    })
}

fn scope_logs(value: &Value) -> Result<ScopeLogs, JsonError> {
    let obj = as_object(value, "scopeLogs[]")?;
    Ok(ScopeLogs {
        scope: field(obj, "scope", "scope").map(scope).transpose()?,
        log_records: array(obj, "logRecords", "log_records")?
            .iter()
            .map(log_record)
            .collect::<Result<_, _>>()?,
        schema_url: string(obj, "schemaUrl", "schema_url")?,
    })
}

fn log_record(value: &Value) -> Result<LogRecord, JsonError> {
    let obj = as_object(value, "logRecord")?;
    Ok(LogRecord {
        time_unix_nano: uint(obj, "timeUnixNano", "time_unix_nano")?,
        observed_time_unix_nano: uint(obj, "observedTimeUnixNano", "observed_time_unix_nano")?,
        severity_number: enumeration(obj, "severityNumber", "severity_number", &SEVERITIES)?,
        severity_text: string(obj, "severityText", "severity_text")?,
        body: field(obj, "body", "body")
            .map(any_value)
            .transpose()?
            .flatten(),
        attributes: attributes(obj)?,
        dropped_attributes_count: uint(obj, "droppedAttributesCount", "dropped_attributes_count")?
            as u32,
        flags: uint(obj, "flags", "flags")? as u32,
        trace_id: id(obj, "traceId", "trace_id", 16)?,
        span_id: id(obj, "spanId", "span_id", 8)?,
        event_name: string(obj, "eventName", "event_name")?,
    })
}

const SEVERITIES: [&str; 25] = [
    "SEVERITY_NUMBER_UNSPECIFIED",
    "SEVERITY_NUMBER_TRACE",
    "SEVERITY_NUMBER_TRACE2",
    "SEVERITY_NUMBER_TRACE3",
    "SEVERITY_NUMBER_TRACE4",
    "SEVERITY_NUMBER_DEBUG",
    "SEVERITY_NUMBER_DEBUG2",
    "SEVERITY_NUMBER_DEBUG3",
    "SEVERITY_NUMBER_DEBUG4",
    "SEVERITY_NUMBER_INFO",
    "SEVERITY_NUMBER_INFO2",
    "SEVERITY_NUMBER_INFO3",
    "SEVERITY_NUMBER_INFO4",
    "SEVERITY_NUMBER_WARN",
    "SEVERITY_NUMBER_WARN2",
    "SEVERITY_NUMBER_WARN3",
    "SEVERITY_NUMBER_WARN4",
    "SEVERITY_NUMBER_ERROR",
    "SEVERITY_NUMBER_ERROR2",
    "SEVERITY_NUMBER_ERROR3",
    "SEVERITY_NUMBER_ERROR4",
    "SEVERITY_NUMBER_FATAL",
    "SEVERITY_NUMBER_FATAL2",
    "SEVERITY_NUMBER_FATAL3",
    "SEVERITY_NUMBER_FATAL4",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_gen_ai_event_log_record_with_hex_ids_and_string_severity() {
        let body = br#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"agent"}}]},
            "scopeLogs":[{"scope":{"name":"openai"},"logRecords":[{
              "timeUnixNano":"1700000000000000000","observedTimeUnixNano":1700000000000000001,
              "severityNumber":"SEVERITY_NUMBER_INFO","eventName":"gen_ai.user.message",
              "traceId":"0102030405060708090A0B0C0D0E0F10","spanId":"1112131415161718",
              "body":{"kvlistValue":{"values":[{"key":"content","value":{"stringValue":"hi"}}]}},
              "attributes":[{"key":"event.name","value":{"stringValue":"gen_ai.user.message"}}],
              "futureField":true}]}]}]}"#;
        let request = decode_logs(body).unwrap();
        let record = &request.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(record.trace_id, (1..=16).collect::<Vec<u8>>());
        assert_eq!(record.span_id, (0x11..=0x18).collect::<Vec<u8>>());
        assert_eq!(record.severity_number, 9);
        assert_eq!(record.observed_time_unix_nano, 1_700_000_000_000_000_001);
        assert_eq!(record.event_name, "gen_ai.user.message");
        assert!(record.body.is_some());
    }

    #[test]
    fn a_malformed_log_body_is_an_error() {
        assert!(decode_logs(br#"{"resourceLogs":{}}"#).is_err());
        assert!(decode_logs(b"not json").is_err());
    }
}
