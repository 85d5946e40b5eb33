//! OTLP wire helpers the `opentelemetry-proto` crate does not cover: the protobuf wire reader
//! (`wire`), splitting a request into one chunk per trace (`split`), OTLP/JSON decoding and the
//! `google.rpc` error messages.

pub mod json;
pub mod json_logs;
pub mod split;
pub mod status;
pub mod wire;
