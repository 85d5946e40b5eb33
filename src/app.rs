//! Wires the stages together and runs the process lifecycle: bind, serve, and on shutdown stop
//! accepting, release every buffered trace, and drain the queue until the deadline.

use crate::assemble::Assembler;
use crate::classify::enricher::TopicEnricher;
use crate::classify::stage::{Classifier, StoredBackfill};
use crate::config::Config;
use crate::export::client::OtlpClient;
use crate::export::{Exporter, ExporterHandle};
use crate::pipeline::{Engine, EngineHandle, Enrichment, QueueConsumer, TraceHook};
use crate::preprocess::stage::PreprocessedSink;
use crate::receiver::Ingest;
use crate::receiver::grpc::{GrpcReceiver, otlp_status_codes};
use crate::telemetry::metrics::Metrics;
use crate::topics::PublishedMaps;
use crate::{receiver, store, telemetry};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("cannot listen on {endpoint} ({what}): {source}")]
    Bind {
        what: &'static str,
        endpoint: String,
        source: std::io::Error,
    },
    #[error("exporter: {0}")]
    Exporter(String),
    #[error("{0}: {1}")]
    Tls(&'static str, String),
    #[error("pipeline stage: {0}")]
    Stage(String),
}

pub struct Sidecar;

/// The addresses actually bound (ports may have been 0 in the config).
#[derive(Debug, Clone, Copy)]
pub struct BoundAddresses {
    pub grpc: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub metrics: SocketAddr,
    pub health: SocketAddr,
    /// The topics admin endpoint (only with the facet stages).
    pub admin: Option<SocketAddr>,
}

pub struct RunningSidecar {
    pub addresses: BoundAddresses,
    pub metrics: Arc<Metrics>,
    healthy: Arc<AtomicBool>,
    stop_receivers: watch::Sender<bool>,
    stop_telemetry: watch::Sender<bool>,
    receivers: Vec<JoinHandle<()>>,
    telemetry: Vec<JoinHandle<()>>,
    engine: EngineHandle,
    engine_thread: std::thread::JoinHandle<()>,
    /// Stage workers; they finish once the engine (holding their hand-over queue) stops.
    stage_threads: Vec<std::thread::JoinHandle<()>>,
    /// The facet stage; it finishes the traces it holds once preprocessing stops.
    facet_task: Option<JoinHandle<()>>,
    topics: Option<crate::topics::TopicsHandle>,
    exporter: ExporterHandle,
    shutdown_timeout: Duration,
}

/// How a shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Everything queued was delivered before the deadline.
    pub drained: bool,
    /// Spans left in the redb queue for the next start.
    pub spans_left: i64,
}

async fn bind(
    what: &'static str,
    endpoint: &crate::config::types::Endpoint,
) -> Result<TcpListener, StartError> {
    TcpListener::bind(endpoint.address())
        .await
        .map_err(|source| StartError::Bind {
            what,
            endpoint: endpoint.to_string(),
            source,
        })
}

async fn until_true(mut flag: watch::Receiver<bool>) {
    let _ = flag.wait_for(|stop| *stop).await;
}

/// What every released trace passes through.
enum Stages {
    /// Preprocess, then facets and embeddings into redb.
    Facets,
    /// The preprocess stage, handing its text to the sink.
    Preprocess(Box<dyn PreprocessedSink>),
    /// A caller-supplied hook instead of the stages (tests, embedding).
    Hook(Box<dyn TraceHook>),
}

impl Sidecar {
    pub async fn start(config: Config) -> Result<RunningSidecar, StartError> {
        Self::start_stages(config, Stages::Facets).await
    }

    /// Runs the pipeline with `hook` in place of the topic stages.
    pub async fn start_with_hook(
        config: Config,
        hook: Box<dyn TraceHook>,
    ) -> Result<RunningSidecar, StartError> {
        Self::start_stages(config, Stages::Hook(hook)).await
    }

    /// Runs the pipeline and hands every preprocessed trace to `sink`.
    pub async fn start_with_preprocessed_sink(
        config: Config,
        sink: Box<dyn PreprocessedSink>,
    ) -> Result<RunningSidecar, StartError> {
        Self::start_stages(config, Stages::Preprocess(sink)).await
    }

