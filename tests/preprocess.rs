//! The preprocess stage in the running sidecar, and the plugins shipped in `plugins/`.

mod common;

use common::*;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracetopics::Sidecar;
use tracetopics::config::types::HumanDuration;
use tracetopics::preprocess::stage::PreprocessedSink;
use tracetopics::preprocess::{
    OnError, PluginConfig, PreprocessConfig, Preprocessed, Preprocessor, Skipped, TraceView,
};

const WAIT: Duration = Duration::from_secs(20);

fn attr(key: &str, value: &str) -> KeyValue {
    string_attr(key, value)
}

/// A support-agent turn in the GenAI ≥ 1.37 shape: orchestrator agent, a sub-agent, tools.
fn agent_spans(trace: u32, user_text: &str) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
    let mut root = rich_span(trace, 0);
    root.name = "invoke_agent concierge".into();
    root.attributes = vec![
        attr("gen_ai.operation.name", "invoke_agent"),
        attr("gen_ai.agent.name", "concierge"),
    ];
    root.status = None;
    root.events.clear();
    let mut chat = rich_span(trace, 1);
    chat.name = "chat gpt-4o".into();
    chat.status = None;
    chat.events.clear();
    chat.attributes = vec![
        attr("gen_ai.operation.name", "chat"),
        attr(
            "gen_ai.input.messages",
            &serde_json::json!([{"role": "user", "parts": [{"type": "text", "content": user_text}]}])
                .to_string(),
        ),
        attr(
            "gen_ai.output.messages",
            &serde_json::json!([{"role": "assistant", "parts": [{"type": "tool_call", "name": "billing_agent", "arguments": {"question": "refund status"}}]}])
                .to_string(),
        ),
    ];
    let mut sub = rich_span(trace, 2);
    sub.name = "invoke_agent billing".into();
    sub.status = None;
    sub.events.clear();
    sub.attributes = vec![
        attr("gen_ai.operation.name", "invoke_agent"),
        attr("gen_ai.agent.name", "billing"),
        attr(
            "gen_ai.input.messages",
            &serde_json::json!([{"role": "user", "content": "internal: look up refund for jane@example.com, card 4111 1111 1111 1111"}]).to_string(),
        ),
    ];
    let mut tool = rich_span(trace, 3);
    tool.name = "execute_tool refund_lookup".into();
    tool.parent_span_id = sub.span_id.clone();
    tool.events.clear();
    tool.attributes = vec![
        attr("gen_ai.operation.name", "execute_tool"),
        attr("gen_ai.tool.name", "refund_lookup"),
        attr(
            "gen_ai.tool.call.arguments",
            "{\"email\":\"jane@example.com\"}",
        ),
    ];
    tool.status = Some(opentelemetry_proto::tonic::trace::v1::Status {
        code: 2,
        message: "billing API returned 503".into(),
    });
    vec![root, chat, sub, tool]
}

#[derive(Clone, Default)]
struct Collect(
    Arc<Mutex<Vec<Preprocessed>>>,
    Arc<tokio::sync::watch::Sender<usize>>,
);

impl PreprocessedSink for Collect {
    fn accept(&mut self, trace: Preprocessed) {
        self.0.lock().unwrap().push(trace);
        self.1.send_modify(|n| *n += 1);
    }
}

fn plugin(path: &str, on_error: OnError) -> PluginConfig {
    PluginConfig {
        path: PathBuf::from(path),
        on_error,
        timeout: HumanDuration::from_millis(200),
        memory_limit_mib: 32,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_traces_are_preprocessed_beside_the_span_path() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour::default()).await;
    let collect = Collect {
        1: Arc::new(tokio::sync::watch::channel(0).0),
        ..Default::default()
    };
    let sidecar = Sidecar::start_with_preprocessed_sink(
        config(dir.path(), sink.addr),
        Box::new(collect.clone()),
    )
    .await
    .unwrap();
    let mut client = grpc_client(sidecar.addresses.grpc.unwrap()).await;
    client
        .export(request("agent", "s", agent_spans(1, "Where is my refund?")))
        .await
        .unwrap();
    assert_eq!(sink.wait_for_spans(4, WAIT).await, 4, "spans are exported");
    let mut seen = collect.1.subscribe();
    tokio::time::timeout(WAIT, seen.wait_for(|n| *n >= 1))
        .await
        .unwrap()
        .unwrap();
    let metrics_addr = sidecar.addresses.metrics;
    let text = metrics_text(metrics_addr).await;
    sidecar.shutdown().await;
    let got = collect.0.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].meta.service_name.as_deref(), Some("agent"));
    assert_eq!(
        got[0].text(),
        "[user] Where is my refund?\n\
         [assistant tool_call billing_agent] {\"question\":\"refund status\"}\n\
         [user] internal: look up refund for jane@example.com, card 4111 1111 1111 1111\n\
         [assistant tool_call refund_lookup] {\"email\":\"jane@example.com\"}\n\
         [error] execute_tool refund_lookup: billing API returned 503"
    );
    assert_eq!(
        metric(
            &text,
            "tracetopics_preprocess_traces_total{preprocessor=\"default\",outcome=\"ok\"}"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_plugin_is_counted_and_spans_still_flow() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("loop.js"),
        "function preprocess(t) { while (true) {} }",
    )
    .unwrap();
    let sink = Sink::start(SinkBehaviour::default()).await;
    let mut config = config(dir.path(), sink.addr);
    config.base_dir = dir.path().to_path_buf();
    config.preprocess.preprocessor = "loop".into();
    config
        .preprocess
        .plugins
        .insert("loop".into(), plugin("loop.js", OnError::Default));
    let collect = Collect {
        1: Arc::new(tokio::sync::watch::channel(0).0),
        ..Default::default()
    };
    let sidecar = Sidecar::start_with_preprocessed_sink(config, Box::new(collect.clone()))
        .await
        .unwrap();
    let mut client = grpc_client(sidecar.addresses.grpc.unwrap()).await;
    for trace in 1..=2 {
        client
            .export(request("agent", "s", agent_spans(trace, "hello")))
            .await
            .unwrap();
    }
    assert_eq!(sink.wait_for_spans(8, WAIT).await, 8);
    let mut seen = collect.1.subscribe();
    tokio::time::timeout(WAIT, seen.wait_for(|n| *n >= 2))
        .await
        .unwrap()
        .unwrap();
    let text = metrics_text(sidecar.addresses.metrics).await;
    sidecar.shutdown().await;
    assert_eq!(
        metric(
            &text,
            "tracetopics_preprocess_plugin_errors_total{plugin=\"loop\",error=\"timeout\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &text,
            "tracetopics_preprocess_traces_total{preprocessor=\"loop\",outcome=\"fallback\"}"
        ),
        2.0
    );
    for out in collect.0.lock().unwrap().iter() {
        assert_eq!(out.preprocessor, "default");
        assert!(out.text().starts_with("[user] hello"));
    }
}

