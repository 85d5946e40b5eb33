//! The hook every assembled trace passes through before export. Later stages (preprocess, facet,
//! classify) plug in here; today the default hook passes traces through unchanged.

mod engine;
pub mod hold;
mod tables;

pub use engine::{Command, Engine, EngineHandle, Enrichment, Refusal};
pub use hold::EnrichmentTicket;

/// A complete trace as released by the assembler: one `TracesData` payload holding every span,
/// each under its original resource and scope, and one `LogsData` with the log records that
/// carry its trace id (GenAI instrumentations often emit message content as log events).
#[derive(Debug, Clone, Default)]
pub struct AssembledTrace {
    pub trace_id: crate::assemble::TraceId,
    pub spans: u64,
    /// Encoded `opentelemetry.proto.trace.v1.TracesData`.
    pub payload: Vec<u8>,
    pub log_records: u64,
    /// Encoded `opentelemetry.proto.logs.v1.LogsData` (empty when the trace has no logs).
    pub logs: Vec<u8>,
    /// Set when the trace's spans wait for their topics: the stages add attributes to it and
    /// drop it when done (see `hold.rs`).
    pub ticket: Option<EnrichmentTicket>,
}

/// Called once per released trace, on the engine thread, before the trace is queued for export
/// (or held for enrichment). It must not block; it may keep the trace's ticket.
pub trait TraceHook: Send + 'static {
    fn on_trace(&mut self, trace: &mut AssembledTrace);
}

/// Passes every trace through unchanged.
#[derive(Debug, Default)]
pub struct PassThrough;

impl TraceHook for PassThrough {
    fn on_trace(&mut self, _trace: &mut AssembledTrace) {}
}