    async fn start_stages(config: Config, stages: Stages) -> Result<RunningSidecar, StartError> {
        // Everything that can fail comes first, so a failed start leaves no task behind.
        let protocols = &config.receivers.otlp.protocols;
        let grpc_listener = match &protocols.grpc {
            Some(grpc) => Some((bind("OTLP/gRPC receiver", &grpc.endpoint).await?, grpc)),
            None => None,
        };
        let http_listener = match &protocols.http {
            Some(http) => Some((bind("OTLP/HTTP receiver", &http.endpoint).await?, http)),
            None => None,
        };
        let metrics_listener = bind("metrics", &config.telemetry.metrics.endpoint).await?;
        let health_listener = bind("health check", &config.health_check.endpoint).await?;
        let mut admin_listener = Some(bind("topics admin", &config.topics.admin.endpoint).await?);
        let mut grpc_server = tonic::transport::Server::builder();
        if let Some(tls) = protocols.grpc.as_ref().and_then(|g| g.tls.as_ref()) {
            grpc_server = receiver::tls::grpc_config(tls)
                .and_then(|tls| grpc_server.tls_config(tls).map_err(|e| e.to_string()))
                .map_err(|e| StartError::Tls("OTLP/gRPC receiver", e))?;
        }
        let http_tls = match protocols.http.as_ref().and_then(|h| h.tls.as_ref()) {
            Some(tls) => Some(
                receiver::tls::rustls_config(tls)
                    .map_err(|e| StartError::Tls("OTLP/HTTP receiver", e))?,
            ),
            None => None,
        };
        let client = OtlpClient::new(&config.exporters.otlp).map_err(StartError::Exporter)?;
        let (db, recovered) = store::open(&config.storage)?;
        if !recovered.pending.is_empty() || recovered.queued_items > 0 {
            tracing::info!(
                buffered_chunks = recovered.pending.len(),
                queued_items = recovered.queued_items,
                "recovered unsent data from {}",
                config.storage.path.display()
            );
        }

        let metrics = Arc::new(Metrics::new());
        let db = Arc::new(db);
        let mut facet_task = None;
        // The current topic map of each facet: written by the automation, read per trace.
        let maps = PublishedMaps::default();
        // Spans wait for topics only when the topic stages run and there is something to add.
        let enrichment = match (&stages, config.classify.enrich.target()) {
            (Stages::Facets, Some(target))
                if !config.classify.max_enrichment_delay.get().is_zero()
                    && !crate::facet::specs(&config.facets, &config.preprocess.preprocessor)
                        .unwrap_or_default()
                        .is_empty() =>
            {
                Some(Enrichment {
                    max_delay: config.classify.max_enrichment_delay.get(),
                    late_span_memory: config.classify.late_span_memory,
                    enricher: Arc::new(TopicEnricher {
                        db: db.clone(),
                        target,
                        summary_max_chars: config.classify.summary_max_chars,
                    }),
                })
            }
            _ => None,
        };
        let (mut topics, mut admin_addr) = (None, None);
        // The backfill emits log records through the engine: its handle exists before the stages,
        // the engine thread starts once they are built.
        let (engine, engine_inbox) = EngineHandle::channel();
        let (hook, stage_threads): (Box<dyn TraceHook>, Vec<_>) = match stages {
            Stages::Hook(hook) => (hook, Vec::new()),
            Stages::Preprocess(_) | Stages::Facets => {
                let (names, sink): (Vec<String>, Box<dyn PreprocessedSink>) = match stages {
                    Stages::Preprocess(sink) => {
                        (vec![config.preprocess.preprocessor.clone()], sink)
                    }
                    _ => {
                        let classifier = Classifier::new(maps.clone(), metrics.clone());
                        let (sink, task) = crate::facet::stage::start(
                            &config,
                            db.clone(),
                            metrics.clone(),
                            Some(classifier),
                        )
                        .map_err(StartError::Stage)?;
                        facet_task = Some(task);
                        let handle = crate::topics::automation::start(
                            &config,
                            db.clone(),
                            metrics.clone(),
                            maps.clone(),
                            Arc::new(StoredBackfill {
                                db: db.clone(),
                                window: config.classify.backfill_window.get(),
                                emit: config
                                    .classify
                                    .emit_reclassified
                                    .then(|| (engine.clone(), tokio::runtime::Handle::current())),
                            }),
                        )
                        .map_err(StartError::Stage)?;
                        admin_addr = Some(
                            handle.serve_admin(admin_listener.take().expect("bound"), &config),
                        );
                        topics = Some(handle);
                        (crate::facet::stage::preprocessors(&config), Box::new(sink))
                    }
                };
                let (hook, thread) = crate::preprocess::stage::start(
                    &config.preprocess,
                    names,
                    &config.base_dir,
                    sink,
                    metrics.clone(),
                );
                (Box::new(hook), vec![thread])
            }
        };
        let engine_thread = Engine::start(
            engine_inbox,
            db.clone(),
            recovered,
            Assembler::new(config.assembler.clone()),
            hook,
            config.exporters.otlp.sending_queue.queue_size,
            enrichment,
            metrics.clone(),
        );
        let exporter = Exporter::new(
            QueueConsumer::new(db, &engine),
            client,
            config.exporters.otlp.clone(),
            metrics.clone(),
        )
        .spawn();

        let ingest = Ingest {
            engine: engine.clone(),
            metrics: metrics.clone(),
        };
        let (stop_receivers, stop_rx) = watch::channel(false);
        let (stop_telemetry, telemetry_rx) = watch::channel(false);
        let mut receivers = Vec::new();

        let mut grpc_addr = None;
        if let Some((listener, grpc)) = grpc_listener {
            let addr = listener.local_addr().expect("bound socket has an address");
            grpc_addr = Some(addr);
            let max = (grpc.max_recv_msg_size_mib as usize).saturating_mul(1024 * 1024);
            let service = GrpcReceiver::service(ingest.clone(), max, grpc.gzip);
            let logs_service = service.logs();
            let stop = until_true(stop_rx.clone());
            receivers.push(tokio::spawn(async move {
                let result = grpc_server
                    .layer(tower::util::MapResponseLayer::new(otlp_status_codes))
                    .add_service(service)
                    .add_service(logs_service)
                    .serve_with_incoming_shutdown(
                        tonic::transport::server::TcpIncoming::from(listener),
                        stop,
                    )
                    .await;
                if let Err(e) = result {
                    tracing::error!(error = %e, "OTLP/gRPC receiver failed");
                }
            }));
            tracing::info!(address = %addr, "OTLP/gRPC receiver listening");
        }

        let mut http_addr = None;
        if let Some((listener, http)) = http_listener {
            let addr = listener.local_addr().expect("bound socket has an address");
            http_addr = Some(addr);
            let enabled =
                |d: crate::config::types::HumanDuration| Some(d.get()).filter(|d| !d.is_zero());
            let router = receiver::http::router(
                ingest.clone(),
                http.max_request_body_size as usize,
                enabled(http.read_timeout),
            );
            let limits = receiver::server::ConnectionLimits {
                read_header_timeout: enabled(http.read_header_timeout),
                max_connections: http.max_connections as usize,
            };
            let stop = until_true(stop_rx.clone());
            let metrics = metrics.clone();
            receivers.push(match http_tls {
                None => tokio::spawn(receiver::server::serve(
                    listener, router, limits, metrics, stop,
                )),
                Some(tls) => tokio::spawn(receiver::server::serve(
                    receiver::tls::TlsListener::new(listener, addr, tls),
                    router,
                    limits,
                    metrics,
                    stop,
                )),
            });
            tracing::info!(address = %addr, "OTLP/HTTP receiver listening");
        }

        let healthy = Arc::new(AtomicBool::new(true));
        let metrics_addr = metrics_listener
            .local_addr()
            .expect("bound socket has an address");
        let health_addr = health_listener
            .local_addr()
            .expect("bound socket has an address");
        let mut telemetry_tasks = Vec::new();
        for (listener, router) in [
            (metrics_listener, telemetry::metrics_router(metrics.clone())),
            (health_listener, telemetry::health_router(healthy.clone())),
        ] {
            let stop = until_true(telemetry_rx.clone());
            telemetry_tasks.push(tokio::spawn(async move {
                let _ = axum::serve(listener, router)
                    .with_graceful_shutdown(stop)
                    .await;
            }));
        }
        tracing::info!(address = %metrics_addr, "metrics listening on /metrics");
        tracing::info!(address = %health_addr, "health check listening");

        Ok(RunningSidecar {
            addresses: BoundAddresses {
                grpc: grpc_addr,
                http: http_addr,
                metrics: metrics_addr,
                health: health_addr,
                admin: admin_addr,
            },
            metrics,
            healthy,
            stop_receivers,
            stop_telemetry,
            receivers,
            telemetry: telemetry_tasks,
            engine,
            engine_thread,
            stage_threads,
            facet_task,
            topics,
            exporter,
            shutdown_timeout: config.service.shutdown_timeout.get(),
        })
    }
}

