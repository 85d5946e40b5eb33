//! OTLP receivers: gRPC `TraceService/Export` and OTLP/HTTP `POST /v1/traces`. Both validate and
//! split a request by trace, then hand it to the engine, answering OK only once it is durable.

pub mod config;
pub mod grpc;
pub mod http;
pub mod split;
pub mod wire;

use crate::pipeline::{EngineHandle, Refusal};
use crate::telemetry::metrics::{Metrics, TransportLabel};
use split::SplitRequest;
use std::sync::Arc;

pub use config::ReceiversConfig;

/// What receivers share: the engine and the counters.
#[derive(Clone)]
pub struct Ingest {
    pub engine: EngineHandle,
    pub metrics: Arc<Metrics>,
}

impl Ingest {
    /// Stores the valid spans of a request; `Ok` means they are durable.
    pub async fn accept(
        &self,
        split: SplitRequest,
        transport: &'static str,
    ) -> Result<(), Refusal> {
        let label = TransportLabel { transport };
        if split.rejected_spans > 0 {
            self.metrics
                .receiver_rejected_spans
                .get_or_create(&label)
                .inc_by(split.rejected_spans);
        }
        let accepted = split.accepted_spans;
        if split.chunks.is_empty() {
            return Ok(());
        }
        match self.engine.ingest(split.chunks).await {
            Ok(()) => {
                self.metrics
                    .receiver_accepted_spans
                    .get_or_create(&label)
                    .inc_by(accepted);
                Ok(())
            }
            Err(refusal) => {
                self.metrics
                    .receiver_refused_spans
                    .get_or_create(&label)
                    .inc_by(accepted);
                Err(refusal)
            }
        }
    }

    pub fn failed_request(&self, transport: &'static str) {
        self.metrics
            .receiver_failed_requests
            .get_or_create(&TransportLabel { transport })
            .inc();
    }
}