fn shipped(name: &str, on_error: OnError) -> Preprocessor {
    let mut config = PreprocessConfig::default();
    config
        .plugins
        .insert(name.into(), plugin(&format!("plugins/{name}.js"), on_error));
    Preprocessor::new(
        &config,
        name,
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn view(spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>) -> TraceView {
    let request = request("agent", "s", spans);
    let data = opentelemetry_proto::tonic::trace::v1::TracesData {
        resource_spans: request.resource_spans,
    };
    TraceView::from_data(&trace_id(1), data, Default::default())
}

#[test]
fn shipped_multi_agent_plugin_keeps_the_top_level_conversation() {
    let out = shipped("multi_agent", OnError::Skip)
        .run(&view(agent_spans(1, "Where is my refund?")))
        .unwrap();
    assert_eq!(out.preprocessor, "multi_agent");
    assert_eq!(
        out.text(),
        "[user] Where is my refund?\n\
         [assistant tool_call billing_agent] {\"question\":\"refund status\"}"
    );
}

#[test]
fn shipped_redaction_plugin_masks_personal_data_and_secrets() {
    let mut spans = agent_spans(
        1,
        "I'm jane.doe@example.com, call +1 415-555-0132. Card 4111-1111-1111-1111, key sk-proj-abcdefghijklmnop1234, order 12345",
    );
    spans[3].attributes.push(attr(
        "gen_ai.tool.call.result",
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
    ));
    let out = shipped("redact_pii", OnError::Skip)
        .run(&view(spans))
        .unwrap();
    let text = out.text();
    for secret in [
        "jane.doe@example.com",
        "jane@example.com",
        "415-555-0132",
        "4111",
        "sk-proj",
        "eyJhbGci",
    ] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
    for mask in ["[EMAIL]", "[PHONE]", "[CARD]", "[SECRET]"] {
        assert!(text.contains(mask), "{mask} missing:\n{text}");
    }
    assert!(
        text.contains("order 12345"),
        "ordinary numbers stay:\n{text}"
    );
}

#[test]
fn shipped_tools_and_errors_plugin_keeps_only_tools_and_errors() {
    let out = shipped("tools_and_errors", OnError::Skip)
        .run(&view(agent_spans(1, "Where is my refund?")))
        .unwrap();
    assert_eq!(
        out.text(),
        "[tool_call billing_agent] {\"question\":\"refund status\"}\n\
         [tool_call refund_lookup] {\"email\":\"jane@example.com\"}\n\
         [error] execute_tool refund_lookup: billing API returned 503"
    );
    let mut plain = agent_spans(1, "hi");
    plain.truncate(2);
    plain[1]
        .attributes
        .retain(|kv| kv.key != "gen_ai.output.messages");
    assert_eq!(
        shipped("tools_and_errors", OnError::Skip).run(&view(plain)),
        Err(Skipped::ByPlugin)
    );
}

/// A tool call retried with the same arguments after HTTP 429 (a load-generator trace pinned as a
/// fixture): each call is followed by its own result, and the retry's result appears once, after
/// the retried call — not before it as well.
#[test]
fn a_retried_tool_call_keeps_its_result_in_place() {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/loadgen/trace_429_retry.json");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tracetopics"))
        .args(["preprocess", "--trace"])
        .arg(&fixture)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let call = "[assistant tool_call get_order] {\"order_id\":\"NW-72716\"}";
    let calls: Vec<usize> = (0..lines.len()).filter(|&i| lines[i] == call).collect();
    let results: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("[tool get_order] {\"carrier\""))
        .collect();
    assert_eq!(calls.len(), 2, "the call and its retry:\n{text}");
    assert_eq!(
        results,
        vec![calls[1] + 1],
        "one result, right after the retry:\n{text}"
    );
    assert!(
        lines[calls[0] + 1].starts_with("[error] execute_tool get_order"),
        "{text}"
    );
    assert!(
        lines[calls[0] + 2].starts_with("[tool get_order] Error: 429"),
        "{text}"
    );
}
