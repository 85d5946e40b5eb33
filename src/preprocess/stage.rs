//! The preprocess stage in the running sidecar. It sits beside the span path: the engine hands
//! each released trace over without waiting (a full hand-over queue is counted, never waited
//! on), and a worker thread turns it into text. Spans are exported whatever happens here.

use super::{PreprocessConfig, Preprocessed, Preprocessor, Skipped, TraceView};
use crate::core::{AssembledTrace, EnrichmentTicket};
use crate::pipeline::TraceHook;
use crate::telemetry::metrics::{Metrics, PluginErrorLabel, PreprocessLabel};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

/// Traces waiting for the worker; beyond this the stage sheds load instead of growing memory.
const HANDOVER_QUEUE: usize = 1024;

/// Where preprocessed traces go next (the facet stage; a test can collect them).
pub trait PreprocessedSink: Send + 'static {
    fn accept(&mut self, trace: Preprocessed);

    /// As `accept`, for a trace whose spans wait for enrichment: a sink that enriches keeps the
    /// ticket until it is done with the trace; dropping it releases the spans.
    fn accept_ticketed(&mut self, trace: Preprocessed, ticket: Option<EnrichmentTicket>) {
        drop(ticket);
        self.accept(trace);
    }
}

/// Drops the text: used until a facet stage consumes it.
pub struct Discard;

impl PreprocessedSink for Discard {
    fn accept(&mut self, _trace: Preprocessed) {}
}

/// The engine-side half: copies each trace into the hand-over queue.
pub struct PreprocessHook {
    sender: SyncSender<AssembledTrace>,
    metrics: Arc<Metrics>,
    name: String,
}

impl TraceHook for PreprocessHook {
    fn on_trace(&mut self, trace: &mut AssembledTrace) {
        // The ticket moves with the trace; a shed trace drops it, so its spans do not wait.
        let ticket = trace.ticket.take();
        let handover = AssembledTrace {
            ticket,
            ..trace.clone()
        };
        match self.sender.try_send(handover) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.metrics
                    .preprocess_traces
                    .get_or_create(&PreprocessLabel {
                        preprocessor: self.name.clone(),
                        outcome: "busy",
                    })
                    .inc();
            }
        }
    }
}

/// Starts the worker thread running every preprocessor in `names` (the global one and those
/// facets name) on each trace; it ends when the hook (and so the engine) is dropped. A QuickJS
/// runtime cannot move between threads, so preprocessors are built on the worker; a plugin that
/// compiled at validation but fails to load now falls back to the default preprocessor.
pub fn start(
    config: &PreprocessConfig,
    names: Vec<String>,
    base_dir: &Path,
    mut sink: Box<dyn PreprocessedSink>,
    metrics: Arc<Metrics>,
) -> (PreprocessHook, std::thread::JoinHandle<()>) {
    let (sender, receiver) = sync_channel(HANDOVER_QUEUE);
    let hook = PreprocessHook {
        sender,
        metrics: metrics.clone(),
        name: names.join(","),
    };
    let (config, base_dir) = (config.clone(), base_dir.to_path_buf());
    let thread = std::thread::Builder::new()
        .name("tracetopics-preprocess".into())
        .spawn(move || {
            let mut preprocessors: Vec<Preprocessor> = names
                .iter()
                .map(|name| {
                    Preprocessor::new(&config, name, &base_dir).unwrap_or_else(|e| {
                        tracing::error!(preprocessor = %name, error = %e, "cannot load the preprocessor; using the default one");
                        Preprocessor::builtin(config.max_tokens)
                    })
                })
                .collect();
            work(&mut preprocessors, sink.as_mut(), &metrics, receiver)
        })
        .expect("spawning the preprocess thread");
    (hook, thread)
}

fn work(
    preprocessors: &mut [Preprocessor],
    sink: &mut dyn PreprocessedSink,
    metrics: &Metrics,
    receiver: Receiver<AssembledTrace>,
) {
    let mut log_limiter = RateLimitedLog::new(Duration::from_secs(10));
    for trace in receiver {
        let view = match TraceView::decode(&trace.trace_id, &trace.payload, &trace.logs) {
            Ok(view) => view,
            Err(e) => {
                metrics
                    .preprocess_traces
                    .get_or_create(&PreprocessLabel {
                        preprocessor: String::new(),
                        outcome: "undecodable",
                    })
                    .inc();
                tracing::debug!(error = %e, "cannot preprocess a trace");
                continue;
            }
        };
        for preprocessor in preprocessors.iter_mut() {
            run_one(
                preprocessor,
                &view,
                sink,
                trace.ticket.clone(),
                metrics,
                &mut log_limiter,
            );
        }
    }
}

fn run_one(
    preprocessor: &mut Preprocessor,
    view: &TraceView,
    sink: &mut dyn PreprocessedSink,
    ticket: Option<EnrichmentTicket>,
    metrics: &Metrics,
    log_limiter: &mut RateLimitedLog,
) {
    let name = preprocessor.name().to_string();
    let count = |outcome: &'static str| {
        metrics
            .preprocess_traces
            .get_or_create(&PreprocessLabel {
                preprocessor: name.clone(),
                outcome,
            })
            .inc();
    };
    let plugin_error = |error: &super::PluginError, log: &mut RateLimitedLog| {
        metrics
            .preprocess_plugin_errors
            .get_or_create(&PluginErrorLabel {
                plugin: name.clone(),
                error: error.kind(),
            })
            .inc();
        if let Some(suppressed) = log.allow() {
            tracing::warn!(plugin = %name, %error, suppressed, "preprocess plugin failed");
        }
    };
    match preprocessor.run(view) {
        Ok(preprocessed) => {
            if let Some(error) = &preprocessed.plugin_error {
                plugin_error(error, log_limiter);
                count("fallback");
            } else {
                count("ok");
            }
            metrics.preprocess_output_bytes.inc_by(
                preprocessed
                    .segments
                    .iter()
                    .map(|s| s.len() as u64 + 1)
                    .sum(),
            );
            sink.accept_ticketed(preprocessed, ticket);
        }
        Err(Skipped::ByPlugin) => count("skipped"),
        Err(Skipped::Empty) => count("empty"),
        Err(Skipped::PluginFailed(error)) => {
            plugin_error(&error, log_limiter);
            count("failed");
        }
    }
}

/// At most one log line per period; reports how many were suppressed in between.
struct RateLimitedLog {
    period: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    fn new(period: Duration) -> Self {
        Self {
            period,
            last: None,
            suppressed: 0,
        }
    }

    fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < self.period => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}
