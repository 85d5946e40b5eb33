//! The default preprocessor on traces exported by real instrumentation libraries (see
//! `tests/fixtures/preprocess/README.md`): every convention yields exactly the conversation.

use std::path::PathBuf;
use tracetopics::preprocess::{Preprocessor, trace::from_otlp_json};

const SYSTEM: &str = "[system] You are a travel assistant. Use the tools to look up the weather and to book flights. Answer concisely.";

const MULTI_TURN: &[&str] = &[
    SYSTEM,
    "[user] What's the weather like in Paris right now?",
    "[assistant tool_call get_weather] {\"city\":\"Paris\"}",
    "[tool get_weather] {\"city\":\"Paris\",\"condition\":\"sunny\",\"date\":\"today\",\"temperature_c\":18}",
    "[assistant] It's currently 18 C and sunny in Paris.",
    "[user] And in Rome tomorrow?",
    "[assistant tool_call get_weather] {\"city\":\"Rome\",\"date\":\"tomorrow\"}",
    "[tool get_weather] {\"city\":\"Rome\",\"condition\":\"partly cloudy\",\"date\":\"tomorrow\",\"temperature_c\":24}",
    "[assistant] Tomorrow in Rome it will be 24 C and partly cloudy.",
];

const SIMPLE: &[&str] = &[
    "[system] You are a concise assistant. Answer in one sentence.",
    "[user] What is the capital of France?",
    "[assistant] The capital of France is Paris.",
];

const FAILURE: &str = "Booking service unavailable: upstream timeout after 30s";

const VARIANTS: &[&str] = &[
    "openai_v2_events_oldsdk",
    "openai_v2_events",
    "openai_v2_latest",
    "openai_v2_latest_events",
    "openinference",
    "openllmetry",
    "openllmetry_legacy",
    "traceloop_sdk",
    "langfuse",
    "vercel_ai",
    "vercel_ai_v4",
];

/// The failing-tool conversation: where the error is recorded and what the model was told
/// differ by library (the README's table).
fn failing_tool(variant: &str) -> Vec<String> {
    let python_error = format!("__main__.BookingServiceError: {FAILURE}");
    let errors: Vec<String> = match variant {
        "traceloop_sdk" => vec![format!("[error] book_flight.tool: {python_error}")],
        "langfuse" => vec![format!("[error] book_flight: {python_error}")],
        "vercel_ai" => vec![format!(
            "[error] ai.toolCall: BookingServiceError: {FAILURE}"
        )],
        "vercel_ai_v4" => vec![
            format!("[error] ai.toolCall: BookingServiceError: {FAILURE}"),
            format!(
                "[error] ai.toolCall: AI_ToolExecutionError: Error executing tool book_flight: {FAILURE}"
            ),
        ],
        _ => vec![format!("[error] execute_tool book_flight: {python_error}")],
    };
    // The Vercel AI SDK 5 tells the model the bare error text.
    let told = if variant == "vercel_ai" {
        format!("[tool book_flight] {FAILURE}")
    } else {
        format!("[tool book_flight] Error: {FAILURE}")
    };
    let mut out = vec![
        SYSTEM.to_string(),
        "[user] Book me a flight from Paris to Rome on 2025-06-01.".into(),
        "[assistant tool_call book_flight] {\"date\":\"2025-06-01\",\"destination\":\"Rome\",\"origin\":\"Paris\"}".into(),
    ];
    out.extend(errors);
    out.push(told);
    out.push("[assistant] I'm sorry, I couldn't book the flight: the booking service is unavailable right now. Please try again later.".into());
    out
}

fn run(file: &str) -> tracetopics::preprocess::Preprocessed {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/preprocess")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let view = from_otlp_json(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    Preprocessor::builtin(128_000)
        .run(&view)
        .unwrap_or_else(|e| panic!("{file}: {e:?}"))
}

fn lines(out: &tracetopics::preprocess::Preprocessed) -> Vec<String> {
    out.segments.clone()
}

#[test]
fn every_library_yields_the_multi_turn_conversation_once() {
    for variant in VARIANTS {
        let out = run(&format!("{variant}__multi_turn_tools.jsonl"));
        assert_eq!(lines(&out), MULTI_TURN, "{variant}");
    }
    let out = run("handwritten/braintrust__multi_turn_tools.jsonl");
    assert_eq!(lines(&out), MULTI_TURN, "braintrust");
}

#[test]
fn every_library_yields_the_failing_tool_conversation() {
    for variant in VARIANTS {
        let out = run(&format!("{variant}__failing_tool.jsonl"));
        assert_eq!(lines(&out), failing_tool(variant), "{variant}");
        assert!(out.meta.error_count >= 1, "{variant}");
    }
}

#[test]
fn every_library_yields_the_simple_conversation() {
    for variant in VARIANTS {
        assert_eq!(
            lines(&run(&format!("{variant}__simple.jsonl"))),
            SIMPLE,
            "{variant}"
        );
    }
}

#[test]
fn scorer_spans_are_dropped_and_metadata_is_found() {
    let langfuse = run("langfuse__multi_turn_tools.jsonl");
    assert_eq!(
        langfuse.meta.dropped_scorer_spans, 1,
        "the evaluator observation"
    );
    let braintrust = run("handwritten/braintrust__multi_turn_tools.jsonl");
    assert_eq!(braintrust.meta.dropped_scorer_spans, 1, "the score span");
    assert_eq!(
        braintrust.meta.service_name.as_deref(),
        Some("travel-agent")
    );
    for variant in [
        "openai_v2_latest",
        "openinference",
        "openllmetry",
        "vercel_ai",
    ] {
        let out = run(&format!("{variant}__multi_turn_tools.jsonl"));
        assert!(!out.meta.models.is_empty(), "{variant}: no model found");
        assert!(out.meta.input_tokens > 0, "{variant}: no token usage found");
        assert!(out.meta.service_name.is_some(), "{variant}");
    }
}
