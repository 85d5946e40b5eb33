//! The load generator: traces in the GenAI convention shape that the default preprocessor reads
//! as a support conversation, deterministic for a seed, diverse across a seed, and delivered
//! completely over real OTLP/gRPC (split over several requests, retried when the server says so).

mod common;

use common::*;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::logs::v1::LogsData;
use opentelemetry_proto::tonic::trace::v1::{Span, TracesData};
use std::collections::{BTreeSet, HashSet};
use std::time::Duration;
use tracetopics::loadgen::{
    Intent, LoadgenConfig, Sentiment, TraceTruth, Workload, run, split_for_export,
};
use tracetopics::preprocess::{Preprocessor, TraceView};

fn spans(traces: &TracesData) -> Vec<&Span> {
    traces
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .collect()
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
}

fn conversation(traces: &TracesData) -> Vec<String> {
    let trace_id = spans(traces)[0].trace_id.clone();
    let view = TraceView::from_data(&trace_id, traces.clone(), LogsData::default());
    Preprocessor::builtin(128_000)
        .run(&view)
        .expect("a conversation")
        .segments
}

/// The first trace of `workload` whose truth satisfies `wanted`.
fn find(workload: &Workload, wanted: impl Fn(&TraceTruth) -> bool) -> (TracesData, TraceTruth) {
    (0..2_000)
        .map(|i| workload.trace(i))
        .find(|(_, truth)| wanted(truth))
        .expect("a matching trace among the first 2,000")
}

fn config(sink: &Sink, count: u64, seed: u64) -> LoadgenConfig {
    LoadgenConfig {
        endpoint: format!("http://{}", sink.addr),
        rate_per_sec: 0.0,
        count,
        concurrency: 4,
        ood_share: 0.2,
        seed,
    }
}

#[tokio::test]
async fn every_span_of_every_trace_arrives() {
    let sink = Sink::start(SinkBehaviour::default()).await;
    let before = unix_nanos();
    let report = run(config(&sink, 60, 3)).await.unwrap();
    let after = unix_nanos();

    let workload = Workload::new(3).with_ood_share(0.2);
    let expected: HashSet<(Vec<u8>, Vec<u8>)> = (0..60)
        .flat_map(|i| {
            let (traces, _) = workload.trace(i);
            spans(&traces)
                .into_iter()
                .map(|s| (s.trace_id.clone(), s.span_id.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let received: Vec<(Vec<u8>, Vec<u8>)> = sink
        .spans()
        .into_iter()
        .map(|(_, _, s)| (s.trace_id, s.span_id))
        .collect();
    assert_eq!(received.len(), expected.len(), "no span twice, none lost");
    assert_eq!(received.into_iter().collect::<HashSet<_>>(), expected);

    assert_eq!(report.traces, 60);
    assert_eq!(report.spans as usize, expected.len());
    assert_eq!(report.failed_requests, 0);
    assert_eq!(report.requests as usize, sink.requests().len());
    assert!(
        sink.requests().len() > 60,
        "some traces are split over several requests"
    );
    assert!(
        sink.spans()
            .iter()
            .all(|(service, ..)| service == "support-agent")
    );
    // Sent traces are dated as just finished, not at the workload's fixed start.
    let roots: Vec<Span> = sink
        .spans()
        .into_iter()
        .map(|(_, _, s)| s)
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len(), 60);
    for root in roots {
        assert!(root.end_time_unix_nano >= before && root.end_time_unix_nano <= after);
    }
}

fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[tokio::test]
async fn unavailable_and_resource_exhausted_are_retried() {
    for (code, retry_delay) in [
        (tonic::Code::Unavailable, None),
        (
            tonic::Code::ResourceExhausted,
            Some(Duration::from_millis(5)),
        ),
    ] {
        let sink = Sink::start(SinkBehaviour {
            fail_first: 3,
            code,
            retry_delay,
            poison: None,
        })
        .await;
        let report = run(config(&sink, 5, 4)).await.unwrap();
        assert_eq!(report.retries, 3, "{code:?}");
        assert_eq!(report.traces, 5, "{code:?}");
        assert_eq!(report.failed_requests, 0, "{code:?}");
        assert_eq!(sink.spans().len() as u64, report.spans, "{code:?}");
    }
}

#[tokio::test]
async fn a_refused_request_is_counted_not_retried() {
    // The root span is always in a trace's last request: refusing it fails every trace once.
    let sink = Sink::start(SinkBehaviour {
        poison: Some("invoke_agent support-agent".into()),
        ..SinkBehaviour::default()
    })
    .await;
    let report = run(config(&sink, 8, 5)).await.unwrap();
    assert_eq!(report.traces, 0);
    assert_eq!(report.failed_requests, 8);
    assert_eq!(report.retries, 0);
    assert_eq!(sink.attempts() as u64, report.requests + 8);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_an_error() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = unused.local_addr().unwrap();
    drop(unused);
    let result = run(LoadgenConfig {
        endpoint: format!("http://{addr}"),
        count: 1,
        ..LoadgenConfig::default()
    })
    .await;
    assert!(result.is_err());
}

#[test]
fn the_preprocessor_reads_request_tool_call_and_result() {
    let workload = Workload::new(11);
    let (traces, truth) = find(&workload, |t| {
        t.intent == Intent::Refund && t.failed_tool.is_none()
    });
    let lines = conversation(&traces);
    assert!(lines[0].starts_with("[system] "), "{lines:#?}");
    assert_eq!(lines[1], format!("[user] {}", truth.request));
    let call = lines
        .iter()
        .position(|l| l.starts_with("[assistant tool_call get_order] {\"order_id\":"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    let result = &lines[call + 1];
    assert!(result.starts_with("[tool get_order] {"), "{lines:#?}");
    assert!(result.contains("\"order_id\":\"NW-"), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[assistant tool_call issue_refund]"))
    );
    assert!(
        lines.last().unwrap().starts_with("[assistant] "),
        "{lines:#?}"
    );
    let unique: HashSet<&String> = lines.iter().collect();
    assert_eq!(unique.len(), lines.len(), "nothing repeated: {lines:#?}");
}

#[test]
fn a_failing_tool_shows_as_an_error_and_what_the_model_was_told() {
    let workload = Workload::new(12);
    let (traces, truth) = find(&workload, |t| t.failed_tool.is_some() && !t.retried);
    let tool = truth.failed_tool.as_deref().unwrap();
    let lines = conversation(&traces);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("[error] execute_tool {tool}: "))),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("[tool {tool}] Error: "))),
        "{lines:#?}"
    );
}