/// How long receivers may take to finish requests in progress at shutdown before their
/// connections are cut (a client that got no answer retries, so nothing is lost).
const RECEIVER_STOP_TIMEOUT: Duration = Duration::from_secs(5);

impl RunningSidecar {
    /// The topic automation (with the facet stages): maps, on-demand regeneration.
    pub fn topics(&self) -> Option<&crate::topics::TopicsHandle> {
        self.topics.as_ref()
    }

    /// Stops accepting, releases every buffered trace, drains the queue and closes the store,
    /// all within `service.shutdown_timeout`: a step still busy at the deadline is abandoned
    /// (threads are left to the process exit). Spans not delivered stay in the redb file.
    pub async fn shutdown(self) -> ShutdownReport {
        tracing::info!("shutting down: receivers stop accepting, buffered traces are released");
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
        let mut on_time = true;
        self.healthy.store(false, Ordering::Relaxed);
        if let Some(topics) = &self.topics {
            on_time &= tokio::time::timeout(left(), topics.shutdown())
                .await
                .is_ok();
        }
        let _ = self.stop_receivers.send(true);
        for mut task in self.receivers {
            if tokio::time::timeout(RECEIVER_STOP_TIMEOUT.min(left()), &mut task)
                .await
                .is_err()
            {
                tracing::warn!(
                    "a receiver still had requests in progress; closing its connections"
                );
                task.abort();
                let _ = task.await;
            }
        }
        // Buffered traces are already durable: if the engine is stuck (a hook or plugin that
        // does not return), they are released on the next start.
        on_time &= tokio::time::timeout(left(), self.engine.release_all())
            .await
            .is_ok();
        let drained = self.exporter.drain(left()).await;
        // Stop is explicit, so the thread ends even if a handle is still held somewhere.
        on_time &= tokio::time::timeout(left(), self.engine.stop())
            .await
            .is_ok();
        // Joined on a plain thread: a blocking task still running would hold the runtime's drop.
        let (engine_thread, stage_threads) = (self.engine_thread, self.stage_threads);
        let (joined, threads_done) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let _ = engine_thread.join();
            for thread in stage_threads {
                let _ = thread.join();
            }
            let _ = joined.send(());
        });
        on_time &= tokio::time::timeout(left(), threads_done).await.is_ok();
        if let Some(mut task) = self.facet_task {
            if tokio::time::timeout(left(), &mut task).await.is_err() {
                on_time = false;
                task.abort();
            }
        }
        let spans_left = self.metrics.exporter_queue_size.get();
        let _ = self.stop_telemetry.send(true);
        for mut task in self.telemetry {
            // A scrape in progress may finish; the deadline is not extended for it.
            if tokio::time::timeout(left(), &mut task).await.is_err() {
                task.abort();
            }
        }
        if !on_time {
            tracing::warn!(
                timeout = ?self.shutdown_timeout,
                "service.shutdown_timeout reached: stages still busy were abandoned; their traces \
                 are durable and handled on the next start"
            );
        }
        if drained {
            tracing::info!("shutdown complete: queue drained");
        } else {
            tracing::warn!(
                spans_left,
                "shutdown deadline reached; undelivered spans stay in storage for the next start"
            );
        }
        ShutdownReport {
            drained,
            spans_left,
        }
    }
}
