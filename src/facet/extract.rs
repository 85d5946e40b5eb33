//! One trace → all its facets: a single chat call per preprocessor with the text once and every
//! facet's instruction; facets missing or unusable in the reply are asked again, alone, once.

use super::builtin;
use super::spec::{FacetSpec, SYSTEM_PROMPT, answer_of, parse_answer, schema, user_prompt};
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
            let first = ask(client, &text, facets, &mut out).await;
            let missing: Vec<&FacetSpec> = facets
                .iter()
                .copied()
                .filter(|f| !out.answers.iter().any(|a| a.facet == f.name))
                .collect();
            let mut last_error = first.err();
            // Retried once, each alone, so one confusing facet cannot spoil the others.
            for facet in missing {
                if let Err(e) = ask(client, &text, &[facet], &mut out).await {
                    last_error = Some(e);
                }
                if !out.answers.iter().any(|a| a.facet == facet.name) {
                    out.failed.push(facet.name.clone());
                }
            }
            if out.answers.is_empty() {
                if let Some(error) = last_error {
                    return Err(error);
                }
            }
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

/// One chat call for `facets`; usable answers are added to `out`.
async fn ask(
    client: &OpenAiClient,
    text: &str,
    facets: &[&FacetSpec],
    out: &mut Extraction,
) -> Result<(), ModelError> {
    let request = ChatRequest {
        system: SYSTEM_PROMPT.into(),
        user: user_prompt(text, facets),
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
        if let Some(text) = answer_of(&parsed, &facet.name).and_then(|a| facet.accept(&a)) {
            out.answers.push(answer(facet, text));
        }
    }
    Ok(())
}
