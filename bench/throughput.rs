//! Throughput benchmark: drives OTLP/gRPC load through the real `tracetopics` binary into an
//! in-process OTLP sink and prints spans/s, CPU seconds per million spans and peak RSS of the
//! sidecar process. Not a test: it asserts nothing about speed, it reports.
//!
//!   cargo bench --bench throughput                   # both modes
//!   cargo bench --bench throughput -- fixed 10000 20  # fixed rate: spans/s, seconds
//!   cargo bench --bench throughput -- max 15          # as fast as 4 senders can push
//!
//! Load shape: requests of 100 spans (10 traces × 10 spans, OTel GenAI-style attributes), the
//! batch size OpenTelemetry's load tests use. The assembler runs with `idle_wait: 2s` so the run
//! reaches a steady state within seconds; every span is durably stored, assembled and exported.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SPANS_PER_TRACE: u32 = 10;
const TRACES_PER_REQUEST: u32 = 10;

struct CountingSink(Arc<AtomicU64>);

#[tonic::async_trait]
impl TraceService for CountingSink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn make_request(first_trace: u64) -> ExportTraceServiceRequest {
    let mut spans = Vec::with_capacity((SPANS_PER_TRACE * TRACES_PER_REQUEST) as usize);
    for t in 0..u64::from(TRACES_PER_REQUEST) {
        let trace = first_trace + t;
        let mut trace_id = [0x5au8; 16];
        trace_id[8..].copy_from_slice(&trace.to_be_bytes());
        for s in 0..SPANS_PER_TRACE {
            let mut span_id = [0u8; 8];
            span_id[..4].copy_from_slice(&(trace as u32).to_be_bytes());
            span_id[4..].copy_from_slice(&(s + 1).to_be_bytes());
            let parent = if s == 0 {
                vec![]
            } else {
                {
                    let mut p = span_id;
                    p[4..].copy_from_slice(&1u32.to_be_bytes());
                    p.to_vec()
                }
            };
            spans.push(Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_vec(),
                parent_span_id: parent,
                name: if s % 3 == 0 {
                    "chat gpt-4o-mini".into()
                } else {
                    "execute_tool lookup_order".into()
                },
                kind: 3,
                start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(s) * 1000,
                end_time_unix_nano: 1_700_000_000_000_900_000 + u64::from(s) * 1000,
                attributes: vec![
                    kv(
                        "gen_ai.operation.name",
                        any_value::Value::StringValue("chat".into()),
                    ),
                    kv(
                        "gen_ai.request.model",
                        any_value::Value::StringValue("gpt-4o-mini".into()),
                    ),
                    kv(
                        "gen_ai.usage.input_tokens",
                        any_value::Value::IntValue(1200),
                    ),
                    kv(
                        "gen_ai.usage.output_tokens",
                        any_value::Value::IntValue(180),
                    ),
                    kv("http.response.status_code", any_value::Value::IntValue(200)),
                ],
                status: Some(Status {
                    code: 1,
                    message: String::new(),
                }),
                ..Default::default()
            });
        }
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv(
                        "service.name",
                        any_value::Value::StringValue("support-agent".into()),
                    ),
                    kv(
                        "service.version",
                        any_value::Value::StringValue("1.4.2".into()),
                    ),
                    kv(
                        "deployment.environment",
                        any_value::Value::StringValue("bench".into()),
                    ),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "opentelemetry.instrumentation.openai".into(),
                    version: "0.40.0".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

struct Outcome {
    offered: u64,
    delivered: u64,
    seconds: f64,
    cpu: f64,
    peak_rss_mib: f64,
    rss_mib: f64,
}

async fn run_mode(rate: Option<u64>, seconds: u64) -> Outcome {
    let delivered = Arc::new(AtomicU64::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_addr = listener.local_addr().unwrap();
    let sink = TraceServiceServer::new(CountingSink(delivered.clone()))
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .max_decoding_message_size(64 << 20);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(sink)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bench.yaml");
    std::fs::write(
        &config,
        format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:0\n\
assembler:\n  idle_wait: 2s\n\
exporters:\n  otlp:\n    endpoint: {sink_addr}\n\
storage:\n  path: {}\n\
telemetry:\n  metrics:\n    endpoint: 127.0.0.1:0\n  logs:\n    level: warn,tracetopics::app=info\n\
health_check:\n  endpoint: 127.0.0.1:0\ntopics:\n  admin:\n    endpoint: 127.0.0.1:0\n",
            dir.path().join("bench.redb").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tracetopics"))
        .args(["run", "--config"])
        .arg(&config)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("OTLP/gRPC receiver listening address=").nth(1) {
                let _ = tx.send(rest.trim().parse().unwrap());
            } else if line.contains("WARN") || line.contains("ERROR") {
                eprintln!("[sidecar] {line}");
            }
        }
    });
    let grpc = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("sidecar started");
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    let offered = Arc::new(AtomicU64::new(0));
    let next_trace = Arc::new(AtomicU64::new(1));
    let senders = 4u64;
    let mut tasks = Vec::new();
    for sender in 0..senders {
        let offered = offered.clone();
        let next_trace = next_trace.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = TraceServiceClient::connect(format!("http://{grpc}"))
                .await
                .unwrap();
            let spans_per_request = u64::from(SPANS_PER_TRACE * TRACES_PER_REQUEST);
            let interval = rate.map(|r| {
                Duration::from_secs_f64(spans_per_request as f64 * senders as f64 / r as f64)
            });
            let mut tick = interval.map(|i| {
                let mut t = tokio::time::interval_at(
                    tokio::time::Instant::now() + i.mul_f64(sender as f64 / senders as f64),
                    i,
                );
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                t
            });
            while started.elapsed() < Duration::from_secs(seconds) {
                if let Some(tick) = tick.as_mut() {
                    tick.tick().await;
                }
                let first = next_trace.fetch_add(u64::from(TRACES_PER_REQUEST), Ordering::Relaxed);
                match client.export(make_request(first)).await {
                    Ok(_) => {
                        offered.fetch_add(spans_per_request, Ordering::Relaxed);
                    }
                    Err(status) if status.code() == tonic::Code::Unavailable => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(status) => panic!("{status:?}"),
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let send_seconds = started.elapsed().as_secs_f64();
    let offered = offered.load(Ordering::Relaxed);
    // Everything accepted must come out once the last traces go idle.
    let deadline = Instant::now() + Duration::from_secs(60);
    while delivered.load(Ordering::Relaxed) < offered && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu = cpu_seconds(pid) - cpu_before;
    let rss_mib = status_kib(pid, "VmRSS:") as f64 / 1024.0;
    let peak_rss_mib = status_kib(pid, "VmHWM:") as f64 / 1024.0;
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = child.wait();
    Outcome {
        offered,
        delivered: delivered.load(Ordering::Relaxed),
        seconds: send_seconds,
        cpu,
        peak_rss_mib,
        rss_mib,
    }
}

fn report(name: &str, o: &Outcome) {
    let million = o.offered as f64 / 1e6;
    println!(
        "{name:<28} offered {:>9} spans in {:>5.1}s = {:>8.0} spans/s | delivered {:>9} | sidecar CPU {:>6.2}s = {:>5.2} CPU-s per 1M spans ({:>5.1}% of a core) | RSS {:>5.1} MiB, peak {:>5.1} MiB",
        o.offered,
        o.seconds,
        o.offered as f64 / o.seconds,
        o.delivered,
        o.cpu,
        o.cpu / million.max(1e-9),
        100.0 * o.cpu / o.seconds,
        o.rss_mib,
        o.peak_rss_mib,
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mode = args.first().map(String::as_str).unwrap_or("all");
    let number =
        |i: usize, default: u64| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(default);
    if mode == "fixed" || mode == "all" {
        let (rate, seconds) = if mode == "fixed" {
            (number(1, 10_000), number(2, 20))
        } else {
            (10_000, 20)
        };
        let outcome = runtime.block_on(run_mode(Some(rate), seconds));
        report(&format!("fixed {rate} spans/s"), &outcome);
    }
    if mode == "max" || mode == "all" {
        let seconds = if mode == "max" { number(1, 15) } else { 15 };
        let outcome = runtime.block_on(run_mode(None, seconds));
        report("max throughput (4 senders)", &outcome);
    }
}
