use super::trace::{EventView, LogView, SpanView, StatusView, TraceView};
use super::*;
use serde_json::{Value, json};

fn attrs(value: Value) -> trace::Attributes {
    value.as_object().unwrap().clone()
}

fn span(id: &str, parent: &str, start: u64, end: u64, name: &str, attributes: Value) -> SpanView {
    SpanView {
        span_id: id.into(),
        parent_span_id: parent.into(),
        name: name.into(),
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes: attrs(attributes),
        resource: attrs(json!({"service.name": "support-agent"})),
        ..Default::default()
    }
}

fn trace(spans: Vec<SpanView>) -> TraceView {
    TraceView {
        trace_id: "ab".repeat(16),
        spans,
        logs: vec![],
    }
}

fn text_of(trace: &TraceView) -> String {
    let mut p = Preprocessor::builtin(128_000);
    p.run(trace).unwrap().text()
}

/// An agent turn where every LLM call re-sends the history (GenAI ≥ 1.37 attributes), with a
/// tool span between the calls, written out of order on purpose.
fn agent_trace() -> TraceView {
    let system = json!([{"type": "text", "content": "You are a support agent."}]);
    let user =
        json!({"role": "user", "parts": [{"type": "text", "content": "Where is my order 42?"}]});
    let call = json!({"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "lookup_order", "arguments": {"order": 42}}]});
    let result = json!({"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "shipped yesterday"}]});
    let answer = json!({"role": "assistant", "parts": [{"type": "text", "content": "It shipped yesterday."}]});
    trace(vec![
        span(
            "03",
            "01",
            300,
            400,
            "chat gpt-4o",
            json!({
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                "gen_ai.system_instructions": system.to_string(),
                "gen_ai.input.messages": json!([user, call, result]).to_string(),
                "gen_ai.output.messages": json!([answer]).to_string(),
                "gen_ai.usage.input_tokens": 120, "gen_ai.usage.output_tokens": 9,
            }),
        ),
        span(
            "01",
            "",
            0,
            500,
            "invoke_agent support",
            json!({
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support",
                "gen_ai.usage.input_tokens": 999,
            }),
        ),
        span(
            "02",
            "01",
            100,
            200,
            "chat gpt-4o",
            json!({
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                "gen_ai.system_instructions": system,
                "gen_ai.input.messages": [user],
                "gen_ai.output.messages": [call],
                "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 12,
                "user.id": "u-7",
            }),
        ),
        span(
            "04",
            "01",
            210,
            290,
            "execute_tool lookup_order",
            json!({
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order",
                "gen_ai.tool.call.id": "c1", "gen_ai.tool.call.arguments": "{\"order\": 42}",
                "gen_ai.tool.call.result": "shipped yesterday",
            }),
        ),
    ])
}

#[test]
fn history_resent_by_every_call_appears_once_in_order() {
    let text = text_of(&agent_trace());
    assert_eq!(
        text,
        "[system] You are a support agent.\n\
         [user] Where is my order 42?\n\
         [assistant tool_call lookup_order] {\"order\":42}\n\
         [tool lookup_order] shipped yesterday\n\
         [assistant] It shipped yesterday."
    );
}

#[test]
fn metadata_counts_usage_on_the_innermost_spans_only() {
    let mut p = Preprocessor::builtin(128_000);
    let out = p.run(&agent_trace()).unwrap();
    let meta = out.meta;
    assert_eq!(meta.service_name.as_deref(), Some("support-agent"));
    assert_eq!(meta.user_id.as_deref(), Some("u-7"));
    assert_eq!(meta.models, vec!["gpt-4o".to_string()]);
    assert_eq!((meta.input_tokens, meta.output_tokens), (220, 21));
    assert_eq!(meta.root_span_name, "invoke_agent support");
    assert_eq!(meta.span_count, 4);
}

#[test]
fn a_message_said_twice_by_the_user_is_kept_twice() {
    let first = json!([{"role": "user", "content": "yes"}]);
    let second = json!([
        {"role": "user", "content": "yes"},
        {"role": "assistant", "content": "Shall I cancel it?"},
        {"role": "user", "content": "yes"}
    ]);
    let t = trace(vec![
        span(
            "01",
            "",
            0,
            10,
            "chat",
            json!({"gen_ai.input.messages": first.to_string(),
            "gen_ai.output.messages": json!([{"role": "assistant", "content": "Shall I cancel it?"}]).to_string()}),
        ),
        span(
            "02",
            "",
            20,
            30,
            "chat",
            json!({"gen_ai.input.messages": second.to_string()}),
        ),
    ]);
    assert_eq!(
        text_of(&t),
        "[user] yes\n[assistant] Shall I cancel it?\n[user] yes"
    );
}

#[test]
fn evaluator_spans_and_their_children_are_dropped() {
    let mut t = agent_trace();
    t.spans.push(span(
        "10",
        "01",
        450,
        490,
        "relevance-judge",
        json!({
        "openinference.span.kind": "EVALUATOR", "input.value": "judge this"}),
    ));
    t.spans.push(span("11", "10", 455, 480, "chat", json!({
        "gen_ai.input.messages": json!([{"role": "user", "content": "Rate the answer 1-5"}]).to_string()})));
    t.spans.push(span(
        "12",
        "01",
        460,
        470,
        "score",
        json!({
        "braintrust.span_attributes": "{\"type\":\"score\",\"name\":\"accuracy\"}",
        "braintrust.input_json": "\"SCORER INPUT\""}),
    ));
    t.spans.push(span(
        "13",
        "01",
        470,
        475,
        "langfuse eval",
        json!({
        "langfuse.observation.type": "evaluator", "langfuse.observation.input": "EVAL"}),
    ));
    t.spans.push(span("14", "01", 476, 477, "eval event", json!({
        "gen_ai.evaluation.name": "toxicity", "gen_ai.input.messages": json!([{"role":"user","content":"EVAL2"}]).to_string()})));
    let mut p = Preprocessor::builtin(128_000);
    let out = p.run(&t).unwrap();
    let text = out.text();
    for leaked in ["Rate the answer", "SCORER INPUT", "EVAL", "judge this"] {
        assert!(!text.contains(leaked), "{leaked} leaked into:\n{text}");
    }
    assert_eq!(out.meta.dropped_scorer_spans, 5);
    assert_eq!(text, text_of(&agent_trace()));
}

#[test]
fn failed_tools_and_exceptions_become_error_lines_once() {
    let mut failing = span(
        "05",
        "01",
        210,
        290,
        "execute_tool book_flight",
        json!({
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "book_flight",
        "gen_ai.tool.call.arguments": {"to": "Rome"}}),
    );
    failing.status = StatusView {
        code: 2,
        message: "no seats left".into(),
    };
    failing.events.push(EventView {
        name: "exception".into(),
        time_unix_nano: 250,
        attributes: attrs(
            json!({"exception.type": "SoldOut", "exception.message": "no seats left"}),
        ),
    });
    let mut parent = span("01", "", 0, 500, "agent", json!({}));
    parent.status = StatusView {
        code: 2,
        message: String::new(),
    };
    let t = trace(vec![parent, failing]);
    let mut p = Preprocessor::builtin(128_000);
    let out = p.run(&t).unwrap();
    assert_eq!(
        out.text(),
        "[assistant tool_call book_flight] {\"to\":\"Rome\"}\n\
         [error] execute_tool book_flight: SoldOut: no seats left\n\
         [error] agent failed"
    );
    assert_eq!(out.meta.error_count, 2);
}

#[test]
fn log_record_events_join_their_span_in_time_order() {
    // Older GenAI: one log record per message, `gen_ai.choice` for the answer.
    let mut t = trace(vec![span(
        "01",
        "",
        0,
        100,
        "chat gpt-4o",
        json!({"gen_ai.system": "openai"}),
    )]);
    let log = |time: u64, event: &str, body: Value| LogView {
        span_id: "01".into(),
        time_unix_nano: time,
        event_name: event.into(),
        body,
        ..Default::default()
    };
    t.logs = vec![
        log(
            3,
            "gen_ai.choice",
            json!({"index": 0, "finish_reason": "tool_calls", "message": {"tool_calls": [
            {"id": "c9", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}]}}),
        ),
        log(1, "gen_ai.system.message", json!({"content": "Be terse."})),
        log(
            2,
            "gen_ai.user.message",
            json!({"content": "Oslo weather?"}),
        ),
    ];
    assert_eq!(
        text_of(&t),
        "[system] Be terse.\n[user] Oslo weather?\n[assistant tool_call weather] {\"city\":\"Oslo\"}"
    );
}

#[test]
fn traces_without_llm_content_fall_back_to_inputs_and_outputs() {
    let t = trace(vec![span(
        "01",
        "",
        0,
        10,
        "workflow",
        json!({
            "traceloop.span.kind": "workflow",
            "traceloop.entity.input": "{\"args\": [\"Summarize the ticket\"], \"kwargs\": {}}",
            "traceloop.entity.output": "\"Customer wants a refund\"",
        }),
    )]);
    assert_eq!(
        text_of(&t),
        "[user] Summarize the ticket\n[assistant] Customer wants a refund"
    );
    let empty = trace(vec![span(
        "01",
        "",
        0,
        10,
        "GET /health",
        json!({"http.method": "GET"}),
    )]);
    let mut p = Preprocessor::builtin(128_000);
    assert_eq!(p.run(&empty), Err(Skipped::Empty));
}

#[test]
fn attachments_are_stripped_wherever_they_appear() {
    let image = format!("data:image/png;base64,{}", "iVBORw0KGgo".repeat(2000));
    let t = trace(vec![span(
        "01",
        "",
        0,
        10,
        "chat",
        json!({
            "gen_ai.input.messages": json!([{"role": "user", "parts": [
                {"type": "text", "content": format!("What is in {image} ?")},
                {"type": "blob", "modality": "image", "mime_type": "image/png", "content": "QUJD".repeat(5000)}
            ]}]).to_string(),
            "gen_ai.output.messages": json!([{"role": "assistant", "parts": [{"type": "tool_call", "name": "embed",
                "arguments": {"vector": (0..768).map(|i| i as f64).collect::<Vec<_>>()}}]}]).to_string(),
        }),
    )]);
    let text = text_of(&t);
    assert!(text.len() < 400, "{text}");
    assert!(text.contains("[attachment image/png, "), "{text}");
    assert!(text.contains("[vector of 768 numbers]"), "{text}");
}

#[test]
fn the_token_cap_keeps_the_start_and_the_failure_at_the_end() {
    let mut spans = vec![span("01", "", 0, 100_000, "agent", json!({}))];
    for i in 0..300u64 {
        spans.push(span(&format!("{:016x}", i + 2), "01", 10 + i, 11 + i, "chat", json!({
            "gen_ai.output.messages": json!([{"role": "assistant", "content": format!("step {i}: searching the knowledge base for the answer")}]).to_string()
        })));
    }
    let mut last = span(
        "ff",
        "01",
        5000,
        6000,
        "execute_tool refund",
        json!({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "refund"}),
    );
    last.status = StatusView {
        code: 2,
        message: "payment gateway timeout".into(),
    };
    spans.push(last);
    let mut p = Preprocessor::builtin(1000);
    let out = p.run(&trace(spans)).unwrap();
    assert!(out.tokens() <= 1000, "{} tokens", out.tokens());
    assert!(out.omitted_tokens > 0);
    let text = out.text();
    assert!(text.starts_with("[assistant] step 0:"), "{text}");
    assert!(
        text.ends_with("[error] execute_tool refund: payment gateway timeout"),
        "{text}"
    );
    assert!(text.contains("tokens omitted"));
}

#[test]
fn a_deep_chain_of_spans_does_not_overflow_the_stack() {
    let spans: Vec<SpanView> = (0..50_000u64)
        .map(|i| {
            let parent = if i == 0 {
                String::new()
            } else {
                format!("{:016x}", i - 1)
            };
            span(
                &format!("{:016x}", i),
                &parent,
                i,
                100_000 - i,
                "step",
                json!({}),
            )
        })
        .collect();
    let mut last = spans.last().unwrap().clone();
    last.span_id = "ffffffffffffffff".into();
    last.attributes =
        attrs(json!({"gen_ai.input.messages": "[{\"role\":\"user\",\"content\":\"deep\"}]"}));
    let mut spans = spans;
    spans.push(last);
    assert_eq!(text_of(&trace(spans)), "[user] deep");
}

mod plugins {
    use super::*;
    use crate::config::types::HumanDuration;
    use std::path::Path;

    fn plugin(source: &str) -> Result<Plugin, PluginError> {
        let config = PluginConfig {
            path: "test.js".into(),
            on_error: OnError::Default,
            timeout: HumanDuration::from_millis(100),
            memory_limit_mib: 16,
        };
        Plugin::from_source("test", Path::new("test.js"), source.to_string(), &config)
    }

    fn simple() -> TraceView {
        agent_trace()
    }

    #[test]
    fn a_plugin_returns_a_string_an_array_or_null() {
        let mut p =
            plugin("function preprocess(t) { return 'spans: ' + t.spans.length; }").unwrap();
        assert_eq!(
            p.run(&simple()),
            Ok(PluginOutput::Segments(vec!["spans: 4".into()]))
        );
        let mut p = plugin(
            "function preprocess(t) { return t.spans.map(s => s.name + ' ' + s.attributes['gen_ai.operation.name']).sort(); }",
        )
        .unwrap();
        assert_eq!(
            p.run(&simple()),
            Ok(PluginOutput::Segments(vec![
                "chat gpt-4o chat".into(),
                "chat gpt-4o chat".into(),
                "execute_tool lookup_order execute_tool".into(),
                "invoke_agent support invoke_agent".into()
            ]))
        );
        let mut p = plugin("function preprocess(t) { return null; }").unwrap();
        assert_eq!(p.run(&simple()), Ok(PluginOutput::Skip));
    }

    #[test]
    fn default_preprocess_is_callable_from_javascript() {
        let mut p = plugin(
            "function preprocess(t) { return defaultPreprocess(t).filter(l => !l.startsWith('[system]')).map(l => l.toUpperCase()); }",
        )
        .unwrap();
        let Ok(PluginOutput::Segments(lines)) = p.run(&simple()) else {
            panic!("plugin failed")
        };
        assert_eq!(lines[0], "[USER] WHERE IS MY ORDER 42?");
        assert_eq!(lines.len(), 4);
        let mut p = plugin(
            "function preprocess(t) { return defaultSegments(t).filter(s => s.kind === 'tool_call').map(s => s.name + '@' + s.agent); }",
        )
        .unwrap();
        assert_eq!(
            p.run(&simple()),
            Ok(PluginOutput::Segments(vec!["lookup_order@support".into()]))
        );
    }

    #[test]
    fn a_throwing_plugin_reports_the_message_and_line() {
        let mut p =
            plugin("function preprocess(t) {\n  const x = 1;\n  throw new Error('boom');\n}")
                .unwrap();
        match p.run(&simple()) {
            Err(PluginError::Threw(message)) => {
                assert!(message.contains("boom"), "{message}");
                assert!(message.contains("line 3"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let mut p = plugin("function preprocess(t) { return t.nothing.deeper; }").unwrap();
        assert!(matches!(p.run(&simple()), Err(PluginError::Threw(m)) if m.contains("TypeError")));
    }

    #[test]
    fn an_endless_loop_is_interrupted_and_the_plugin_keeps_working() {
        let mut p = plugin(
            "let calls = 0; function preprocess(t) { calls++; if (calls === 1) { while (true) {} } return 'call ' + calls; }",
        )
        .unwrap();
        assert_eq!(
            p.run(&simple()),
            Err(PluginError::Timeout(std::time::Duration::from_millis(100)))
        );
        // The runtime was rebuilt: state starts over, and the next trace is served.
        assert!(matches!(p.run(&simple()), Err(PluginError::Timeout(_))));
        let mut p = plugin("function preprocess(t) { for (;;) { JSON.stringify(t); } }").unwrap();
        assert!(matches!(p.run(&simple()), Err(PluginError::Timeout(_))));
    }

    #[test]
    fn a_memory_bomb_hits_the_limit_and_the_next_call_works() {
        let mut p = plugin(
            "let n = 0; function preprocess(t) { n++; if (t.spans.length === 4 && n === 1) { const a = []; while (true) { a.push('x'.repeat(1 << 20)); } } return 'ok'; }",
        )
        .unwrap();
        assert_eq!(p.run(&simple()), Err(PluginError::OutOfMemory(16)));
        assert_eq!(
            p.run(&simple()),
            Err(PluginError::OutOfMemory(16)),
            "fresh runtime, n restarts"
        );
        let mut p = plugin(
            "function preprocess(t) { function f(n) { return f(n + 1) + 1; } return f(0); }",
        )
        .unwrap();
        let result = p.run(&simple());
        assert!(
            matches!(&result, Err(PluginError::Threw(m)) if m.contains("stack")),
            "{result:?}"
        );
    }

    #[test]
    fn wrong_return_types_are_refused() {
        for (source, expect) in [
            ("function preprocess(t) { return 42; }", "int"),
            ("function preprocess(t) { return {text: 'x'}; }", "object"),
            ("function preprocess(t) { return ['ok', 7]; }", "item 1"),
        ] {
            let mut p = plugin(source).unwrap();
            match p.run(&simple()) {
                Err(PluginError::WrongType(what)) => assert!(what.contains(expect), "{what}"),
                other => panic!("{source}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_syntax_error_names_the_file_and_line() {
        let err = plugin("function preprocess(t) {\n  return 'a' +;\n}")
            .err()
            .unwrap();
        match err {
            PluginError::Syntax {
                path,
                line,
                message,
            } => {
                assert_eq!(path, "test.js");
                assert_eq!(line, 2);
                assert!(message.contains("SyntaxError"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let err = plugin("function other() {}").err().unwrap();
        assert!(err.to_string().contains("does not define"), "{err}");
    }

    #[test]
    fn the_sandbox_has_no_files_network_or_processes() {
        for probe in [
            "require('fs').readFileSync('/etc/passwd', 'utf8')",
            "std.loadFile('/etc/passwd')",
            "os.exec(['/bin/sh', '-c', 'id'])",
            "fetch('http://127.0.0.1:1/')",
            "new XMLHttpRequest()",
            "process.env.HOME",
            "Deno.readTextFileSync('/etc/passwd')",
        ] {
            let source = format!(
                "function preprocess(t) {{ try {{ return String({probe}); }} catch (e) {{ return 'blocked: ' + e.name; }} }}"
            );
            let mut p = plugin(&source).unwrap();
            assert_eq!(
                p.run(&simple()),
                Ok(PluginOutput::Segments(vec![
                    "blocked: ReferenceError".into()
                ])),
                "{probe}"
            );
        }
        // Dynamic import has no loader to reach the filesystem either.
        let mut p = plugin(
            "let r = 'pending'; import('/etc/passwd').then(() => { r = 'loaded'; }, e => { r = 'blocked'; }); function preprocess(t) { return r; }",
        )
        .unwrap();
        assert_ne!(
            p.run(&simple()),
            Ok(PluginOutput::Segments(vec!["loaded".into()]))
        );
    }

    #[test]
    fn failures_fall_back_per_on_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("bad.js"),
            "function preprocess(t) { throw new Error('x'); }",
        )
        .unwrap();
        let mut config = PreprocessConfig::default();
        config.plugins.insert(
            "bad".into(),
            PluginConfig {
                path: "bad.js".into(),
                on_error: OnError::Default,
                timeout: HumanDuration::from_millis(100),
                memory_limit_mib: 16,
            },
        );
        let mut p = Preprocessor::new(&config, "bad", dir.path()).unwrap();
        let out = p.run(&simple()).unwrap();
        assert_eq!(out.preprocessor, "default");
        assert!(matches!(out.plugin_error, Some(PluginError::Threw(_))));
        assert_eq!(out.text(), text_of(&simple()));
        config.plugins.get_mut("bad").unwrap().on_error = OnError::Skip;
        let mut p = Preprocessor::new(&config, "bad", dir.path()).unwrap();
        assert!(matches!(
            p.run(&simple()),
            Err(Skipped::PluginFailed(PluginError::Threw(_)))
        ));
        assert!(Preprocessor::new(&config, "missing", dir.path()).is_err());
    }
}
