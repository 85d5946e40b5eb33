//! The ticket a held trace travels with through the stages (see `pipeline/hold.rs` for the
//! holding side).

use super::TraceId;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use std::sync::{Arc, Mutex};

/// Called once, with the attributes the stages added, when the last clone of a ticket is dropped.
pub type OnDone = Box<dyn FnOnce(TraceId, Vec<KeyValue>) + Send + Sync>;

/// Travels with a released trace through preprocess, facet and classify. The stages add span
/// attributes to it; when the last clone is dropped — finished, skipped, shed under load or
/// parked for a retry — its owner is told, so spans wait no longer than the work takes.
#[derive(Clone)]
pub struct EnrichmentTicket(Arc<Ticket>);

struct Ticket {
    trace_id: TraceId,
    attributes: Mutex<Vec<KeyValue>>,
    on_done: Option<OnDone>,
}

impl EnrichmentTicket {
    /// A ticket for `trace_id` whose owner learns its attributes through `on_done`.
    pub fn new(trace_id: TraceId, on_done: OnDone) -> Self {
        Self(Arc::new(Ticket {
            trace_id,
            attributes: Mutex::new(Vec::new()),
            on_done: Some(on_done),
        }))
    }

    pub fn trace_id(&self) -> &TraceId {
        &self.0.trace_id
    }

    /// Attributes for the trace's spans (see `classify.enrich`). A key added twice keeps the
    /// last value.
    pub fn add(&self, attributes: impl IntoIterator<Item = KeyValue>) {
        let mut held = self.0.attributes.lock().expect("ticket lock");
        for attribute in attributes {
            held.retain(|a| a.key != attribute.key);
            held.push(attribute);
        }
    }
}

impl std::fmt::Debug for EnrichmentTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EnrichmentTicket({})", hex::encode(self.0.trace_id))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let attributes = std::mem::take(self.attributes.get_mut().expect("ticket lock"));
        if let Some(on_done) = self.on_done.take() {
            on_done(self.trace_id, attributes);
        }
    }
}
