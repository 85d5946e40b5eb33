//! Facet extraction against an in-process OpenAI-compatible server over real HTTP.

mod common;

use common::openai::{ModelServer, Scripted, chat_reply};
use serde_json::{Value, json};
use tracetopics::config::types::HumanDuration;
use tracetopics::facet::{self, AnswerCache, CustomFacet, FacetModel, FacetsConfig};
use tracetopics::model::{ModelConfig, Provider};
use tracetopics::preprocess::budget::count_tokens;

/// Answers every facet the prompt asks for (read from the JSON shape line), and reports the
/// prompt's real BPE token count as usage, so token accounting can be measured.
fn answer_all(only: Option<usize>) -> impl Fn(&str, &Value) -> Value + Send + Sync {
    move |_, body| {
        let user = body["messages"][1]["content"].as_str().unwrap_or_default();
        let system = body["messages"][0]["content"].as_str().unwrap_or_default();
        let shape = user
            .rsplit("Answer with exactly this JSON shape: ")
            .next()
            .unwrap();
        let names: Vec<String> = shape
            .split('"')
            .skip(1)
            .step_by(4)
            .map(str::to_string)
            .collect();
        let mut answer = serde_json::Map::new();
        for name in names.iter().take(only.unwrap_or(usize::MAX)) {
            let text = match name.as_str() {
                "sentiment" => "NEGATIVE: The user is annoyed by the delay.".to_string(),
                "issues" => "NONE".to_string(),
                "area" => "BILLING: It is about a refund.".to_string(),
                other => format!("The {other} answer."),
            };
            answer.insert(name.clone(), json!(text));
        }
        let prompt_tokens = (count_tokens(system) + count_tokens(user)) as u64;
        chat_reply(&Value::Object(answer).to_string(), prompt_tokens)
    }
}

fn model(server: &ModelServer) -> FacetModel {
    FacetModel::new(&ModelConfig {
        provider: Provider::Openai,
        base_url: server.base_url(),
        model: "facet-model".into(),
        initial_backoff: HumanDuration::from_millis(5),
        max_backoff: HumanDuration::from_millis(20),
        ..ModelConfig::default()
    })
    .unwrap()
}

fn five_facets() -> Vec<facet::FacetSpec> {
    let mut config = FacetsConfig::default();
    config.custom = vec![
        CustomFacet {
            name: "area".into(),
            prompt: "Which product area is this about?".into(),
            labels: Some(vec!["BILLING".into(), "SHIPPING".into(), "ACCOUNT".into()]),
            exclude: None,
            preprocessor: None,
            sampling_rate: 1.0,
            enabled: true,
        },
        CustomFacet {
            name: "language".into(),
            prompt: "Which language does the user write in?".into(),
            labels: None,
            exclude: None,
            preprocessor: None,
            sampling_rate: 1.0,
            enabled: true,
        },
        CustomFacet {
            name: "paused".into(),
            prompt: "never asked".into(),
            labels: None,
            exclude: None,
            preprocessor: None,
            sampling_rate: 1.0,
            enabled: false,
        },
    ];
    facet::specs(&config, "default").unwrap()
}

fn trace_text(words: usize) -> Vec<String> {
    let mut lines =
        vec!["[user] Where is my refund for order 991? It has been two weeks.".to_string()];
    let filler: Vec<String> = (0..words / 10)
        .map(|i| {
            format!("[tool search_orders] result {i}: order 991 shipped, refund pending review")
        })
        .collect();
    lines.extend(filler);
    lines.push("[assistant] Your refund is pending review.".into());
    lines
}

#[tokio::test]
async fn five_facets_cost_one_request_with_the_trace_text_once() {
    let server = ModelServer::start(answer_all(None)).await;
    let facets = five_facets();
    assert_eq!(facets.len(), 5, "the paused facet is not asked");
    let refs: Vec<_> = facets.iter().collect();
    let segments = trace_text(50);
    let cache = AnswerCache::new(100);
    let out = facet::extract(&model(&server), &cache, &segments, &refs)
        .await
        .unwrap();
    assert_eq!(out.calls, 1);
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let user = requests[0].2["messages"][1]["content"].as_str().unwrap();
    assert_eq!(user.matches("Where is my refund for order 991?").count(), 1);
    let got: Vec<(String, String, bool)> = out
        .answers
        .iter()
        .map(|a| (a.facet.clone(), a.text.clone(), a.excluded))
        .collect();
    assert_eq!(
        got,
        vec![
            ("task".into(), "The task answer.".into(), false),
            (
                "sentiment".into(),
                "NEGATIVE: The user is annoyed by the delay.".into(),
                false
            ),
            ("issues".into(), "NONE".into(), true),
            (
                "area".into(),
                "BILLING: It is about a refund.".into(),
                false
            ),
            ("language".into(), "The language answer.".into(), false),
        ]
    );
    assert!(out.prompt_tokens > 0);

    // The same conversation again (e.g. re-released with a late span that added nothing).
    let again = facet::extract(&model(&server), &cache, &segments, &refs)
        .await
        .unwrap();
    assert!(again.cached && again.calls == 0);
    assert_eq!(again.answers, out.answers);
    assert_eq!(server.requests().len(), 1, "no second call");
}

