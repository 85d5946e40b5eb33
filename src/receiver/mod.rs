//! OTLP receivers: gRPC `TraceService/Export` and `LogsService/Export`, OTLP/HTTP
//! `POST /v1/traces` and `POST /v1/logs`. Both validate and split a request by trace, then hand it
//! to the engine, answering OK only once it is durable.

pub mod config;
pub mod grpc;
pub mod http;
pub mod server;
pub mod tls;

use crate::core::Signal;
use crate::otlp::split::SplitRequest;
use crate::pipeline::{EngineHandle, Refusal};
use crate::telemetry::metrics::{Metrics, TransportLabel, TransportReasonLabel};
use std::sync::Arc;

pub use config::ReceiversConfig;

/// What receivers share: the engine and the counters.
#[derive(Clone)]
pub struct Ingest {
    pub engine: EngineHandle,
    pub metrics: Arc<Metrics>,
}

impl Ingest {
    /// Stores the valid spans (or log records) of a request; `Ok` means they are durable.
    pub async fn accept(
        &self,
        split: SplitRequest,
        signal: Signal,
        transport: &'static str,
    ) -> Result<(), Refusal> {
        let label = TransportLabel { transport };
        let m = &self.metrics;
        let (accepted_counter, refused_counter, rejected_counter) = match signal {
            Signal::Traces => (
                &m.receiver_accepted_spans,
                &m.receiver_refused_spans,
                &m.receiver_rejected_spans,
            ),
            Signal::Logs => (
                &m.receiver_accepted_log_records,
                &m.receiver_refused_log_records,
                &m.receiver_rejected_log_records,
            ),
        };
        if split.rejected_spans > 0 {
            rejected_counter
                .get_or_create(&label)
                .inc_by(split.rejected_spans);
        }
        let accepted = split.accepted_spans;
        if split.chunks.is_empty() {
            return Ok(());
        }
        match self.engine.ingest(split.chunks).await {
            Ok(()) => {
                accepted_counter.get_or_create(&label).inc_by(accepted);
                Ok(())
            }
            Err(refusal) => {
                refused_counter.get_or_create(&label).inc_by(accepted);
                Err(refusal)
            }
        }
    }

    /// Counts a request refused before its data reached the engine. `reason`: `too_large`,
    /// `undecodable` or `unsupported` (content type or encoding).
    pub fn failed_request(&self, transport: &'static str, reason: &'static str) {
        self.metrics
            .receiver_failed_requests
            .get_or_create(&TransportReasonLabel { transport, reason })
            .inc();
    }
}
