//! How held traces get their topic attributes, as the engine sees it: it holds a released trace
//! until its ticket comes back (or `max_delay` passes), and asks a [`SpanEnricher`] — the topic
//! stages' side, implemented in `classify` — to put the attributes on the spans. The engine knows
//! nothing of topics.

use crate::core::TraceId;
use crate::otlp::wire::WireError;
use crate::store::StoreError;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use std::sync::Arc;
use std::time::Duration;

/// Puts attributes on spans and knows what was stored for a trace.
pub trait SpanEnricher: Send + Sync + 'static {
    /// `payload` (concatenated `TracesData`) with `attributes` added to the spans that should
    /// carry them, and how many did. `late` marks spans arriving after their trace left (their
    /// siblings are gone).
    fn apply(
        &self,
        payload: &[u8],
        attributes: &[KeyValue],
        late: bool,
    ) -> Result<(Vec<u8>, usize), WireError>;

    /// The attributes stored for a trace, for spans that arrive after it left or a trace
    /// re-assembled after a restart; empty when there are none.
    fn stored(&self, trace_id: &TraceId) -> Result<Vec<KeyValue>, StoreError>;
}

/// How released traces wait for their topics (`classify:` settings).
#[derive(Clone)]
pub struct Enrichment {
    /// Longest a trace is held before it leaves without attributes.
    pub max_delay: Duration,
    /// Enriched traces remembered for their late spans.
    pub late_span_memory: usize,
    pub enricher: Arc<dyn SpanEnricher>,
}

impl std::fmt::Debug for Enrichment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrichment")
            .field("max_delay", &self.max_delay)
            .field("late_span_memory", &self.late_span_memory)
            .finish_non_exhaustive()
    }
}
