//! `tracetopics topics …` and `tracetopics cluster` as processes: against the storage file when
//! no sidecar runs, and through a running sidecar's admin endpoint (which holds the file lock).

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use tracetopics::Config;
use tracetopics::cluster::synthetic::{SyntheticSpec, generate};
use tracetopics::store::facets::{self, FacetRecord};

const BIN: &str = env!("CARGO_BIN_EXE_tracetopics");
const N: usize = 600;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A config file whose storage holds `N` summaries of facet `task` with known topics.
fn prepare(dir: &std::path::Path) -> std::path::PathBuf {
    let text = format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:0\n\
exporters:\n  otlp:\n    endpoint: 127.0.0.1:{}\n\
storage:\n  path: {}\n\
telemetry:\n  metrics:\n    endpoint: 127.0.0.1:0\n\
health_check:\n  endpoint: 127.0.0.1:0\n\
topics:\n  min_traces: 100\n  min_unique_summaries: 100\n  admin:\n    endpoint: 127.0.0.1:{}\n",
        free_port(),
        dir.join("t.redb").display(),
        free_port()
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, &text).unwrap();
    let config = Config::load(&path).unwrap();
    let (db, _) = tracetopics::store::open(&config.storage).unwrap();
    let data = generate(&SyntheticSpec {
        n: N,
        dim: 32,
        n_topics: 6,
        n_super_topics: 2,
        noise_share: 0.03,
        size_exponent: 0.5,
        seed: 5,
    });
    let model = tracetopics::embed::Embedder::new(&config.models.embeddings)
        .unwrap()
        .model_id();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let records: Vec<FacetRecord> = (0..N)
        .map(|i| FacetRecord {
            trace_id: (i as u128 + 1).to_le_bytes(),
            facet: "task".into(),
            text: data.texts[i].clone(),
            excluded: false,
            time_ms: now - 60_000,
            version: "v1".into(),
            preprocessor: "default".into(),
            facet_model: "builtin".into(),
            embedding_model: model.clone(),
            service_name: Some(if i % 3 == 0 { "billing" } else { "support" }.into()),
            root_span_name: "agent".into(),
            user_id: None,
            session_id: None,
            embedding: data.vectors[i * 32..(i + 1) * 32].to_vec(),
        })
        .collect();
    facets::put(&db, &records).unwrap();
    path
}

fn run(args: &[&str], config: &std::path::Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("TRACETOPICS_CONFIG")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn without_a_sidecar_cluster_and_show_read_the_storage_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = prepare(dir.path());

    let out = run(
        &[
            "cluster",
            "--facet",
            "task",
            "--since",
            "1h",
            "--k",
            "3",
            "--filter",
            "service_name=billing",
        ],
        &config,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    eprintln!("{text}");
    assert!(
        text.contains("200 summaries matched, 200 clustered, 3 topics"),
        "{text}"
    );
    for rank in ["   1  ", "   2  ", "   3  "] {
        assert!(text.lines().any(|l| l.starts_with(rank)), "{text}");
    }
    assert!(
        text.lines()
            .filter(|l| l.trim_start().starts_with("- "))
            .count()
            >= 9
    );

    let out = run(
        &["cluster", "--facet", "task", "--filter", "colour=red"],
        &config,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot filter on `colour`"),
        "{}",
        stderr(&out)
    );
    let out = run(
        &["cluster", "--facet", "task", "--filter", "nonsense"],
        &config,
    );
    assert!(
        stderr(&out).contains("write FIELD=VALUE"),
        "{}",
        stderr(&out)
    );

    let out = run(&["topics", "show"], &config);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("facet `task`: no map yet"), "{text}");
    assert!(text.contains("state: waiting_for_facets"), "{text}");

    let out = run(&["topics", "regenerate", "--facet", "task"], &config);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no sidecar answers"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn with_a_running_sidecar_the_commands_go_through_its_admin_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let config = prepare(dir.path());
    let mut sidecar = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let log = sidecar.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(log).lines().map_while(Result::ok) {
            if line.contains("topics admin listening") {
                let _ = tx.send(());
            }
            eprintln!("[sidecar] {line}");
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the sidecar logs its admin endpoint");

    let out = run(&["topics", "regenerate", "--facet", "task"], &config);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("facet `task`: version 1,"),
        "{}",
        stdout(&out)
    );

    let out = run(&["topics", "show", "--facet", "task"], &config);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("version 1") && text.contains("state: idle"),
        "{text}"
    );
    assert!(!text.contains("issues"), "only the chosen facet: {text}");

    // The sidecar holds the redb lock: this can only have gone through the admin endpoint.
    let out = run(
        &[
            "cluster", "--facet", "task", "--since", "1h", "--k", "4", "--json",
        ],
        &config,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["matched"], N);
    assert_eq!(report["topics"].as_array().unwrap().len(), 4);

    let out = run(&["topics", "regenerate", "--facet", "nope"], &config);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown facet `nope`"),
        "{}",
        stderr(&out)
    );

    assert_eq!(unsafe { libc::kill(sidecar.id() as i32, libc::SIGTERM) }, 0);
    let status = sidecar.wait().unwrap();
    assert!(
        status.code().is_some(),
        "exited by itself after SIGTERM: {status:?}"
    );
}

/// An admin endpoint that accepts the connection and never answers (a wedged sidecar) must not
/// hang the command: `--timeout` ends it with an error that says what happened.
#[test]
fn a_sidecar_that_never_answers_times_out_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  path: {}\ntopics:\n  admin:\n    endpoint: 127.0.0.1:{port}\n",
            dir.path().join("t.redb").display()
        ),
    )
    .unwrap();
    let out = run(
        &["topics", "regenerate", "--facet", "task", "--timeout", "1s"],
        &config,
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("did not answer within 1s"), "{err}");
}
