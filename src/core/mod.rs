//! The words every stage shares, below all of them: a trace id, the two OTLP signals, a chunk of
//! one trace as a receiver hands it over, a trace as the engine releases it, the ticket a held
//! trace travels with, and the retry policy (`retry`). Nothing here knows a stage; every stage
//! may use it.

pub mod retry;
mod ticket;

pub use ticket::EnrichmentTicket;

pub type TraceId = [u8; 16];

/// Log records without a trace id are grouped under this id and pass straight through.
pub const UNTRACED: TraceId = [0; 16];

/// Which OTLP signal a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// `TracesData`; items are spans.
    Traces = 0,
    /// `LogsData`; items are log records.
    Logs = 1,
}

/// One trace's spans (or log records) from one request, encoded as `TracesData` (`LogsData`).
#[derive(Debug, Clone)]
pub struct TraceChunk {
    pub trace_id: TraceId,
    pub signal: Signal,
    /// Spans or log records in the chunk.
    pub items: u32,
    /// Holds a span without a parent (the root span is exported when it ends).
    pub has_root: bool,
    pub payload: Vec<u8>,
}

/// A complete trace as released by the assembler: one `TracesData` payload holding every span,
/// each under its original resource and scope, and one `LogsData` with the log records that
/// carry its trace id (GenAI instrumentations often emit message content as log events).
#[derive(Debug, Clone, Default)]
pub struct AssembledTrace {
    pub trace_id: TraceId,
    pub spans: u64,
    /// Encoded `opentelemetry.proto.trace.v1.TracesData`.
    pub payload: Vec<u8>,
    pub log_records: u64,
    /// Encoded `opentelemetry.proto.logs.v1.LogsData` (empty when the trace has no logs).
    pub logs: Vec<u8>,
    /// Set when the trace's spans wait for their topics: the stages add attributes to it and
    /// drop it when done (see `pipeline/hold.rs`).
    pub ticket: Option<EnrichmentTicket>,
}
