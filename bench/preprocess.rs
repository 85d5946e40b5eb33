//! Preprocess benchmark: default-preprocessor throughput in MB of span attributes per second
//! (decode + conversation + dedup + cap, from the `TracesData` bytes the engine hands over), and
//! the per-trace cost of small JavaScript plugins.
//!
//! cargo bench --bench preprocess
//!
//! Aims (issue 3): ≥ 100 MB/s of attributes; ≤ 1 ms per trace for a small plugin.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, TracesData};
use prost::Message;
use serde_json::json;
use std::time::{Duration, Instant};
use tracetopics::config::types::HumanDuration;
use tracetopics::preprocess::{OnError, PluginConfig, PreprocessConfig, Preprocessor, TraceView};

fn kv(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

/// An agent session: `turns` user turns, each with an LLM call that re-sends the whole history,
/// a tool call and its result; every tenth tool fails. Message texts vary so dedup has work.
fn agent_trace(seed: u32, turns: usize) -> (Vec<u8>, usize) {
    let trace_id = {
        let mut id = [7u8; 16];
        id[..4].copy_from_slice(&seed.to_be_bytes());
        id.to_vec()
    };
    let span_id = |i: usize| {
        ((i as u64 + 1) | (u64::from(seed) << 32))
            .to_be_bytes()
            .to_vec()
    };
    let mut spans = vec![Span {
        trace_id: trace_id.clone(),
        span_id: span_id(0),
        name: "invoke_agent support".into(),
        start_time_unix_nano: 1,
        end_time_unix_nano: 10_000_000,
        attributes: vec![
            kv("gen_ai.operation.name", "invoke_agent".into()),
            kv("gen_ai.agent.name", "support".into()),
        ],
        ..Default::default()
    }];
    let mut history = vec![
        json!({"role": "system", "parts": [{"type": "text", "content": "You are the support agent of an online shop. Be concise, check orders with tools before answering."}]}),
    ];
    let mut attribute_bytes = 0;
    for turn in 0..turns {
        history.push(json!({"role": "user", "parts": [{"type": "text", "content": format!("Turn {turn}: my order {} from customer {seed} has not arrived, the tracking page says it left the warehouse {} days ago. Can you check and tell me when it will arrive?", 1000 + turn, turn % 7 + 1)}]}));
        let call = json!({"role": "assistant", "parts": [{"type": "tool_call", "id": format!("c{turn}"), "name": "lookup_order", "arguments": {"order": 1000 + turn, "customer": seed}}]});
        let input = serde_json::to_string(&history).unwrap();
        let output = serde_json::to_string(&[&call]).unwrap();
        attribute_bytes += input.len() + output.len();
        spans.push(Span {
            trace_id: trace_id.clone(),
            span_id: span_id(spans.len()),
            parent_span_id: span_id(0),
            name: "chat gpt-4o".into(),
            start_time_unix_nano: 10 + turn as u64 * 100,
            end_time_unix_nano: 50 + turn as u64 * 100,
            attributes: vec![
                kv("gen_ai.operation.name", "chat".into()),
                kv("gen_ai.request.model", "gpt-4o".into()),
                kv("gen_ai.input.messages", input),
                kv("gen_ai.output.messages", output),
            ],
            ..Default::default()
        });
        let failed = turn % 10 == 9;
        let result = if failed {
            String::new()
        } else {
            format!(
                "{{\"status\": \"in transit\", \"carrier\": \"DHL\", \"eta_days\": {}, \"last_scan\": \"Leipzig hub\"}}",
                turn % 4 + 1
            )
        };
        spans.push(Span {
            trace_id: trace_id.clone(),
            span_id: span_id(spans.len()),
            parent_span_id: span_id(0),
            name: "execute_tool lookup_order".into(),
            start_time_unix_nano: 60 + turn as u64 * 100,
            end_time_unix_nano: 70 + turn as u64 * 100,
            attributes: vec![
                kv("gen_ai.operation.name", "execute_tool".into()),
                kv("gen_ai.tool.name", "lookup_order".into()),
                kv(
                    "gen_ai.tool.call.arguments",
                    format!("{{\"order\": {}, \"customer\": {seed}}}", 1000 + turn),
                ),
                kv("gen_ai.tool.call.result", result.clone()),
            ],
            status: failed.then(|| Status {
                code: 2,
                message: "order service timed out".into(),
            }),
            ..Default::default()
        });
        history.push(call);
        history.push(json!({"role": "tool", "parts": [{"type": "tool_call_response", "id": format!("c{turn}"), "response": result}]}));
        history.push(json!({"role": "assistant", "parts": [{"type": "text", "content": format!("Your order {} is in transit with DHL and should arrive in {} days.", 1000 + turn, turn % 4 + 1)}]}));
    }
    let data = TracesData {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "support-agent".into())],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    };
    (data.encode_to_vec(), attribute_bytes)
}

