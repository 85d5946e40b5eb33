//! The exporter: reads the persistent sending queue in order, batches records into export
//! requests, sends them with retries, and tells the engine to delete what the downstream
//! acknowledged (or permanently refused). Delivery is at-least-once: a crash between the
//! downstream's OK and the delete re-sends that batch after restart.

pub mod client;
pub mod config;
pub mod retry;
pub mod target;

use crate::pipeline::EngineHandle;
use crate::store::{self, QUEUE};
use crate::telemetry::metrics::{Metrics, ReasonLabel};
use bytes::Bytes;
use client::OtlpClient;
use config::OtlpExporterConfig;
use redb::{Database, ReadableDatabase};
use retry::{Backoff, Decision, classify};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

pub use config::ExportersConfig;

struct Batch {
    keys: Vec<u64>,
    spans: u64,
    payload: Vec<u8>,
    /// Stopped at a size limit (more is waiting), so there is no point waiting to fill it.
    full: bool,
}

pub struct Exporter {
    db: Arc<Database>,
    client: OtlpClient,
    config: OtlpExporterConfig,
    engine: EngineHandle,
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
        db: Arc<Database>,
        config: OtlpExporterConfig,
        engine: EngineHandle,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let client = OtlpClient::new(&config)?;
        Ok(Self {
            db,
            client,
            config,
            engine,
            metrics,
        })
    }

    pub fn spawn(self) -> ExporterHandle {
        let (drain, drain_rx) = watch::channel(false);
        let task = tokio::spawn(self.run(drain_rx));
        ExporterHandle { drain, task }
    }

    async fn run(self, mut drain: watch::Receiver<bool>) {
        let consumers = self.config.sending_queue.num_consumers.max(1);
        let permits = Arc::new(Semaphore::new(consumers));
        let this = Arc::new(self);
        let mut cursor = 0u64;
        let mut waiting_since: Option<Instant> = None;
        let mut sends = tokio::task::JoinSet::new();
        loop {
            while sends.try_join_next().is_some() {}
            let draining = *drain.borrow();
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore is never closed");
            let batch = match this.read_batch(cursor) {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the sending queue; retrying");
                    drop(permit);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if batch.keys.is_empty() {
                drop(permit);
                waiting_since = None;
                if draining && permits.available_permits() == consumers {
                    break;
                }
                let grew = this.engine.queue_grew.clone();
                tokio::select! {
                    _ = grew.notified() => {}
                    _ = drain.changed() => {}
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
                    let grew = this.engine.queue_grew.clone();
                    tokio::select! {
                        _ = tokio::time::sleep_until(fill_deadline.into()) => {}
                        _ = grew.notified() => {}
                        _ = drain.changed() => {}
                    }
                    continue;
                }
            }
            waiting_since = None;
            cursor = batch.keys.last().expect("non-empty batch") + 1;
            let exporter = this.clone();
            sends.spawn(async move { exporter.deliver(batch, permit).await });
        }
        while sends.join_next().await.is_some() {}
    }

    fn read_batch(&self, cursor: u64) -> Result<Batch, store::StoreError> {
        let db = &self.db;
        let max_spans = self.config.batch.send_batch_size as u64;
        let max_bytes = self.config.batch.send_batch_max_bytes;
        // Reads hit redb's page cache (the records were just written), so they run inline
        // rather than waking a blocking-pool thread per batch.
        {
            let tx = db.begin_read()?;
            let table = tx.open_table(QUEUE)?;
            let mut batch = Batch {
                keys: Vec::new(),
                spans: 0,
                payload: Vec::new(),
                full: false,
            };
            for entry in table.range(cursor..)? {
                let (key, value) = entry?;
                let (spans, payload) = store::split_queued(value.value());
                let spans = u64::from(spans);
                if !batch.keys.is_empty()
                    && (batch.spans + spans > max_spans
                        || batch.payload.len() + payload.len() > max_bytes)
                {
                    batch.full = true;
                    break;
                }
                batch.keys.push(key.value());
                batch.spans += spans;
                batch.payload.extend_from_slice(payload);
                if batch.spans >= max_spans {
                    batch.full = true;
                    break;
                }
            }
            Ok(batch)
        }
    }

    /// Sends one batch until it is delivered, permanently refused, or out of retry time.
    async fn deliver(&self, batch: Batch, permit: OwnedSemaphorePermit) {
        let retry = &self.config.retry_on_failure;
        let mut backoff = Backoff::new(
            retry.initial_interval.get(),
            retry.max_interval.get(),
            retry.multiplier,
            retry.randomization_factor,
        );
        let started = Instant::now();
        let payload = Bytes::from(batch.payload);
        let failed = |reason: &'static str, spans: u64| {
            self.metrics
                .exporter_send_failed_spans
                .get_or_create(&ReasonLabel { reason })
                .inc_by(spans);
        };
        loop {
            match self.client.export(payload.clone()).await {
                Ok(accepted) => {
                    let rejected = accepted.rejected_spans.min(batch.spans);
                    self.metrics
                        .exporter_sent_spans
                        .inc_by(batch.spans - rejected);
                    if rejected > 0 {
                        failed("rejected", rejected);
                        tracing::warn!(rejected, message = %accepted.message, "downstream rejected spans (partial success); not retried");
                    }
                    break;
                }
                Err(error) => match classify(&error) {
                    Decision::Drop => {
                        failed("permanent", batch.spans);
                        tracing::error!(%error, spans = batch.spans, "downstream refused the batch permanently; dropping it");
                        break;
                    }
                    Decision::Retry(_) if !retry.enabled => {
                        failed("retry_disabled", batch.spans);
                        tracing::error!(%error, spans = batch.spans, "export failed and retry_on_failure is disabled; dropping the batch");
                        break;
                    }
                    Decision::Retry(server_delay) => {
                        let delay = backoff.delay(server_delay, fastrand::f64());
                        let max_elapsed = retry.max_elapsed_time.get();
                        if !max_elapsed.is_zero() && started.elapsed() + delay > max_elapsed {
                            failed("retries_exhausted", batch.spans);
                            tracing::error!(%error, spans = batch.spans, "giving up after retry_on_failure.max_elapsed_time");
                            break;
                        }
                        self.metrics.exporter_requests_retried.inc();
                        tracing::warn!(%error, retry_in = ?delay, spans = batch.spans, "export failed; will retry");
                        tokio::time::sleep(delay).await;
                    }
                },
            }
        }
        self.engine.delivered(batch.keys, batch.spans).await;
        drop(permit);
    }
}
