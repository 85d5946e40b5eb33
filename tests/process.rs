//! The `tracetopics` binary as an SRE runs it: validate, SIGTERM, and kill -9 with a restart.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_tracetopics");
const WAIT: Duration = Duration::from_secs(30);

struct Running {
    child: Child,
    grpc: SocketAddr,
    _log: std::thread::JoinHandle<()>,
}

fn write_config(dir: &std::path::Path, sink: SocketAddr, idle_wait: &str) -> std::path::PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:0\n      http:\n        endpoint: 127.0.0.1:0\n\
assembler:\n  idle_wait: {idle_wait}\n\
exporters:\n  otlp:\n    endpoint: ${{env:SINK}}\n    retry_on_failure:\n      initial_interval: 20ms\n      max_interval: 100ms\n    batch:\n      timeout: 10ms\n\
storage:\n  path: {}\n\
telemetry:\n  metrics:\n    endpoint: 127.0.0.1:0\n\
health_check:\n  endpoint: 127.0.0.1:0\ntopics:\n  admin:\n    endpoint: 127.0.0.1:0\n",
            dir.join("data/tracetopics.redb").display()
        ),
    )
    .unwrap();
    let _ = sink;
    path
}

/// Starts the binary and reads the gRPC address it logs once listening.
fn start(config: &std::path::Path, sink: SocketAddr) -> Running {
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .env("SINK", sink.to_string())
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let log = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("OTLP/gRPC receiver listening address=").nth(1) {
                let _ = tx.send(rest.trim().parse::<SocketAddr>().unwrap());
            }
            eprintln!("[sidecar] {line}");
        }
    });
    let grpc = rx
        .recv_timeout(WAIT)
        .expect("the sidecar logs its gRPC address");
    Running {
        child,
        grpc,
        _log: log,
    }
}

fn signal(child: &Child, signal: i32) {
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "sidecar did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_buffered_traces_and_drains_before_exit() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour::default()).await;
    let config = write_config(dir.path(), sink.addr, "1h");
    let mut sidecar = start(&config, sink.addr);
    let mut client = grpc_client(sidecar.grpc).await;
    for trace in 0..10 {
        client
            .export(request(
                "svc",
                "s",
                vec![rich_span(trace, 0), rich_span(trace, 1)],
            ))
            .await
            .unwrap();
    }
    // idle_wait is an hour: nothing leaves unless shutdown flushes it.
    assert_eq!(sink.wait_for_spans(1, Duration::from_millis(300)).await, 0);
    signal(&sidecar.child, libc::SIGTERM);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut sidecar.child))
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(sink.wait_for_spans(20, WAIT).await, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_and_a_restart_every_acknowledged_span_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sink_addr = reserved.local_addr().unwrap();
    drop(reserved);
    let config = write_config(dir.path(), sink_addr, "50ms");

    // Downstream is down: every span the client gets an OK for sits in redb (some buffered in
    // the assembler, some in the sending queue) when the process is killed.
    let mut first = start(&config, sink_addr);
    let mut client = grpc_client(first.grpc).await;
    let mut expected = std::collections::HashSet::new();
    for trace in 0..40 {
        let spans: Vec<_> = (0..3).map(|i| rich_span(trace, i)).collect();
        expected.extend(spans.iter().map(|s| s.span_id.clone()));
        client.export(request("svc", "s", spans)).await.unwrap();
    }
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();

    let sink = Sink::start_on(sink_addr, SinkBehaviour::default()).await;
    let mut second = start(&config, sink_addr);
    assert!(sink.wait_for_spans(expected.len(), WAIT).await >= expected.len());
    let delivered: std::collections::HashSet<_> = sink
        .spans()
        .into_iter()
        .map(|(_, _, s)| s.span_id)
        .collect();
    assert_eq!(
        delivered, expected,
        "every acknowledged span arrives after the restart"
    );
    signal(&second.child, libc::SIGTERM);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut second.child))
        .await
        .unwrap();
    assert!(status.success());
}

#[test]
fn validate_lists_every_problem_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: nowhere\nassembler:\n  idle_wait: 5 minutes please\nexporters:\n  otlp:\n    endpoint: ${env:TRACETOPICS_TEST_UNSET}\nsurprise: 1\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(&bad)
        .env_remove("TRACETOPICS_TEST_UNSET")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TRACETOPICS_TEST_UNSET"), "{stderr}");

    let output = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(&bad)
        .env("TRACETOPICS_TEST_UNSET", "localhost:4317")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for path in [
        "receivers.otlp.protocols.grpc.endpoint",
        "assembler.idle_wait",
        "surprise",
    ] {
        assert!(stderr.contains(path), "missing {path}: {stderr}");
    }

    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.yaml");
    let output = Command::new(BIN)
        .args(["validate", "--config", example])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let output = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(dir.path().join("missing.yaml"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read"));
}

#[test]
fn version_and_help_read_well() {
    let version = Command::new(BIN).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("tracetopics {}", env!("CARGO_PKG_VERSION"))
    );
    let help = Command::new(BIN).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for word in ["run", "validate", "OTLP"] {
        assert!(text.contains(word), "{text}");
    }
}

#[test]
fn preprocess_prints_what_the_model_would_see_with_and_without_a_plugin() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/preprocess/openllmetry_legacy__failing_tool.jsonl"
    );
    let out = std::process::Command::new(BIN)
        .args(["preprocess", "--trace", fixture, "--meta"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("[system] You are a travel assistant."),
        "{stdout}"
    );
    assert!(stdout.contains("[error] execute_tool book_flight: __main__.BookingServiceError"));
    assert!(stdout.contains("\"error_count\": 1"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("6 segment(s)") && stderr.contains("by `default`"),
        "{stderr}"
    );

    // With a shipped plugin chosen from a config file.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        format!(
            "preprocess:\n  plugins:\n    tools:\n      path: {}/plugins/tools_and_errors.js\n",
            env!("CARGO_MANIFEST_DIR")
        ),
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["preprocess", "--config"])
        .arg(&config)
        .args(["--trace", fixture, "--preprocessor", "tools"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("[tool_call book_flight] "), "{stdout}");
    assert!(!stdout.contains("[system]"));

    // A file that is not OTLP/JSON is a clear error.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"resourceSpans\": 3}").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["preprocess", "--trace"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("resourceSpans"));
}

#[test]
fn the_demo_builds_a_topic_map_and_shows_enriched_spans() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("demo.yaml");
    // The example's settings, on free ports so tests can run side by side.
    std::fs::write(
        &config,
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:0\n      http:\n        endpoint: 127.0.0.1:0\n\
telemetry:\n  metrics:\n    endpoint: 127.0.0.1:0\n\
health_check:\n  endpoint: 127.0.0.1:0\ntopics:\n  admin:\n    endpoint: 127.0.0.1:0\n",
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args([
            "demo",
            "--exit-when-done",
            "--traces",
            "450",
            "--rate",
            "1000",
            "--config",
        ])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("facet `task`: version 1,"), "{stdout}");
    assert!(
        stdout.contains("→ topic ") && stdout.contains("distance 0."),
        "enriched spans shown: {stdout}"
    );
    assert!(stdout.contains("0 left undelivered"), "{stdout}");
}