fn time<F: FnMut()>(min: Duration, mut f: F) -> (u32, Duration) {
    let started = Instant::now();
    let mut runs = 0;
    while started.elapsed() < min || runs < 3 {
        f();
        runs += 1;
    }
    (runs, started.elapsed())
}

fn main() {
    println!("== default preprocessor (decode TracesData → conversation → dedup → cap) ==");
    println!(
        "| trace | spans | attribute MB | output segments | ms per trace | MB/s of attributes |"
    );
    println!("|---|---|---|---|---|---|");
    for turns in [5usize, 20, 60] {
        let traces: Vec<(Vec<u8>, usize)> = (0..8).map(|s| agent_trace(s, turns)).collect();
        let attribute_mb: f64 = traces.iter().map(|t| t.1).sum::<usize>() as f64 / 1e6;
        let mut preprocessor = Preprocessor::builtin(128_000);
        let mut tokens = 0;
        let (runs, elapsed) = time(Duration::from_secs(2), || {
            for (payload, _) in &traces {
                let view = TraceView::decode(&[7; 16], payload, &[]).unwrap();
                tokens = preprocessor.run(&view).unwrap().segments.len();
            }
        });
        let per_trace = elapsed.as_secs_f64() / f64::from(runs) / traces.len() as f64;
        println!(
            "| {turns} turns | {} | {:.2} | {tokens} | {:.3} | {:.0} |",
            1 + 2 * turns,
            attribute_mb / traces.len() as f64,
            per_trace * 1e3,
            attribute_mb * f64::from(runs) / elapsed.as_secs_f64()
        );
    }

    println!("\n== JavaScript plugins (QuickJS), per trace, 5-turn trace ==");
    println!("| plugin | µs per trace (incl. default preprocessor) | µs default alone |");
    println!("|---|---|---|");
    let (payload, _) = agent_trace(1, 5);
    let view = TraceView::decode(&[7; 16], &payload, &[]).unwrap();
    let mut builtin = Preprocessor::builtin(128_000);
    let (runs, elapsed) = time(Duration::from_secs(1), || {
        builtin.run(&view).unwrap();
    });
    let default_us = elapsed.as_secs_f64() * 1e6 / f64::from(runs);
    let dir = std::env::temp_dir().join(format!("tracetopics-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("small.js"),
        "function preprocess(t) { return t.spans.filter(s => s.name.startsWith('chat')).map(s => s.name + ' ' + (s.attributes['gen_ai.request.model'] || '')); }",
    )
    .unwrap();
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/plugins/");
    for (name, path) in [
        ("small (filters spans)", dir.join("small.js")),
        ("redact_pii.js", format!("{shipped}redact_pii.js").into()),
        ("multi_agent.js", format!("{shipped}multi_agent.js").into()),
    ] {
        let mut config = PreprocessConfig::default();
        config.plugins.insert(
            "p".into(),
            PluginConfig {
                path,
                on_error: OnError::Skip,
                timeout: HumanDuration::from_secs(5),
                memory_limit_mib: 64,
            },
        );
        let mut preprocessor = Preprocessor::new(&config, "p", &dir).unwrap();
        let (runs, elapsed) = time(Duration::from_secs(1), || {
            preprocessor.run(&view).unwrap();
        });
        println!(
            "| {name} | {:.0} | {default_us:.0} |",
            elapsed.as_secs_f64() * 1e6 / f64::from(runs)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
