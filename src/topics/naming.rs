//! Topic names: one chat call names a batch of topics, each shown with its keywords and its
//! typical summaries. Summaries of each topic's nearest other topic follow in a separate,
//! clearly secondary section at the end (a small model named a cluster after its neighbour's
//! summaries when they sat inside the cluster's own block). Offline, or when the model fails, a
//! topic is named by its keywords.

use super::TopicMap;
use super::config::NamingConfig;
use crate::cluster::vectors::dot;
use crate::facet::spec::parse_answer;
use crate::model::{ChatRequest, ModelConfig, ModelError, OpenAiClient, Provider};
use serde_json::{Value, json};
use std::collections::HashSet;

pub enum Namer {
    Remote(OpenAiClient),
    /// Offline: keyword names, counted as named (there is nothing better to retry with).
    Builtin,
}

impl Namer {
    pub fn new(config: &ModelConfig) -> Result<Self, String> {
        match config.provider {
            Provider::Builtin => Ok(Namer::Builtin),
            Provider::Openai => OpenAiClient::new(config).map(Namer::Remote),
        }
    }

    /// Counts the model's requests into the sidecar's metrics.
    pub fn with_metrics(self, metrics: &crate::model::ModelMetrics) -> Self {
        match self {
            Namer::Remote(client) => Namer::Remote(client.with_metrics(metrics, "naming")),
            builtin => builtin,
        }
    }
}

/// What naming a map did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct NamingReport {
    pub calls: u32,
    /// Topics whose name came from the model.
    pub named: usize,
    /// Topics left with their keyword name (to retry later).
    pub fallback: usize,
    /// The last model failure, if any.
    pub error: Option<String>,
}

const MAX_WORDS: usize = 6;

pub const SYSTEM_PROMPT: &str = "You name clusters of short summaries of AI agent conversations. For every cluster you get its id, its keywords and typical member summaries. Give each cluster a short, specific name (at most 6 words, no quotes, no numbering) that fits its own members, and a one-sentence description. A section at the end may list, for contrast only, summaries of neighbouring clusters that are NOT part of the cluster: never name a cluster after them; use them only to prefer a name that would not fit them too. Answer with one JSON object and nothing else: keys are the cluster ids, each value an object {\"name\": ..., \"description\": ...}.";

