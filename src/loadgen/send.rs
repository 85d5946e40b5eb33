//! Replays a `Workload` over OTLP/gRPC: traces start at a steady rate, `concurrency` traces are
//! in flight at once, and each trace's spans go out in one to three export requests (as an SDK
//! batch processor flushes finished spans while the agent run is still open). Retryable
//! failures are retried with exponential back-off, honouring the server's RetryInfo.

use super::Workload;
use crate::cluster::vectors::mix_seed;
use crate::core::retry::Backoff;
use crate::export::retry::{Decision, SendError, classify};
use crate::otlp::status::grpc_retry_delay;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, TracesData};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, mpsc};
use tonic::transport::Channel;

#[derive(Clone, Debug)]
pub struct LoadgenConfig {
    /// OTLP/gRPC endpoint, e.g. `http://127.0.0.1:4317`.
    pub endpoint: String,
    /// Traces started per second; 0 sends as fast as `concurrency` allows.
    pub rate_per_sec: f64,
    pub count: u64,
    /// Traces in flight at once.
    pub concurrency: usize,
    /// Share of off-topic traces (0..=1).
    pub ood_share: f64,
    pub seed: u64,
}

impl Default for LoadgenConfig {
    fn default() -> Self {
        Self {
            endpoint: "http://127.0.0.1:4317".into(),
            rate_per_sec: 50.0,
            count: 1000,
            concurrency: 4,
            ood_share: 0.0,
            seed: 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    #[error("invalid endpoint `{0}`: {1}")]
    Endpoint(String, String),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
}

/// What a run achieved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Traces all of whose export requests were accepted.
    pub traces: u64,
    /// Spans accepted.
    pub spans: u64,
    /// Export requests accepted.
    pub requests: u64,
    /// Attempts that failed retryably and were tried again.
    pub retries: u64,
    /// Export requests given up on (not retryable, or still failing after every retry).
    pub failed_requests: u64,
    pub failed_spans: u64,
    pub elapsed: Duration,
}

impl Report {
    /// Traces sent per second of wall time.
    pub fn achieved_rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.traces as f64 / secs
        } else {
            0.0
        }
    }

    fn add(&mut self, other: &Report) {
        self.traces += other.traces;
        self.spans += other.spans;
        self.requests += other.requests;
        self.retries += other.retries;
        self.failed_requests += other.failed_requests;
        self.failed_spans += other.failed_spans;
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {} traces ({} spans in {} requests) in {:.1} s: {:.1} traces/s; {} retries, {} failed requests ({} spans)",
            self.traces,
            self.spans,
            self.requests,
            self.elapsed.as_secs_f64(),
            self.achieved_rate(),
            self.retries,
            self.failed_requests,
            self.failed_spans
        )
    }
}

