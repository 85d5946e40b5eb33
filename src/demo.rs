//! `tracetopics demo`: the whole product on one machine, offline. It starts the sidecar with a
//! configuration (by default `config.example.yaml`: builtin models, redb) in a fresh storage
//! directory, exports to an in-process OTLP sink, drives the load generator until every facet
//! has a topic map, prints the maps, shows enriched spans as a downstream receives them, and
//! then keeps a trickle of traffic flowing with live per-topic counts until Ctrl-C.

use crate::config::Config;
use crate::loadgen::{self, LoadgenConfig};
use crate::{RunningSidecar, Sidecar};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub config: Config,
    /// Traces sent before the maps are built.
    pub traces: u64,
    /// Traces per second of the load generator.
    pub rate: f64,
    /// Stop after showing the maps and enriched spans instead of running until Ctrl-C.
    pub exit_when_done: bool,
    /// Give up waiting for the maps after this long.
    pub timeout: Duration,
}

/// The downstream of the demo: counts spans and keeps the latest enriched root spans.
#[derive(Default, Clone)]
struct DemoSink {
    spans: Arc<AtomicU64>,
    enriched: Arc<Mutex<VecDeque<Span>>>,
}

#[tonic::async_trait]
impl TraceService for DemoSink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut enriched = self.enriched.lock().expect("sink lock");
        for span in request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
        {
            self.spans.fetch_add(1, Ordering::Relaxed);
            if span.attributes.iter().any(|a| a.key.ends_with(".label")) {
                enriched.push_back(span);
                if enriched.len() > 50 {
                    enriched.pop_front();
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

pub async fn run(options: DemoOptions) -> Result<(), String> {
    let mut config = options.config.clone();
    for moved in move_taken_ports(&mut config) {
        println!("{moved}");
    }
    let storage = tempfile_dir()?;
    config.storage.path = storage.join("tracetopics.redb");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot start the demo's OTLP sink: {e}"))?;
    let sink_addr = listener.local_addr().map_err(|e| e.to_string())?;
    let sink = DemoSink::default();
    let server = tonic::transport::Server::builder()
        .add_service(
            TraceServiceServer::new(sink.clone())
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
        )
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    tokio::spawn(server);
    // The load generator's root span ends (and is exported) last, as with real SDKs; waiting
    // 1 s after it, instead of the 30 s of quiet `idle_wait` needs, keeps the demo brisk.
    if config.assembler.wait_after_root.is_none() {
        config.assembler.wait_after_root = Some(crate::config::types::HumanDuration::from_secs(1));
    }
    config.exporters.otlp.endpoint = sink_addr.to_string();
    config.exporters.otlp.protocol = crate::export::config::ExportProtocol::Grpc;

    let sidecar = Sidecar::start(config.clone())
        .await
        .map_err(|e| e.to_string())?;
    let grpc = sidecar
        .addresses
        .grpc
        .ok_or("the demo needs the OTLP/gRPC receiver (receivers.otlp.protocols.grpc)")?;
    println!(
        "Tracetopics demo: sidecar on {grpc} (OTLP/gRPC), metrics on http://{}/metrics, storage {}",
        sidecar.addresses.metrics,
        config.storage.path.display()
    );
    println!(
        "Models: facets `{}`, embeddings `{}` (builtin = offline rules and hashed n-grams)",
        provider_name(&config.models.facets),
        provider_name(&config.models.embeddings)
    );
    println!(
        "A trace is complete {} after its root span (assembler.wait_after_root, set by the demo) or after {} of quiet\n",
        config
            .assembler
            .wait_after_root
            .map_or("-".into(), |d| humantime::format_duration(d.get())
                .to_string()),
        humantime::format_duration(config.assembler.idle_wait.get())
    );
    let result = drive(&options, &config, &sidecar, grpc, &sink).await;
    let report = sidecar.shutdown().await;
    let _ = std::fs::remove_dir_all(&storage);
    println!(
        "\nstopped; {} spans reached the downstream, {} left undelivered",
        sink.spans.load(Ordering::Relaxed),
        report.spans_left
    );
    result
}

/// The example listens on the collector's well-known ports; one that is already taken (a local
/// collector on 4317, say) would stop the demo, so it moves to a free port and says so.
fn move_taken_ports(config: &mut Config) -> Vec<String> {
    let protocols = &mut config.receivers.otlp.protocols;
    let mut endpoints: Vec<(&str, &mut crate::config::types::Endpoint)> = vec![
        ("metrics", &mut config.telemetry.metrics.endpoint),
        ("health check", &mut config.health_check.endpoint),
        ("topics admin", &mut config.topics.admin.endpoint),
    ];
    if let Some(grpc) = protocols.grpc.as_mut() {
        endpoints.push(("OTLP/gRPC receiver", &mut grpc.endpoint));
    }
    if let Some(http) = protocols.http.as_mut() {
        endpoints.push(("OTLP/HTTP receiver", &mut http.endpoint));
    }
    let mut moved = Vec::new();
    for (what, endpoint) in endpoints {
        if endpoint.port == 0 {
            continue;
        }
        if let Err(e) = std::net::TcpListener::bind(endpoint.address()) {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                moved.push(format!(
                    "{} is in use (another collector?): the demo's {what} takes a free port instead",
                    endpoint.address()
                ));
                endpoint.port = 0;
            }
        }
    }
    moved
}

async fn drive(
    options: &DemoOptions,
    config: &Config,
    sidecar: &RunningSidecar,
    grpc: std::net::SocketAddr,
    sink: &DemoSink,
) -> Result<(), String> {
    let topics = sidecar.topics().ok_or("the topic stages are not running")?;
    let traces = options.traces.max(config.topics.min_traces as u64 + 50);
    println!(
        "1. Sending {traces} support-agent traces (a dozen intents, tool calls, failing tools, 5% off-topic) at {} traces/s…",
        options.rate
    );
    let report = loadgen::run(LoadgenConfig {
        endpoint: format!("http://{grpc}"),
        rate_per_sec: options.rate,
        count: traces,
        concurrency: 8,
        ood_share: 0.05,
        seed: 1,
    })
    .await
    .map_err(|e| e.to_string())?;
    println!("   {report}");

    println!("2. Waiting for the facets to be stored, then building a topic map per facet…");
    let deadline = Instant::now() + options.timeout;
    let facets_done = |records: f64| records >= (report.traces as f64) * 0.95;
    let states = loop {
        // Builtin rules answer each trace at once; give the stored records a moment to settle
        // (writes linger 200 ms) before the first check, so the maps see every trace.
        let records = metric(&sidecar.metrics.encode(), "tracetopics_facet_traces_total");
        let states = topics.check_now().await?;
        let all_mapped = states.iter().all(|(_, s)| s.map_version.is_some());
        if all_mapped
            || (facets_done(records) && states.iter().any(|(_, s)| s.map_version.is_some()))
        {
            break states;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no topic map after {:?}: {states:?}",
                options.timeout
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!();
    for map in topics.published().all() {
        println!("{}", crate::topics::cli::render_map(&map));
    }
    for (facet, state) in states.iter().filter(|(_, s)| s.map_version.is_none()) {
        println!(
            "facet `{facet}`: no map yet ({}); the builtin rules give it few distinct summaries",
            state
                .last_error
                .clone()
                .unwrap_or_else(|| format!("{:?}", state.phase))
        );
    }
    println!();

    println!("3. New traces are classified by nearest centroid (no model call) on their way out:");
    let before = sink.enriched.lock().expect("sink lock").len();
    loadgen::run(LoadgenConfig {
        endpoint: format!("http://{grpc}"),
        rate_per_sec: 0.0,
        count: 20,
        concurrency: 4,
        ood_share: 0.2,
        seed: 2,
    })
    .await
    .map_err(|e| e.to_string())?;
    let shown = wait_for_enriched(sink, before + 5, Duration::from_secs(30)).await;
    for span in shown.iter().rev().take(5) {
        println!("{}", describe(span));
    }
    if options.exit_when_done {
        return Ok(());
    }

    println!("4. Running on (2 traces/s); live counts per topic every 10 s. Ctrl-C to stop.");
    let trickle = tokio::spawn(loadgen::run(LoadgenConfig {
        endpoint: format!("http://{grpc}"),
        rate_per_sec: 2.0,
        count: u64::MAX / 2,
        concurrency: 2,
        ood_share: 0.05,
        seed: 3,
    }));
    let mut ticker = tokio::time::interval(Duration::from_secs(10));
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = ticker.tick() => print_counts(&sidecar.metrics.encode()),
        }
    }
    trickle.abort();
    Ok(())
}

async fn wait_for_enriched(sink: &DemoSink, n: usize, limit: Duration) -> Vec<Span> {
    let deadline = Instant::now() + limit;
    loop {
        let spans: Vec<Span> = sink
            .enriched
            .lock()
            .expect("sink lock")
            .iter()
            .cloned()
            .collect();
        if spans.len() >= n || Instant::now() > deadline {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One enriched span as a downstream sees it: the summaries and topics per facet.
fn describe(span: &Span) -> String {
    let get = |key: &str| {
        span.attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.as_ref()?.value.as_ref())
            .map(|v| match v {
                Value::StringValue(s) => s.clone(),
                Value::IntValue(i) => i.to_string(),
                Value::DoubleValue(d) => format!("{d:.3}"),
                other => format!("{other:?}"),
            })
    };
    let mut out = format!("   span {} `{}`\n", hex::encode(&span.span_id), span.name);
    // `tracetopics.facet.<f>` is the summary; `tracetopics.facet.<f>.label` a labelled facet's label.
    let mut facets: Vec<&str> = span
        .attributes
        .iter()
        .filter_map(|a| a.key.strip_prefix("tracetopics.facet."))
        .filter(|facet| !facet.contains('.'))
        .collect();
    facets.sort();
    for facet in facets {
        let summary = get(&format!("tracetopics.facet.{facet}")).unwrap_or_default();
        let label = get(&format!("tracetopics.facet.{facet}.label"))
            .map(|l| format!(" [label {l}]"))
            .unwrap_or_default();
        let topic = match get(&format!("tracetopics.topic.{facet}.label")) {
            Some(name) => {
                let id = get(&format!("tracetopics.topic.{facet}.id")).unwrap_or("-".into());
                let distance =
                    get(&format!("tracetopics.topic.{facet}.distance")).unwrap_or("-".into());
                format!("topic {id} `{name}` (distance {distance})")
            }
            None => "not classified (no map yet, or nothing to classify)".into(),
        };
        out.push_str(&format!(
            "     {facet:<10} {:<60} → {topic}{label}\n",
            crate::topics::adhoc::truncate(&summary, 60)
        ));
    }
    out
}

/// The sum of every series of `name` in the metrics text.
fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// `tracetopics_classified_traces_total` per facet and topic, from the metrics text.
fn print_counts(metrics: &str) {
    let mut rows: Vec<(String, f64)> = metrics
        .lines()
        .filter(|l| l.starts_with("tracetopics_classified_traces_total{"))
        .filter_map(|l| {
            let (labels, value) = l.rsplit_once(' ')?;
            Some((
                labels
                    .trim_start_matches("tracetopics_classified_traces_total")
                    .to_string(),
                value.parse().ok()?,
            ))
        })
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("   classified traces (top 10):");
    for (labels, value) in rows.iter().take(10) {
        println!("   {value:>8}  {labels}");
    }
}

fn provider_name(model: &crate::model::ModelConfig) -> String {
    match model.provider {
        crate::model::Provider::Builtin => "builtin".into(),
        _ => format!("{} at {}", model.model, model.base_url),
    }
}

/// A fresh directory for the demo's redb file, removed at the end.
fn tempfile_dir() -> Result<std::path::PathBuf, String> {
    let dir = std::env::temp_dir().join(format!(
        "tracetopics-demo-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::types::Endpoint;

    #[test]
    fn a_taken_port_moves_to_a_free_one_and_free_ports_stay() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken_port = taken.local_addr().unwrap().port();
        let free_port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let mut config = Config::default();
        let protocols = &mut config.receivers.otlp.protocols;
        protocols.grpc.as_mut().unwrap().endpoint = Endpoint::new("127.0.0.1", taken_port);
        protocols.http.as_mut().unwrap().endpoint = Endpoint::new("127.0.0.1", free_port);
        config.telemetry.metrics.endpoint = Endpoint::new("127.0.0.1", 0);
        config.health_check.endpoint = Endpoint::new("127.0.0.1", 0);
        config.topics.admin.endpoint = Endpoint::new("127.0.0.1", 0);

        let moved = move_taken_ports(&mut config);
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert!(moved[0].contains(&format!("127.0.0.1:{taken_port} is in use")));
        let protocols = &config.receivers.otlp.protocols;
        assert_eq!(protocols.grpc.as_ref().unwrap().endpoint.port, 0);
        assert_eq!(protocols.http.as_ref().unwrap().endpoint.port, free_port);
        drop(taken);
    }
}
