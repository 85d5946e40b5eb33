use super::*;
use std::time::Duration;

fn no_env(_: &str) -> Option<String> {
    None
}

fn problems(text: &str) -> Vec<Problem> {
    Config::parse(text, no_env)
        .expect_err("config should be rejected")
        .problems
}

fn paths(text: &str) -> Vec<String> {
    problems(text).into_iter().map(|p| p.path).collect()
}

#[test]
fn the_example_config_parses_and_matches_the_defaults() {
    let text = include_str!("../../config.example.yaml");
    let config = Config::parse(text, no_env).unwrap_or_else(|e| panic!("{e}"));
    let defaults = Config::default();
    let grpc = config.receivers.otlp.protocols.grpc.as_ref().unwrap();
    assert_eq!(grpc.endpoint.address(), "localhost:4317");
    assert_eq!(grpc.max_recv_msg_size_mib, 4);
    assert_eq!(
        config
            .receivers
            .otlp
            .protocols
            .http
            .as_ref()
            .unwrap()
            .endpoint
            .address(),
        "localhost:4318"
    );
    let http = config.receivers.otlp.protocols.http.as_ref().unwrap();
    let http_defaults = crate::receiver::config::HttpReceiverConfig::default();
    assert_eq!(http.read_header_timeout, http_defaults.read_header_timeout);
    assert_eq!(http.read_timeout, http_defaults.read_timeout);
    assert_eq!(http.max_connections, http_defaults.max_connections);
    assert_eq!(config.assembler.idle_wait.get(), Duration::from_secs(30));
    assert_eq!(config.assembler.max_traces, defaults.assembler.max_traces);
    assert_eq!(
        config.exporters.otlp.batch.timeout,
        defaults.exporters.otlp.batch.timeout
    );
    assert_eq!(
        config.exporters.otlp.sending_queue.queue_size,
        defaults.exporters.otlp.sending_queue.queue_size
    );
    assert_eq!(
        config.telemetry.metrics.endpoint.address(),
        "localhost:8888"
    );
    assert_eq!(config.health_check.endpoint.address(), "localhost:13133");
    // Serializing the parsed example must give back the defaults for everything it documents.
    let expected = serde_yaml_ng::to_value(&defaults).unwrap();
    let actual = serde_yaml_ng::to_value(&config).unwrap();
    assert_eq!(
        actual, expected,
        "config.example.yaml drifted from the defaults"
    );
}

#[test]
fn an_empty_file_gives_the_defaults() {
    let config = Config::parse("", no_env).unwrap();
    assert!(
        config.receivers.otlp.protocols.grpc.is_some()
            && config.receivers.otlp.protocols.http.is_some()
    );
    assert_eq!(config.assembler.idle_wait.get(), Duration::from_secs(30));
}

#[test]
fn an_empty_protocol_block_enables_it_and_a_missing_one_disables_it() {
    let config =
        Config::parse("receivers:\n  otlp:\n    protocols:\n      grpc:\n", no_env).unwrap();
    assert!(config.receivers.otlp.protocols.grpc.is_some());
    assert!(config.receivers.otlp.protocols.http.is_none());
}

#[test]
fn every_problem_is_listed_with_its_yaml_path() {
    let text = "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: localhost
        bogus_key: 1
      http:
        endpoint: localhost:99999
assembler:
  idle_wait: soon
  max_trace_age: 30
exporters:
  otlp:
    protocol: carrier-pigeon
    timeout: 5 parsecs
extra_section: {}
";
    let found = paths(text);
    for expected in [
        "receivers.otlp.protocols.grpc.endpoint",
        "receivers.otlp.protocols.grpc.bogus_key",
        "receivers.otlp.protocols.http.endpoint",
        "assembler.idle_wait",
        "assembler.max_trace_age",
        "exporters.otlp.protocol",
        "exporters.otlp.timeout",
        "extra_section",
    ] {
        assert!(
            found.iter().any(|p| p == expected),
            "missing {expected} in {found:?}"
        );
    }
    let all = problems(text);
    let endpoint = all
        .iter()
        .find(|p| p.path == "receivers.otlp.protocols.grpc.endpoint")
        .unwrap();
    assert!(
        endpoint.message.contains("host:port"),
        "{}",
        endpoint.message
    );
    let unknown = all.iter().find(|p| p.path == "extra_section").unwrap();
    assert!(
        unknown.message.contains("unknown field"),
        "{}",
        unknown.message
    );
}