#[test]
fn failing_tools_carry_error_status_and_an_exception() {
    let workload = Workload::new(13);
    let mut failures = 0;
    for i in 0..400 {
        let (traces, truth) = workload.trace(i);
        let Some(tool) = truth.failed_tool else {
            continue;
        };
        failures += 1;
        let name = format!("execute_tool {tool}");
        let failed: Vec<&Span> = spans(&traces)
            .into_iter()
            .filter(|s| s.name == name && s.status.as_ref().is_some_and(|st| st.code == 2))
            .collect();
        assert_eq!(failed.len(), 1, "trace {i}");
        let span = failed[0];
        assert!(!span.status.as_ref().unwrap().message.is_empty());
        assert!(attr(span, "error.type").is_some());
        assert!(attr(span, "gen_ai.tool.call.result").is_none());
        let exception = span.events.iter().find(|e| e.name == "exception").unwrap();
        for key in [
            "exception.type",
            "exception.message",
            "exception.stacktrace",
        ] {
            assert!(exception.attributes.iter().any(|kv| kv.key == key), "{key}");
        }
        let calls = spans(&traces)
            .into_iter()
            .filter(|s| s.name == name)
            .count();
        assert_eq!(calls, if truth.retried { 2 } else { 1 }, "trace {i}");
    }
    assert!(failures >= 20, "only {failures} failing traces in 400");
}

