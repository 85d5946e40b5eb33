//! The hook every assembled trace passes through before export. Later stages (preprocess, facet,
//! classify) plug in here; today the default hook passes traces through unchanged.

mod engine;
mod enrich;
pub mod hold;
mod queue;
mod tables;

use crate::core::AssembledTrace;
pub use engine::{Command, Engine, EngineHandle, EngineInbox, Refusal};
pub use enrich::{Enrichment, SpanEnricher};
pub use queue::{Acknowledger, QueueConsumer};

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
