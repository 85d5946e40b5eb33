//! One trace → all its facets: a single chat call per preprocessor with the text once and every
//! facet's instruction; facets missing or unusable in the reply are asked again, alone, once.

use super::builtin;
use super::evidence::{is_failure, issue_evidence};
use super::spec::{
    FacetSpec, Rejection, SYSTEM_PROMPT, answer_of, parse_answer, schema, user_prompt,
};
use crate::model::{ChatRequest, ModelConfig, ModelError, OpenAiClient, Provider};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// One facet's answer for one trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacetAnswer {
    pub facet: String,
    pub text: String,
    /// Matched the facet's `exclude` pattern: stored, not clustered.
    pub excluded: bool,
    pub version: String,
}

/// What extracting one trace's facets cost and produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extraction {
    pub answers: Vec<FacetAnswer>,
    /// Facets that stayed unusable after the retry.
    pub failed: Vec<String>,
    pub calls: u32,
    /// Facets asked again alone (missing or unusable in the joint reply).
    pub reasks: u32,
    /// Answers refused because they copied an example of the prompt.
    pub copied_examples: u32,
    /// Grounded facets answered `NONE` without a model call: no evidence in the trace.
    pub without_evidence: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached: bool,
}

pub enum FacetModel {
    Remote(OpenAiClient),
    Builtin,
}

impl FacetModel {
    pub fn new(config: &ModelConfig) -> Result<Self, String> {
        match config.provider {
            Provider::Builtin => Ok(FacetModel::Builtin),
            Provider::Openai => OpenAiClient::new(config).map(FacetModel::Remote),
        }
    }

    /// Counts the model's requests into the sidecar's metrics.
    pub fn with_metrics(self, metrics: &crate::model::ModelMetrics) -> Self {
        match self {
            FacetModel::Remote(client) => {
                FacetModel::Remote(client.with_metrics(metrics, "facets"))
            }
            builtin => builtin,
        }
    }

    pub fn model_id(&self) -> String {
        match self {
            FacetModel::Remote(client) => format!("openai:{}", client.model()),
            FacetModel::Builtin => "builtin:rules-v1".into(),
        }
    }
}

/// Remembers extractions by (text, facet versions); bounded, oldest forgotten first.
pub struct AnswerCache {
    capacity: usize,
    entries: Mutex<(HashMap<u64, Extraction>, VecDeque<u64>)>,
}

impl AnswerCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    pub fn key(text: &str, facets: &[&FacetSpec]) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        text.hash(&mut h);
        for f in facets {
            (&f.name, &f.version).hash(&mut h);
        }
        h.finish()
    }

    fn get(&self, key: u64) -> Option<Extraction> {
        self.entries
            .lock()
            .expect("cache lock")
            .0
            .get(&key)
            .cloned()
    }

    fn put(&self, key: u64, value: Extraction) {
        if self.capacity == 0 {
            return;
        }
        let mut guard = self.entries.lock().expect("cache lock");
        let (map, order) = &mut *guard;
        if map.insert(key, value).is_none() {
            order.push_back(key);
        }
        while order.len() > self.capacity {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }
}