#[tokio::test]
async fn missing_facets_are_retried_alone_once() {
    // The trace shows no trouble, so `issues` is answered NONE without asking: the prompt holds
    // task, sentiment, area, language, and the server answers the first two.
    let server = ModelServer::start(answer_all(Some(2))).await;
    let facets = five_facets();
    let refs: Vec<_> = facets.iter().collect();
    let out = facet::extract(
        &model(&server),
        &AnswerCache::new(10),
        &trace_text(20),
        &refs,
    )
    .await
    .unwrap();
    // First call answered 2; `area` and `language` were asked alone (and the server, asked for
    // one facet, answers it).
    assert_eq!(out.calls, 3);
    assert_eq!(out.answers.len(), 5);
    assert!(out.failed.is_empty());
    let requests = server.requests();
    let single: Vec<&str> = requests[1..]
        .iter()
        .map(|(_, _, b)| b["messages"][1]["content"].as_str().unwrap())
        .collect();
    assert!(single[0].contains("\"area\"") && !single[0].contains("\"language\""));
    assert!(single[1].contains("\"language\"") && !single[1].contains("\"area\""));
}

#[tokio::test]
async fn garbage_replies_end_in_per_facet_retries_or_a_clear_failure() {
    let server = ModelServer::start(answer_all(None)).await;
    // HTTP-level garbage is retried by the client; a reply without JSON fails the joint call,
    // and each facet is then asked alone.
    server.script([
        Scripted::Body("not json at all".into()),
        Scripted::Body(chat_reply("I think the task is refunds.", 10).to_string()),
    ]);
    let facets = five_facets();
    let refs: Vec<_> = facets.iter().collect();
    let out = facet::extract(
        &model(&server),
        &AnswerCache::new(10),
        &trace_text(20),
        &refs,
    )
    .await
    .unwrap();
    assert_eq!(out.answers.len(), 5);
    // One joint call, then the four facets asked (issues needs no call without evidence).
    assert_eq!(out.calls, 5);

    // Labels that are not among the allowed ones are unusable.
    let bad_labels =
        ModelServer::start(|_, _| chat_reply("{\"sentiment\": \"ECSTATIC: wow\"}", 5)).await;
    let sentiment = facet::spec::builtin("sentiment").unwrap();
    let out = facet::extract(
        &model(&bad_labels),
        &AnswerCache::new(10),
        &trace_text(20),
        &[&sentiment],
    )
    .await
    .unwrap();
    assert_eq!(out.failed, vec!["sentiment".to_string()]);
}

#[tokio::test]
async fn five_facets_cost_little_more_prompt_than_one() {
    let server = ModelServer::start(answer_all(None)).await;
    let facets = five_facets();
    let segments = trace_text(11_000); // ≈ 20K tokens
    let tokens = count_tokens(&segments.join("\n"));
    assert!((15_000..30_000).contains(&tokens), "{tokens} tokens");
    let one = facet::extract(
        &model(&server),
        &AnswerCache::new(0),
        &segments,
        &[&facets[0]],
    )
    .await
    .unwrap();
    let refs: Vec<_> = facets.iter().collect();
    let five = facet::extract(&model(&server), &AnswerCache::new(0), &segments, &refs)
        .await
        .unwrap();
    let ratio = five.prompt_tokens as f64 / one.prompt_tokens as f64;
    println!(
        "trace {tokens} tokens: prompt tokens one facet {} / five facets {} (ratio {ratio:.3}); five separate calls ≈ {}",
        one.prompt_tokens,
        five.prompt_tokens,
        5 * one.prompt_tokens
    );
    assert!(ratio < 1.3, "ratio {ratio}");
}

#[tokio::test]
async fn the_builtin_provider_answers_without_any_server() {
    let facets = five_facets();
    let refs: Vec<_> = facets.iter().collect();
    let segments = vec![
        "[user] My blender arrived broken, I want a refund.".to_string(),
        "[error] execute_tool refund: PaymentError: gateway timeout".to_string(),
    ];
    let out = facet::extract(
        &FacetModel::Builtin,
        &AnswerCache::new(10),
        &segments,
        &refs,
    )
    .await
    .unwrap();
    assert_eq!(out.calls, 0);
    let text = |name: &str| {
        out.answers
            .iter()
            .find(|a| a.facet == name)
            .unwrap()
            .text
            .clone()
    };
    assert_eq!(text("task"), "My blender arrived broken, I want a refund.");
    assert!(text("sentiment").starts_with("NEGATIVE"));
    assert_eq!(
        text("issues"),
        "Error: execute_tool refund: PaymentError: gateway timeout"
    );
    assert!(text("area").starts_with("BILLING") || text("area").contains(':'));
}

