//! OTLP wire helpers the `opentelemetry-proto` crate does not cover: OTLP/JSON decoding and the
//! `google.rpc` error messages.

pub mod json;
pub mod json_logs;
pub mod status;