/// Asks `model` for every facet in `facets` about `segments` (one preprocessor's text).
/// A model failure is returned only when no facet could be answered.
pub async fn extract(
    model: &FacetModel,
    cache: &AnswerCache,
    segments: &[String],
    facets: &[&FacetSpec],
) -> Result<Extraction, ModelError> {
    if facets.is_empty() {
        return Ok(Extraction::default());
    }
    let text = segments.join("\n");
    let key = AnswerCache::key(&text, facets);
    if let Some(mut hit) = cache.get(key) {
        hit.cached = true;
        hit.calls = 0;
        hit.reasks = 0;
        hit.copied_examples = 0;
        hit.without_evidence = 0;
        hit.prompt_tokens = 0;
        hit.completion_tokens = 0;
        return Ok(hit);
    }
    let mut out = Extraction::default();
    match model {
        FacetModel::Builtin => {
            for facet in facets {
                let text = builtin::answer(facet, segments);
                out.answers
                    .push(answer(facet, facet.accept(&text).unwrap_or(text)));
            }
        }
        FacetModel::Remote(client) => {
            let evidence = if facets.iter().any(|f| f.grounded) {
                issue_evidence(segments)
            } else {
                Vec::new()
            };
            let mut asked: Vec<&FacetSpec> = Vec::with_capacity(facets.len());
            for facet in facets.iter().copied() {
                if facet.grounded && evidence.is_empty() {
                    out.answers.push(answer(facet, "NONE".into()));
                    out.without_evidence += 1;
                } else {
                    asked.push(facet);
                }
            }
            let mut notes: Vec<(String, Rejection)> = Vec::new();
            let mut last_error = None;
            if !asked.is_empty() {
                last_error = ask(client, &text, &asked, &evidence, &[], &mut out, &mut notes)
                    .await
                    .err();
            }
            let missing: Vec<&FacetSpec> = asked
                .iter()
                .copied()
                .filter(|f| !out.answers.iter().any(|a| a.facet == f.name))
                .collect();
            // Asked again once, each alone (so one confusing facet cannot spoil the others),
            // told why its last answer was refused.
            for facet in missing {
                out.reasks += 1;
                let told: Vec<(String, Rejection)> = notes
                    .iter()
                    .filter(|(name, _)| *name == facet.name)
                    .cloned()
                    .collect();
                let mut again = Vec::new();
                if let Err(e) = ask(
                    client,
                    &text,
                    &[facet],
                    &evidence,
                    &told,
                    &mut out,
                    &mut again,
                )
                .await
                {
                    last_error = Some(e);
                }
                let insisted = again
                    .iter()
                    .any(|(_, why)| *why == Rejection::IgnoresEvidence);
                let failure = evidence.iter().find(|e| is_failure(e));
                if !out.answers.iter().any(|a| a.facet == facet.name) {
                    match failure {
                        // The model answered NONE twice although the trace shows a failure:
                        // name it from the evidence (never when the model did not answer).
                        Some(item) if insisted => {
                            out.answers.push(answer(facet, format!("Failure: {item}")))
                        }
                        _ => out.failed.push(facet.name.clone()),
                    }
                }
            }
            // A model failure fails the trace (to be retried) unless some asked facet was
            // answered: a NONE found without the model does not make an outage a success.
            let answered = asked
                .iter()
                .any(|f| out.answers.iter().any(|a| a.facet == f.name));
            if !answered {
                if let Some(error) = last_error {
                    return Err(error);
                }
            }
            // In configuration order, whichever call answered.
            out.answers.sort_by_key(|a| {
                facets
                    .iter()
                    .position(|f| f.name == a.facet)
                    .unwrap_or(usize::MAX)
            });
        }
    }
    if out.failed.is_empty() {
        cache.put(key, out.clone());
    }
    Ok(out)
}

fn answer(facet: &FacetSpec, text: String) -> FacetAnswer {
    FacetAnswer {
        facet: facet.name.clone(),
        excluded: facet.excluded(&text),
        text,
        version: facet.version.clone(),
    }
}

/// One chat call for `facets`; usable answers are added to `out`, refusals to `notes`.
async fn ask(
    client: &OpenAiClient,
    text: &str,
    facets: &[&FacetSpec],
    evidence: &[String],
    told: &[(String, Rejection)],
    out: &mut Extraction,
    notes: &mut Vec<(String, Rejection)>,
) -> Result<(), ModelError> {
    let request = ChatRequest {
        system: SYSTEM_PROMPT.into(),
        user: user_prompt(text, facets, evidence, told),
        schema: Some(schema(facets)),
        max_tokens: Some(120 * facets.len() as u32 + 50),
    };
    out.calls += 1;
    let reply = client.chat(&request).await?;
    out.prompt_tokens += reply.prompt_tokens;
    out.completion_tokens += reply.completion_tokens;
    let Some(parsed) = parse_answer(&reply.content) else {
        return Err(ModelError::Garbage("the reply holds no JSON object".into()));
    };
    for facet in facets {
        let Some(given) = answer_of(&parsed, &facet.name) else {
            continue;
        };
        let checked = facet.check(&given).and_then(|text| {
            if facet.grounded && facet.excluded(&text) && evidence.iter().any(|e| is_failure(e)) {
                Err(Rejection::IgnoresEvidence)
            } else {
                Ok(text)
            }
        });
        match checked {
            Ok(text) => out.answers.push(answer(facet, text)),
            Err(why) => {
                if matches!(why, Rejection::CopiesExample(_)) {
                    out.copied_examples += 1;
                    tracing::debug!(facet = %facet.name, answer = %given, "answer copies the prompt's example; asking again");
                }
                notes.push((facet.name.clone(), why));
            }
        }
    }
    Ok(())
}