/// Names every topic of `map` with `only` (all when `None`) topic ids asked. A topic the model
/// does not name keeps what it has: its previous name (a kept topic) or its keyword name with
/// `named == false`. Names end up distinct across the map.
pub async fn name_topics(
    namer: &Namer,
    map: &mut TopicMap,
    config: &NamingConfig,
    only: Option<&HashSet<u32>>,
) -> NamingReport {
    let mut report = NamingReport::default();
    let wanted: Vec<usize> = (0..map.topics.len())
        .filter(|&i| only.is_none_or(|o| o.contains(&map.topics[i].id)))
        .collect();
    match namer {
        Namer::Builtin => {
            for &i in &wanted {
                let t = &mut map.topics[i];
                t.name = keyword_name(&t.keywords, &t.exemplars);
                t.description = keyword_description(&t.keywords);
                t.named = true;
                report.named += 1;
            }
        }
        Namer::Remote(client) => {
            for batch in wanted.chunks(config.batch_size.max(1)) {
                report.calls += 1;
                match ask(client, map, batch, config).await {
                    Ok(answer) => {
                        for &i in batch {
                            let t = &mut map.topics[i];
                            match answer_for(&answer, t.id) {
                                Some((name, description)) => {
                                    t.name = name;
                                    t.description = description;
                                    t.named = true;
                                    report.named += 1;
                                }
                                None => report.fallback += 1,
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(facet = %map.facet, error = %e, "naming topics failed; keeping keyword or previous names");
                        report.error = Some(e.to_string());
                        report.fallback += batch.len();
                    }
                }
            }
        }
    }
    for t in &mut map.topics {
        if t.description.is_empty() {
            t.description = keyword_description(&t.keywords);
        }
    }
    dedupe_names(map);
    report
}

async fn ask(
    client: &OpenAiClient,
    map: &TopicMap,
    batch: &[usize],
    config: &NamingConfig,
) -> Result<serde_json::Map<String, Value>, ModelError> {
    let request = ChatRequest {
        system: SYSTEM_PROMPT.into(),
        user: user_prompt(map, batch, config),
        schema: Some(schema(map, batch)),
        max_tokens: Some(80 * batch.len() as u32 + 50),
    };
    let reply = client.chat(&request).await?;
    parse_answer(&reply.content)
        .ok_or_else(|| ModelError::Garbage("the naming reply holds no JSON object".into()))
}

/// The prompt for one batch: per topic its id, keywords and exemplars; then, after every topic,
/// a contrast section with its nearest other topic's exemplars, marked as not its own.
pub fn user_prompt(map: &TopicMap, batch: &[usize], config: &NamingConfig) -> String {
    let mut out = format!(
        "Facet `{}`: {} clusters to name, each from its own keywords and summaries.\n",
        map.facet,
        batch.len()
    );
    for &i in batch {
        let t = &map.topics[i];
        out.push_str(&format!(
            "\n## Cluster id {}\nkeywords: {}\nsummaries:\n",
            t.id,
            t.keywords
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
        for e in t.exemplars.iter().take(config.exemplars) {
            out.push_str(&format!("- {}\n", one_line(e)));
        }
    }
    let mut contrast = String::new();
    for &i in batch {
        let Some(n) = nearest_other(map, i) else {
            continue;
        };
        let lines: Vec<String> = map.topics[n]
            .exemplars
            .iter()
            .take(config.contrast_exemplars)
            .map(|e| format!("  - {}\n", one_line(e)))
            .collect();
        if !lines.is_empty() {
            contrast.push_str(&format!(
                "- near cluster {} but NOT part of it:\n{}",
                map.topics[i].id,
                lines.concat()
            ));
        }
    }
    if !contrast.is_empty() {
        out.push_str("\n---\nFor contrast only: summaries of neighbouring clusters. Do not name any cluster after these.\n");
        out.push_str(&contrast);
    }
    out
}

fn one_line(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

fn nearest_other(map: &TopicMap, i: usize) -> Option<usize> {
    let me = &map.topics[i].centroid;
    (0..map.topics.len())
        .filter(|&j| j != i && map.topics[j].centroid.len() == me.len())
        .max_by(|&a, &b| {
            dot(&map.topics[a].centroid, me).total_cmp(&dot(&map.topics[b].centroid, me))
        })
}

fn schema(map: &TopicMap, batch: &[usize]) -> Value {
    let entry = json!({
        "type": "object",
        "properties": {"name": {"type": "string"}, "description": {"type": "string"}},
        "required": ["name", "description"],
        "additionalProperties": false,
    });
    let ids: Vec<String> = batch
        .iter()
        .map(|&i| map.topics[i].id.to_string())
        .collect();
    let properties: serde_json::Map<String, Value> =
        ids.iter().map(|id| (id.clone(), entry.clone())).collect();
    json!({
        "type": "object",
        "properties": properties,
        "required": ids,
        "additionalProperties": false,
    })
}

/// The (name, description) the answer gives topic `id`, if usable.
fn answer_for(answer: &serde_json::Map<String, Value>, id: u32) -> Option<(String, String)> {
    let entry = answer.get(&id.to_string())?;
    let (name, description) = match entry {
        Value::Object(o) => (
            o.get("name").and_then(Value::as_str)?,
            o.get("description").and_then(Value::as_str).unwrap_or(""),
        ),
        Value::String(name) => (name.as_str(), ""),
        _ => return None,
    };
    let name = clean_name(name)?;
    Some((
        name,
        description.split_whitespace().collect::<Vec<_>>().join(" "),
    ))
}

/// Trims quotes and punctuation and keeps at most six words; `None` if nothing is left.
fn clean_name(name: &str) -> Option<String> {
    let words: Vec<&str> = name
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| c == '"' || c == '\'' || c == '`' || c == '*'))
        .filter(|w| !w.is_empty())
        .take(MAX_WORDS)
        .collect();
    let name = words.join(" ");
    let name = name.trim_end_matches(['.', ',', ';', ':']).to_string();
    (!name.is_empty()).then_some(name)
}

/// A name from the top keywords (or, without keywords, the first words of the first exemplar).
pub fn keyword_name(keywords: &[String], exemplars: &[String]) -> String {
    let words: Vec<&str> = if keywords.is_empty() {
        exemplars
            .first()
            .map(|e| e.split_whitespace().take(4).collect())
            .unwrap_or_default()
    } else {
        // Unigrams and bigrams overlap ("password", "password reset"): skip a keyword that
        // repeats a word already shown.
        let mut shown: Vec<&str> = Vec::new();
        let mut picked = Vec::new();
        for keyword in keywords {
            let new = keyword.split_whitespace().all(|w| !shown.contains(&w));
            if new {
                shown.extend(keyword.split_whitespace());
                picked.push(keyword.as_str());
            }
            if picked.len() == 3 {
                break;
            }
        }
        picked
    };
    if words.is_empty() {
        "unnamed topic".into()
    } else {
        words.join(" · ")
    }
}

fn keyword_description(keywords: &[String]) -> String {
    if keywords.is_empty() {
        String::new()
    } else {
        format!(
            "Summaries about {}.",
            keywords
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Makes names distinct, case-insensitively: topics are visited in map order (largest first) and
/// a later duplicate gets its first keyword not already in the name, then its id.
pub fn dedupe_names(map: &mut TopicMap) {
    let mut seen: HashSet<String> = HashSet::new();
    for t in &mut map.topics {
        let mut name = t.name.clone();
        if seen.contains(&name.to_lowercase()) {
            let lower = name.to_lowercase();
            if let Some(k) = t
                .keywords
                .iter()
                .find(|k| !lower.contains(&k.to_lowercase()))
            {
                name = format!("{name} ({k})");
            }
            if seen.contains(&name.to_lowercase()) {
                name = format!("{} #{}", t.name, t.id);
            }
        }
        seen.insert(name.to_lowercase());
        t.name = name;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::Topic;

    fn topic(id: u32, name: &str, keywords: &[&str]) -> Topic {
        Topic {
            id,
            name: name.into(),
            description: String::new(),
            named: true,
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
            centroid: vec![1.0, 0.0],
            threshold: 0.3,
            size: 1,
            share: 0.1,
            exemplars: vec![],
        }
    }

    fn map(topics: Vec<Topic>) -> TopicMap {
        TopicMap {
            facet: "task".into(),
            version: 1,
            created_ms: 0,
            embedding_model: "m".into(),
            dim: 2,
            params: Default::default(),
            sample: 10,
            noise_share: 0.0,
            noise_before_reassignment: None,
            distance_threshold: 0.5,
            topics,
            changes: None,
        }
    }

    #[test]
    fn duplicate_names_get_a_keyword_then_the_id() {
        let mut m = map(vec![
            topic(4, "Refunds", &["refund"]),
            topic(9, "refunds", &["refund", "card"]),
            topic(2, "Refunds", &["refund"]),
        ]);
        dedupe_names(&mut m);
        let names: Vec<&str> = m.topics.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["Refunds", "refunds (card)", "Refunds #2"]);
    }

    #[test]
    fn names_are_cleaned_and_cut_to_six_words() {
        assert_eq!(
            clean_name("\"Cancel a subscription before the renewal date.\"").as_deref(),
            Some("Cancel a subscription before the renewal")
        );
        assert_eq!(clean_name(" ** "), None);
        assert_eq!(
            keyword_name(&["refund".into(), "card".into()], &[]),
            "refund · card"
        );
    }

    #[tokio::test]
    async fn the_builtin_namer_names_by_keywords_and_counts_as_named() {
        let mut m = map(vec![topic(
            0,
            "x",
            &["deploy", "kubernetes", "helm", "pod"],
        )]);
        m.topics[0].named = false;
        let report = name_topics(&Namer::Builtin, &mut m, &NamingConfig::default(), None).await;
        assert_eq!(report.named, 1);
        assert_eq!(m.topics[0].name, "deploy · kubernetes · helm");
        assert!(m.topics[0].named);
        assert!(m.topics[0].description.contains("pod"));
    }

    #[test]
    fn contrast_summaries_come_last_and_marked_as_not_the_clusters_own() {
        let mut a = topic(1, "a", &["refund"]);
        a.exemplars = vec!["Get a refund for order 7".into()];
        let mut b = topic(2, "b", &["password"]);
        b.exemplars = vec!["Reset the account password".into()];
        b.centroid = vec![0.9, 0.1];
        let m = map(vec![a, b]);
        let prompt = user_prompt(&m, &[0, 1], &NamingConfig::default());
        let own_end = prompt.find("## Cluster id 2").unwrap();
        let contrast = prompt
            .find("For contrast only")
            .expect("a contrast section");
        assert!(
            contrast > own_end,
            "after every cluster's own block:\n{prompt}"
        );
        // Each cluster's block holds only its own summaries.
        let block_1 = &prompt[prompt.find("## Cluster id 1").unwrap()..own_end];
        assert!(block_1.contains("Get a refund") && !block_1.contains("Reset the account"));
        assert!(
            prompt[contrast..]
                .contains("near cluster 1 but NOT part of it:\n  - Reset the account password")
        );
        assert!(SYSTEM_PROMPT.contains("never name a cluster after them"));
        let none = NamingConfig {
            contrast_exemplars: 0,
            ..NamingConfig::default()
        };
        assert!(!user_prompt(&m, &[0, 1], &none).contains("contrast"));
    }

    #[test]
    fn keyword_names_do_not_repeat_words() {
        let keywords: Vec<String> = [
            "password reset",
            "password",
            "reset link",
            "account",
            "email",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            keyword_name(&keywords, &[]),
            "password reset · account · email"
        );
    }
}