#[test]
fn semantic_problems_are_listed_too() {
    let text = "
assembler:
  max_traces: 0
exporters:
  otlp:
    endpoint: ftp://collector:4317
    retry_on_failure:
      multiplier: 0.5
    headers:
      \"bad header\": x
telemetry:
  metrics:
    endpoint: localhost:4317
";
    let found = paths(text);
    for expected in [
        "assembler.max_traces",
        "exporters.otlp.endpoint",
        "exporters.otlp.retry_on_failure.multiplier",
        "exporters.otlp.headers.bad header",
        "telemetry.metrics.endpoint",
    ] {
        assert!(
            found.iter().any(|p| p == expected),
            "missing {expected} in {found:?}"
        );
    }
}

#[test]
fn exporting_into_our_own_receiver_is_refused() {
    let found = problems("exporters:\n  otlp:\n    endpoint: 127.0.0.1:4317\n");
    assert_eq!(found[0].path, "exporters.otlp.endpoint");
    assert!(found[0].message.contains("loop"), "{}", found[0].message);
    assert!(
        Config::parse(
            "exporters:\n  otlp:\n    endpoint: collector:4317\n",
            no_env
        )
        .is_ok()
    );
}

#[test]
fn environment_variables_are_expanded_and_unset_ones_reported() {
    let env = |name: &str| (name == "PORT").then(|| "5317".to_string());
    let config = Config::parse(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 0.0.0.0:${env:PORT}\n",
        env,
    )
    .unwrap();
    assert_eq!(
        config.receivers.otlp.protocols.grpc.unwrap().endpoint.port,
        5317
    );
    let err = Config::parse("storage:\n  path: ${env:NOT_SET}\n", env).unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert!(err.problems[0].message.contains("NOT_SET"), "{}", err);
    assert_eq!(err.problems[0].path, "<line 2>");
}

#[test]
fn broken_yaml_is_reported_with_its_position() {
    let err = Config::parse("receivers: [unclosed\n", no_env).unwrap_err();
    assert!(err.to_string().contains("not valid YAML"), "{err}");
    assert!(err.to_string().contains("line"), "{err}");
}

#[test]
fn secrets_in_headers_never_appear_in_errors() {
    let text = "exporters:\n  otlp:\n    headers:\n      authorization: \"${env:TOKEN}\"\n";
    let bad = |name: &str| (name == "TOKEN").then(|| "hunter2\\x01".to_string());
    let err = Config::parse(text, bad).unwrap_err();
    assert_eq!(err.problems[0].path, "exporters.otlp.headers.authorization");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let good = |name: &str| (name == "TOKEN").then(|| "Bearer hunter2".to_string());
    let config = Config::parse(text, good).unwrap();
    assert_eq!(
        config.exporters.otlp.headers["authorization"].expose(),
        "Bearer hunter2"
    );
    assert!(
        !format!("{config:?}").contains("hunter2"),
        "Debug must redact header values"
    );
}

