//! The exporter: reads the persistent sending queue in order, batches records into export
//! requests, sends them with retries, and tells the engine to delete what the downstream
//! acknowledged (or permanently refused). Delivery is at-least-once: a crash between the
//! downstream's OK and the delete re-sends that batch after restart.

pub mod client;
pub mod config;
pub mod retry;
pub mod target;

use crate::core::Signal;
use crate::core::retry::{Backoff, within_budget};
use crate::otlp::wire::{Reader, Value};
use crate::pipeline::{Acknowledger, QueueConsumer};
use crate::store::queue::{Batch, BatchLimits};
use crate::telemetry::metrics::{Metrics, ReasonLabel};
use bytes::Bytes;
use client::OtlpClient;
use config::OtlpExporterConfig;
use retry::{Decision, classify};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

pub use config::ExportersConfig;

pub struct Exporter {
    queue: QueueConsumer,
    sender: Sender,
}

/// What each send needs; shared by the concurrent sends.
struct Sender {
    client: OtlpClient,
    config: OtlpExporterConfig,
    acknowledger: Acknowledger,
    metrics: Arc<Metrics>,
}

/// Controls a running exporter.
pub struct ExporterHandle {
    drain: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ExporterHandle {
    /// Sends everything still queued, without waiting for full batches, for at most `deadline`.
    /// What is not delivered by then stays in the redb file for the next start.
    pub async fn drain(self, deadline: Duration) -> bool {
        let _ = self.drain.send(true);
        let mut task = self.task;
        match tokio::time::timeout(deadline, &mut task).await {
            Ok(_) => true,
            Err(_) => {
                task.abort();
                let _ = task.await;
                false
            }
        }
    }
}

impl Exporter {
    pub fn new(
        queue: QueueConsumer,
        client: OtlpClient,
        config: OtlpExporterConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        let acknowledger = queue.acknowledger();
        Self {
            queue,
            sender: Sender {
                client,
                config,
                acknowledger,
                metrics,
            },
        }
    }

    pub fn spawn(self) -> ExporterHandle {
        let (drain, drain_rx) = watch::channel(false);
        let task = tokio::spawn(self.run(drain_rx));
        ExporterHandle { drain, task }
    }

    async fn run(self, mut drain: watch::Receiver<bool>) {
        let consumers = self.sender.config.sending_queue.num_consumers.max(1);
        let permits = Arc::new(Semaphore::new(consumers));
        let mut queue = self.queue;
        let this = Arc::new(self.sender);
        let limits = BatchLimits {
            max_items: this.config.batch.send_batch_size as u64,
            max_bytes: this.config.batch.send_batch_max_bytes,
        };
        let mut waiting_since: Option<Instant> = None;
        let mut sends = tokio::task::JoinSet::new();
        loop {
            while sends.try_join_next().is_some() {}
            // A dropped handle (a failed start, a test that never shuts down) means drain too;
            // without this, `changed()` would return at once and the loop would spin.
            let closed = drain.has_changed().is_err();
            let draining = closed || *drain.borrow();
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore is never closed");
            let batch = match queue.peek(limits) {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the sending queue; retrying");
                    drop(permit);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if batch.is_empty() {
                drop(permit);
                waiting_since = None;
                if draining && permits.available_permits() == consumers {
                    break;
                }
                let grew = queue.grew();
                tokio::select! {
                    _ = grew.notified() => {}
                    _ = drain.changed(), if !closed => {}
                    // In-flight sends finishing matter while draining.
                    Some(_) = sends.join_next(), if !sends.is_empty() => {}
                }
                continue;
            }
            if !batch.full && !draining {
                let since = *waiting_since.get_or_insert_with(Instant::now);
                let fill_deadline = since + this.config.batch.timeout.get();
                if Instant::now() < fill_deadline {
                    drop(permit);
                    let grew = queue.grew();
                    tokio::select! {
                        _ = tokio::time::sleep_until(fill_deadline.into()) => {}
                        _ = grew.notified() => {}
                        _ = drain.changed(), if !closed => {}
                    }
                    continue;
                }
            }
            waiting_since = None;
            queue.take(&batch);
            let exporter = this.clone();
            sends.spawn(async move { exporter.deliver(batch, permit).await });
        }
        while sends.join_next().await.is_some() {}
    }
}

impl Sender {
    /// Sends one batch until it is delivered, permanently refused, or out of retry time, then
    /// acknowledges it so its records leave the queue.
    async fn deliver(&self, mut batch: Batch, permit: OwnedSemaphorePermit) {
        let payload = Bytes::from(std::mem::take(&mut batch.payload));
        let parts = split_request(payload.clone(), self.config.batch.send_batch_max_bytes);
        if parts.len() == 1 {
            if let Some(reason) = self
                .send_part(batch.signal, payload.clone(), batch.items)
                .await
            {
                if reason == "permanent" && batch.records.len() > 1 {
                    // One bad record must not take its neighbours down: try them one by one.
                    tracing::warn!(
                        records = batch.records.len(),
                        "resending a refused batch record by record"
                    );
                    for record in &batch.records {
                        let part = payload.slice(record.range.clone());
                        if let Some(reason) = self.send_part(batch.signal, part, record.items).await
                        {
                            self.count_failed(batch.signal, reason, record.items);
                        }
                    }
                } else {
                    self.count_failed(batch.signal, reason, batch.items);
                }
            }
        } else {
            for part in parts {
                let spans = count_items(&part);
                if let Some(reason) = self.send_part(batch.signal, part, spans).await {
                    self.count_failed(batch.signal, reason, spans);
                }
            }
        }
        self.acknowledger.acknowledge(&batch).await;
        drop(permit);
    }