#[test]
fn spans_follow_the_genai_conventions() {
    let (traces, _) = find(&Workload::new(14), |t| t.turns >= 2);
    let all = spans(&traces);
    let root = all.iter().find(|s| s.parent_span_id.is_empty()).unwrap();
    assert_eq!(root.name, "invoke_agent support-agent");
    assert_eq!(attr(root, "gen_ai.operation.name"), Some("invoke_agent"));
    assert!(attr(root, "gen_ai.conversation.id").is_some());
    for span in &all {
        assert_eq!(span.trace_id, root.trace_id);
        assert!(span.start_time_unix_nano >= root.start_time_unix_nano);
        assert!(span.end_time_unix_nano <= root.end_time_unix_nano);
        if span.span_id == root.span_id {
            continue;
        }
        assert_eq!(span.parent_span_id, root.span_id);
        match attr(span, "gen_ai.operation.name") {
            Some("chat") => {
                assert!(span.name.starts_with("chat "));
                assert!(attr(span, "gen_ai.request.model").is_some());
                for key in ["gen_ai.input.messages", "gen_ai.output.messages"] {
                    let json: serde_json::Value =
                        serde_json::from_str(attr(span, key).unwrap()).unwrap();
                    assert!(json[0]["parts"].is_array(), "{key}");
                }
                let usage = |key: &str| span.attributes.iter().any(|kv| kv.key == key);
                assert!(usage("gen_ai.usage.input_tokens") && usage("gen_ai.usage.output_tokens"));
            }
            Some("execute_tool") => {
                let tool = attr(span, "gen_ai.tool.name").unwrap();
                assert_eq!(span.name, format!("execute_tool {tool}"));
                serde_json::from_str::<serde_json::Value>(
                    attr(span, "gen_ai.tool.call.arguments").unwrap(),
                )
                .unwrap();
            }
            other => panic!("unexpected operation {other:?} on {}", span.name),
        }
    }
    let users = conversation(&traces)
        .iter()
        .filter(|l| l.starts_with("[user] "))
        .count();
    assert!(users >= 2, "multi-turn");
}

#[test]
fn one_seed_always_yields_the_same_traces() {
    let (a, b) = (Workload::new(21), Workload::new(21));
    for i in [0, 1, 57, 999] {
        assert_eq!(a.trace(i), b.trace(i), "trace {i}");
    }
    assert_ne!(a.trace(0).0, Workload::new(22).trace(0).0);
    assert_ne!(a.trace(0).0, a.trace(1).0);
}

#[test]
fn a_seed_covers_every_intent_and_sentiment_in_varied_words() {
    let workload = Workload::new(31).with_ood_share(0.15);
    let truths: Vec<TraceTruth> = (0..1_000).map(|i| workload.trace(i).1).collect();
    let intents: BTreeSet<Intent> = truths.iter().map(|t| t.intent).collect();
    for intent in Intent::SUPPORT {
        assert!(intents.contains(&intent), "{intent:?} missing");
    }
    let sentiments: BTreeSet<Sentiment> = truths.iter().map(|t| t.sentiment).collect();
    assert_eq!(sentiments.len(), 4);
    let ood = truths.iter().filter(|t| t.ood).count();
    assert!((80..=230).contains(&ood), "{ood} off-topic of 1,000");
    assert!(
        truths
            .iter()
            .all(|t| t.ood == (t.intent == Intent::OffTopic))
    );
    assert!(truths.iter().any(|t| t.retried));
    assert!(truths.iter().any(|t| t.failed_tool.is_some() && !t.retried));
    assert!(truths.iter().any(|t| t.turns == 3));
    let support: Vec<&TraceTruth> = truths.iter().filter(|t| !t.ood).collect();
    let distinct: HashSet<&str> = support.iter().map(|t| t.request.as_str()).collect();
    assert!(
        distinct.len() * 100 >= support.len() * 95,
        "{} distinct requests of {}",
        distinct.len(),
        support.len()
    );
}

#[test]
fn splitting_for_export_keeps_every_span_once_and_the_root_last() {
    let (traces, _) = Workload::new(41).trace(3);
    let all = spans(&traces).len();
    for parts in [1, 2, 3, 100] {
        let requests = split_for_export(traces.clone(), parts);
        assert_eq!(requests.len(), parts.min(all));
        assert_eq!(requests.iter().map(count_spans).sum::<usize>(), all);
        let last = requests.last().unwrap();
        let last_spans: Vec<&Span> = last
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .collect();
        assert!(last_spans.iter().any(|s| s.parent_span_id.is_empty()));
        assert!(
            requests
                .iter()
                .flat_map(|r| &r.resource_spans)
                .all(|rs| service_name(rs.resource.as_ref().unwrap()) == "support-agent")
        );
    }
}

#[test]
fn the_cli_sends_and_prints_a_summary() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sink = runtime.block_on(Sink::start(SinkBehaviour::default()));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tracetopics"))
        .args(["loadgen", "--endpoint", &format!("http://{}", sink.addr)])
        .args(["--rate", "0", "--count", "12", "--concurrency", "2"])
        .args(["--ood-share", "0.5", "--seed", "9"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("sent 12 traces"), "{stdout}");
    assert_eq!(
        spans_by_trace(&sink).len(),
        12,
        "every trace arrived: {stdout}"
    );
}