#[test]
fn a_plugin_with_a_syntax_error_fails_validation_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.js"),
        "function preprocess(trace) {\n  return [\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("good.js"),
        "function preprocess(trace) { return 'x'; }",
    )
    .unwrap();
    let text = "preprocess:\n  preprocessor: nope\n  plugins:\n    broken:\n      path: broken.js\n    good:\n      path: good.js\n      on_error: skip\n    missing:\n      path: missing.js\n";
    let err = Config::parse_in(text, no_env, dir.path()).unwrap_err();
    let messages: Vec<String> = err.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(
        messages[0].starts_with("preprocess.preprocessor:"),
        "{messages:?}"
    );
    assert!(
        messages[1].starts_with("preprocess.plugins.broken:")
            && messages[1].contains("broken.js:3")
            && messages[1].contains("SyntaxError"),
        "{messages:?}"
    );
    assert!(messages[2].contains("missing.js"), "{messages:?}");
    let ok = "preprocess:\n  preprocessor: good\n  plugins:\n    good:\n      path: good.js\n";
    let config = Config::parse_in(ok, no_env, dir.path()).unwrap();
    assert_eq!(config.preprocess.preprocessor, "good");
}

#[test]
fn facet_and_model_mistakes_are_listed_with_their_paths() {
    let text = "facets:\n  builtin: [task, mood]\n  sampling_rate: 2\n  custom:\n    - name: Area\n      prompt: Which area?\n    - name: task\n      prompt: again\n    - name: lang\n      prompt: Which language?\n      exclude: '(['\n      preprocessor: nope\n      labels: []\nmodels:\n  facets:\n    provider: openai\n    model: x\n";
    let paths = paths(text);
    assert_eq!(
        paths,
        vec![
            "facets.sampling_rate",
            "facets.builtin.1",
            "facets.custom.0.name",
            "facets.custom.1.name",
            "facets.custom.2.labels",
            "facets.custom.2.exclude",
            "facets.custom.2.preprocessor",
            "models.facets",
        ]
    );
}

#[test]
fn topics_settings_are_checked_with_their_paths() {
    let text = "topics:\n  history: 0\n  distance_threshold: 3\n  regenerate_every: 1s\n  naming:\n    batch_size: 0\n  admin:\n    endpoint: localhost:13133\n  clustering:\n    sample_size: 1\nmodels:\n  naming:\n    provider: openai\n";
    let paths = paths(text);
    assert_eq!(
        paths,
        vec![
            "topics.admin.endpoint",
            "topics.clustering",
            "topics.regenerate_every",
            "topics.history",
            "topics.distance_threshold",
            "topics.naming.batch_size",
            "models.naming",
        ]
    );
    let config = Config::parse("topics:\n  window: 1d\n  min_traces: 5\n", no_env).unwrap();
    assert_eq!(config.topics.window.get(), Duration::from_secs(86_400));
    assert_eq!(config.topics.min_traces, 5);
    assert_eq!(config.topics.history, 10);
    assert_eq!(config.topics.admin.endpoint.address(), "127.0.0.1:13134");
}

#[test]
fn http_receiver_limits_are_checked() {
    let found = paths(
        "receivers:\n  otlp:\n    protocols:\n      http:\n        max_connections: 0\n        read_timeout: soon\n        read_header_timeot: 1s\n",
    );
    for expected in [
        "receivers.otlp.protocols.http.read_timeout",
        "receivers.otlp.protocols.http.read_header_timeot",
    ] {
        assert!(
            found.iter().any(|p| p == expected),
            "missing {expected} in {found:?}"
        );
    }
    let found =
        paths("receivers:\n  otlp:\n    protocols:\n      http:\n        max_connections: 0\n");
    assert_eq!(found, ["receivers.otlp.protocols.http.max_connections"]);
    // `0` turns a timeout off.
    let config = Config::parse(
        "receivers:\n  otlp:\n    protocols:\n      http:\n        read_timeout: 0\n        read_header_timeout: 5s\n",
        no_env,
    )
    .unwrap();
    let http = config.receivers.otlp.protocols.http.unwrap();
    assert!(http.read_timeout.get().is_zero());
    assert_eq!(http.read_header_timeout.get(), Duration::from_secs(5));
}