/// A model that copies the prompt's example is asked again, told why, and its own answer kept;
/// a placeholder label is normalised.
#[tokio::test]
async fn an_answer_copying_the_example_is_asked_again() {
    let server = ModelServer::start(|_, body| {
        let user = body["messages"][1]["content"].as_str().unwrap_or_default();
        let task = if user.contains("was not usable") {
            "Get a refund for order 991"
        } else {
            "Move the yoga class booked for Saturday to Sunday"
        };
        chat_reply(
            &json!({"task": task, "sentiment": "LABEL: NEUTRAL"}).to_string(),
            10,
        )
    })
    .await;
    let task = facet::spec::builtin("task").unwrap();
    let sentiment = facet::spec::builtin("sentiment").unwrap();
    let out = facet::extract(
        &model(&server),
        &AnswerCache::new(10),
        &trace_text(20),
        &[&task, &sentiment],
    )
    .await
    .unwrap();
    let texts: Vec<&str> = out.answers.iter().map(|a| a.text.as_str()).collect();
    assert_eq!(texts, ["Get a refund for order 991", "NEUTRAL"]);
    assert_eq!((out.calls, out.reasks, out.copied_examples), (2, 1, 1));
    let requests = server.requests();
    let again = requests[1].2["messages"][1]["content"].as_str().unwrap();
    assert!(
        again.contains("it copied the example `Move the yoga class"),
        "{again}"
    );
    assert!(
        !again.contains("\"sentiment\""),
        "only the refused facet is asked again"
    );
}

/// Issues are grounded in the trace: no evidence, no model claim; with evidence, the model sees
/// the list.
#[tokio::test]
async fn issues_are_answered_from_evidence_only() {
    let server = ModelServer::start(|_, _| {
        chat_reply(
            &json!({"task": "Reset a password", "issues": "The reset link failed"}).to_string(),
            10,
        )
    })
    .await;
    let task = facet::spec::builtin("task").unwrap();
    let issues = facet::spec::builtin("issues").unwrap();
    let clean = vec![
        "[user] The reset link failed, this is useless!".to_string(),
        "[assistant tool_call send_password_reset] {\"email\":\"a@b.c\"}".to_string(),
        "[tool send_password_reset] {\"sent\":true}".to_string(),
        "[assistant] I've sent you a new link.".to_string(),
    ];
    let out = facet::extract(
        &model(&server),
        &AnswerCache::new(0),
        &clean,
        &[&task, &issues],
    )
    .await
    .unwrap();
    let issue = out.answers.iter().find(|a| a.facet == "issues").unwrap();
    assert_eq!((issue.text.as_str(), issue.excluded), ("NONE", true));
    assert_eq!(out.without_evidence, 1);
    let asked = server.requests()[0].2["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!asked.contains("\"issues\""), "issues not asked: {asked}");

    let failing = vec![
        "[user] Reset my password".to_string(),
        "[assistant tool_call send_password_reset] {\"email\":\"a@b.c\"}".to_string(),
        "[error] execute_tool send_password_reset: SmtpError: mail relay refused".to_string(),
        "[assistant] Sorry, that did not work.".to_string(),
    ];
    let out = facet::extract(
        &model(&server),
        &AnswerCache::new(0),
        &failing,
        &[&task, &issues],
    )
    .await
    .unwrap();
    assert_eq!(out.without_evidence, 0);
    let issue = out.answers.iter().find(|a| a.facet == "issues").unwrap();
    assert_eq!(issue.text, "The reset link failed");
    let asked = server.requests()[1].2["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        asked.contains("* error: execute_tool send_password_reset: SmtpError: mail relay refused"),
        "{asked}"
    );
}

/// A NONE that the evidence contradicts is asked again; if the model insists, the answer names
/// the failure from the evidence.
#[tokio::test]
async fn issues_none_despite_a_failure_is_not_kept() {
    let server = ModelServer::start(|_, body| {
        let user = body["messages"][1]["content"].as_str().unwrap_or_default();
        let issues = if user.contains("said NONE although") {
            "NONE"
        } else {
            "none"
        };
        chat_reply(&json!({"issues": issues}).to_string(), 10)
    })
    .await;
    let issues = facet::spec::builtin("issues").unwrap();
    let failing = vec![
        "[user] Where is order 5".to_string(),
        "[error] execute_tool get_order: RateLimited: 429 Too Many Requests".to_string(),
        "[assistant] Your order ships tomorrow.".to_string(),
    ];
    let out = facet::extract(&model(&server), &AnswerCache::new(0), &failing, &[&issues])
        .await
        .unwrap();
    assert_eq!((out.calls, out.reasks), (2, 1));
    assert_eq!(
        out.answers[0].text,
        "Failure: error: execute_tool get_order: RateLimited: 429 Too Many Requests"
    );
    assert!(!out.answers[0].excluded);
    assert!(out.failed.is_empty());
}