/// A failed attempt is retried this many times at most.
const MAX_RETRIES: u32 = 8;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `config.count` traces of `Workload::new(config.seed)` (each shifted to end now) to
/// `config.endpoint`. Fails only when the endpoint cannot be reached at the start; later
/// failures are counted in the report.
pub async fn run(config: LoadgenConfig) -> Result<Report, LoadgenError> {
    let endpoint = tonic::transport::Endpoint::from_shared(config.endpoint.clone())
        .map_err(|e| LoadgenError::Endpoint(config.endpoint.clone(), e.to_string()))?
        .timeout(REQUEST_TIMEOUT);
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| LoadgenError::Connect(config.endpoint.clone(), error_chain(&e)))?;
    let workload = Workload::new(config.seed).with_ood_share(config.ood_share);
    let concurrency = config.concurrency.max(1);
    let (queue, receiver) = mpsc::channel::<(u64, TracesData)>(concurrency * 2);
    let receiver = Arc::new(Mutex::new(receiver));
    let started = Instant::now();

    let producer = tokio::spawn(produce(workload, config.clone(), queue, started));
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let client = TraceServiceClient::new(channel.clone());
            let receiver = receiver.clone();
            let seed = mix_seed(config.seed, w as u64, 0x5e4d);
            tokio::spawn(work(client, receiver, config.seed, seed))
        })
        .collect();
    let _ = producer.await;
    let mut report = Report::default();
    for worker in workers {
        if let Ok(part) = worker.await {
            report.add(&part);
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Hands out traces at the configured rate: trace `i` is due `i / rate` seconds after the start,
/// so a slow moment is caught up rather than lowering the average rate.
async fn produce(
    workload: Workload,
    config: LoadgenConfig,
    queue: mpsc::Sender<(u64, TracesData)>,
    started: Instant,
) {
    for i in 0..config.count {
        if config.rate_per_sec > 0.0 {
            let due = started + Duration::from_secs_f64(i as f64 / config.rate_per_sec);
            tokio::time::sleep_until(due.into()).await;
        }
        let (mut traces, _) = workload.trace(i);
        end_now(&mut traces);
        if queue.send((i, traces)).await.is_err() {
            return;
        }
    }
}

async fn work(
    mut client: TraceServiceClient<Channel>,
    receiver: Arc<Mutex<mpsc::Receiver<(u64, TracesData)>>>,
    seed: u64,
    jitter_seed: u64,
) -> Report {
    let mut jitter = fastrand::Rng::with_seed(jitter_seed);
    let mut report = Report::default();
    loop {
        let next = receiver.lock().await.recv().await;
        let Some((i, traces)) = next else {
            return report;
        };
        let mut parts_rng = fastrand::Rng::with_seed(mix_seed(seed, i, 0xba7c));
        let parts = match parts_rng.u32(0..10) {
            0..6 => 1,
            6..9 => 2,
            _ => 3,
        };
        let mut complete = true;
        for request in split_for_export(traces, parts) {
            let spans = span_count(&request) as u64;
            match export(&mut client, request, &mut jitter).await {
                Ok(retries) => {
                    report.retries += u64::from(retries);
                    report.requests += 1;
                    report.spans += spans;
                }
                Err((retries, status)) => {
                    tracing::warn!(code = ?status.code(), message = status.message(), "export failed");
                    report.retries += u64::from(retries);
                    report.failed_requests += 1;
                    report.failed_spans += spans;
                    complete = false;
                }
            }
        }
        report.traces += u64::from(complete);
    }
}

/// One export request with retries; `Ok(retries)` once accepted.
async fn export(
    client: &mut TraceServiceClient<Channel>,
    request: ExportTraceServiceRequest,
    jitter: &mut fastrand::Rng,
) -> Result<u32, (u32, tonic::Status)> {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2), 2.0, 0.3);
    let mut retries = 0;
    loop {
        let status = match client.export(request.clone()).await {
            Ok(_) => return Ok(retries),
            Err(status) => status,
        };
        let server_delay = grpc_retry_delay(&status);
        let error = SendError::Grpc {
            code: status.code(),
            message: status.message().to_string(),
            retry_info: server_delay,
        };
        // A load generator backs off under backpressure even without RetryInfo.
        let retry = matches!(classify(&error), Decision::Retry(_))
            || status.code() == tonic::Code::ResourceExhausted;
        if !retry || retries >= MAX_RETRIES {
            return Err((retries, status));
        }
        retries += 1;
        tokio::time::sleep(backoff.delay(server_delay, jitter.f64())).await;
    }
}

/// Shifts every timestamp so the trace ends now, as if the agent had just finished the run
/// whose spans it exports.
fn end_now(traces: &mut TracesData) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let spans = || {
        traces
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
    };
    let Some(end) = spans().map(|s| s.end_time_unix_nano).max() else {
        return;
    };
    let shift = |t: &mut u64| *t = t.saturating_add(now).saturating_sub(end);
    for rs in &mut traces.resource_spans {
        for ss in &mut rs.scope_spans {
            for span in &mut ss.spans {
                shift(&mut span.start_time_unix_nano);
                shift(&mut span.end_time_unix_nano);
                span.events
                    .iter_mut()
                    .for_each(|e| shift(&mut e.time_unix_nano));
            }
        }
    }
}

/// Cuts a trace into `parts` export requests of consecutive spans in the order they ended (the
/// root last), keeping each span's resource and scope. Fewer requests when the trace has fewer
/// spans.
pub fn split_for_export(traces: TracesData, parts: usize) -> Vec<ExportTraceServiceRequest> {
    let mut flat = Vec::new();
    for rs in traces.resource_spans {
        for ss in rs.scope_spans {
            for span in ss.spans {
                flat.push((rs.resource.clone(), ss.scope.clone(), span));
            }
        }
    }
    flat.sort_by_key(|(_, _, span)| span.end_time_unix_nano);
    let per_part = flat.len().div_ceil(parts.max(1)).max(1);
    let mut requests = Vec::new();
    let mut spans = flat.into_iter().peekable();
    while spans.peek().is_some() {
        let mut request = ExportTraceServiceRequest::default();
        for (resource, scope, span) in spans.by_ref().take(per_part) {
            let rs = match request
                .resource_spans
                .iter_mut()
                .position(|rs| rs.resource == resource)
            {
                Some(at) => &mut request.resource_spans[at],
                None => {
                    request.resource_spans.push(ResourceSpans {
                        resource,
                        ..Default::default()
                    });
                    request.resource_spans.last_mut().expect("just pushed")
                }
            };
            match rs.scope_spans.iter_mut().find(|ss| ss.scope == scope) {
                Some(ss) => ss.spans.push(span),
                None => rs.scope_spans.push(ScopeSpans {
                    scope,
                    spans: vec![span],
                    schema_url: String::new(),
                }),
            }
        }
        requests.push(request);
    }
    requests
}

fn span_count(request: &ExportTraceServiceRequest) -> usize {
    request
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum()
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