    fn count_failed(&self, signal: Signal, reason: &'static str, items: u64) {
        let family = match signal {
            Signal::Traces => &self.metrics.exporter_send_failed_spans,
            Signal::Logs => &self.metrics.exporter_send_failed_log_records,
        };
        family.get_or_create(&ReasonLabel { reason }).inc_by(items);
    }

    /// Sends one request, retrying as the rules allow. Returns why it was given up on, if it
    /// was; delivered spans (and partial-success rejections) are counted here.
    async fn send_part(&self, signal: Signal, payload: Bytes, spans: u64) -> Option<&'static str> {
        let retry = &self.config.retry_on_failure;
        let mut backoff = Backoff::new(
            retry.initial_interval.get(),
            retry.max_interval.get(),
            retry.multiplier,
            retry.randomization_factor,
        );
        let started = Instant::now();
        let endpoint = self.client.endpoint();
        loop {
            match self.client.export(signal, payload.clone()).await {
                Ok(accepted) => {
                    let rejected = accepted.rejected_spans.min(spans);
                    match signal {
                        Signal::Traces => self.metrics.exporter_sent_spans.inc_by(spans - rejected),
                        Signal::Logs => self
                            .metrics
                            .exporter_sent_log_records
                            .inc_by(spans - rejected),
                    };
                    if rejected > 0 {
                        self.count_failed(signal, "rejected", rejected);
                        tracing::warn!(rejected, message = %accepted.message, endpoint, "downstream rejected spans (partial success); not retried");
                    }
                    return None;
                }
                Err(error) => match classify(&error) {
                    Decision::Drop => {
                        tracing::error!(%error, endpoint, spans, "downstream refused the request permanently; not retrying it");
                        return Some("permanent");
                    }
                    Decision::Retry(_) if !retry.enabled => {
                        tracing::error!(%error, endpoint, spans, "export failed and retry_on_failure is disabled; dropping the request");
                        return Some("retry_disabled");
                    }
                    Decision::Retry(server_delay) => {
                        let delay = backoff.delay(server_delay, fastrand::f64());
                        if !within_budget(started.elapsed(), delay, retry.max_elapsed_time.get()) {
                            tracing::error!(%error, endpoint, spans, "giving up after retry_on_failure.max_elapsed_time");
                            return Some("retries_exhausted");
                        }
                        self.metrics.exporter_requests_retried.inc();
                        tracing::warn!(%error, endpoint, retry_in = ?delay, server_asked = ?server_delay, spans, "export failed; will retry");
                        tokio::time::sleep(delay).await;
                    }
                },
            }
        }
    }
}

/// Cuts a request larger than `max_bytes` into several at `ResourceSpans` boundaries (a trace
/// assembled from many requests has one per chunk), so one huge trace does not exceed the
/// downstream's message limit. A single `ResourceSpans` over the limit still goes alone.
fn split_request(payload: Bytes, max_bytes: usize) -> Vec<Bytes> {
    if payload.len() <= max_bytes {
        return vec![payload];
    }
    let mut parts = Vec::new();
    let mut reader = Reader::new(&payload);
    let (mut start, mut end) = (0, 0);
    loop {
        let field_start = payload.len() - reader.remaining();
        match reader.next_field() {
            Ok(Some(_)) => {
                let field_end = payload.len() - reader.remaining();
                if end > start && field_end - start > max_bytes {
                    parts.push(payload.slice(start..end));
                    start = field_start;
                }
                end = field_end;
            }
            // Queue records are written by this process and always well-formed; should one
            // not be, send the rest whole and let the downstream judge it.
            Ok(None) | Err(_) => break,
        }
    }
    parts.push(payload.slice(start..));
    parts
}

/// Spans (log records) in an encoded `TracesData` / `LogsData`: both nest their items as field 2
/// of field 2 of field 1.
fn count_items(payload: &[u8]) -> u64 {
    let mut count = 0;
    let mut top = Reader::new(payload);
    while let Ok(Some((1, Value::Len(resource_spans)))) = top.next_field() {
        let mut rs = Reader::new(resource_spans);
        while let Ok(Some((field, value))) = rs.next_field() {
            if let (2, Value::Len(scope_spans)) = (field, value) {
                let mut ss = Reader::new(scope_spans);
                while let Ok(Some((field, _))) = ss.next_field() {
                    count += u64::from(field == 2);
                }
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::split::split_by_trace;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, TracesData};
    use prost::Message;

    fn chunk(trace: u8, spans: u8) -> Vec<u8> {
        let spans = (1..=spans)
            .map(|i| Span {
                trace_id: vec![trace; 16],
                span_id: vec![i; 8],
                name: "x".repeat(100),
                ..Default::default()
            })
            .collect();
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        split_by_trace(request).unwrap().chunks.remove(0).payload
    }

    #[test]
    fn oversize_requests_are_cut_at_resource_boundaries_without_losing_a_span() {
        let payload: Vec<u8> = [chunk(1, 5), chunk(2, 3), chunk(3, 4), chunk(4, 1)].concat();
        let whole = Bytes::from(payload);
        assert_eq!(count_items(&whole), 13);
        assert_eq!(split_request(whole.clone(), whole.len()).len(), 1);
        let parts = split_request(whole.clone(), 700);
        assert!(parts.len() > 1);
        assert_eq!(parts.iter().map(|p| count_items(p)).sum::<u64>(), 13);
        assert_eq!(
            parts.concat(),
            whole.to_vec(),
            "parts are a partition of the request"
        );
        for part in &parts {
            assert!(
                part.len() <= 700
                    || TracesData::decode(part.as_ref())
                        .unwrap()
                        .resource_spans
                        .len()
                        == 1
            );
            TracesData::decode(part.as_ref()).expect("each part is a valid request");
        }
    }
}
