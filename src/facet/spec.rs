//! What each facet asks, and how one chat call asks for all of them: the trace text once, then
//! each facet's instruction, answered as one JSON object. The built-in prompts are versioned:
//! changing one changes its version, so cached and stored answers are not mixed across versions.

use regex::Regex;
use serde_json::{Map, Value, json};

#[derive(Debug, Clone)]
pub struct FacetSpec {
    /// Stable identifier (`task`, `sentiment`, `issues`, or a custom name).
    pub name: String,
    pub instruction: String,
    /// Fixed labels: the answer is `LABEL: one sentence`.
    pub labels: Option<Vec<String>>,
    /// Answers matching this (case-insensitive) are kept but not clustered (e.g. `^NONE`).
    pub exclude: Option<Regex>,
    /// Which preprocessor feeds this facet (`default` or a plugin name).
    pub preprocessor: String,
    pub sampling_rate: f64,
    /// A short hash of the instruction and labels.
    pub version: String,
}

impl FacetSpec {
    pub fn new(
        name: &str,
        instruction: &str,
        labels: Option<Vec<String>>,
        exclude: Option<&str>,
        preprocessor: &str,
        sampling_rate: f64,
    ) -> Result<Self, String> {
        let exclude = exclude
            .map(|pattern| {
                regex::RegexBuilder::new(pattern)
                    .case_insensitive(true)
                    .build()
                    .map_err(|e| format!("exclude: {e}"))
            })
            .transpose()?;
        let version = {
            use std::hash::{Hash, Hasher};
            let mut h = rustc_hash::FxHasher::default();
            (instruction, &labels).hash(&mut h);
            format!("{:08x}", h.finish() as u32)
        };
        Ok(Self {
            name: name.to_string(),
            instruction: instruction.to_string(),
            labels,
            exclude,
            preprocessor: preprocessor.to_string(),
            sampling_rate,
            version,
        })
    }

    /// How the answer must look, for the prompt.
    fn answer_format(&self) -> String {
        match &self.labels {
            Some(labels) => format!(
                "Answer `LABEL: one sentence` where LABEL is exactly one of {}.",
                labels.join(", ")
            ),
            None => "Answer in one sentence.".into(),
        }
    }

    /// Checks and normalizes a model's answer; `None` when unusable (then retried alone).
    pub fn accept(&self, answer: &str) -> Option<String> {
        let answer = answer.trim().trim_matches('"').trim();
        if answer.is_empty() {
            return None;
        }
        let Some(labels) = &self.labels else {
            return Some(answer.to_string());
        };
        let upper = answer.to_ascii_uppercase();
        let label = labels
            .iter()
            .filter(|l| upper.starts_with(&l.to_ascii_uppercase()))
            .max_by_key(|l| l.len())?;
        let rest = answer[label.len()..]
            .trim_start_matches([':', '-', ' ', '—', '–'])
            .trim();
        Some(if rest.is_empty() {
            label.clone()
        } else {
            format!("{label}: {rest}")
        })
    }

    pub fn excluded(&self, text: &str) -> bool {
        self.exclude.as_ref().is_some_and(|re| re.is_match(text))
    }
}

/// The built-in facets: they are the product, so they are prompted with care.
pub fn builtin(name: &str) -> Option<FacetSpec> {
    let spec = match name {
        "task" => FacetSpec::new(
            "task",
            "What is the user trying to accomplish? One sentence in the imperative, naming the concrete goal and its key details (e.g. `Get a refund for a damaged blender ordered last week`). Describe the user's goal, not what the assistant did. If there is no user request, describe the job the agent was given.",
            None,
            None,
            "default",
            1.0,
        ),
        "sentiment" => FacetSpec::new(
            "sentiment",
            "How does the user feel over the whole conversation, judged from the user's own messages (their wording, frustration, thanks), not the assistant's tone? Give the reason in one sentence.",
            Some(vec![
                "POSITIVE".into(),
                "NEUTRAL".into(),
                "NEGATIVE".into(),
                "MIXED".into(),
            ]),
            None,
            "default",
            1.0,
        ),
        "issues" => FacetSpec::new(
            "issues",
            "What went wrong on the agent's side? Failed or erroring tool calls, wrong or incomplete answers, errors, loops or repeated calls, refusals, ignoring the user's request. Name the main problem and its visible cause in one sentence. If nothing went wrong, answer exactly `NONE`.",
            None,
            Some("^NONE\\b"),
            "default",
            1.0,
        ),
        _ => return None,
    };
    Some(spec.expect("built-in facets are valid"))
}

pub const SYSTEM_PROMPT: &str = "You analyze one trace of an AI agent: the conversation between a user and an assistant, with tool calls, tool results and errors. You describe the trace along several facets. Answer with one JSON object and nothing else: one key per facet, each value a string written as that facet asks. Base every answer only on the trace.";

/// The user message: the trace text once, then every facet's instruction.
pub fn user_prompt(text: &str, facets: &[&FacetSpec]) -> String {
    let mut out = String::with_capacity(text.len() + 512 * facets.len() + 64);
    out.push_str("<trace>\n");
    out.push_str(text);
    out.push_str("\n</trace>\n\nFacets:\n");
    for facet in facets {
        out.push_str(&format!(
            "- \"{}\": {} {}\n",
            facet.name,
            facet.instruction,
            facet.answer_format()
        ));
    }
    let keys: Vec<String> = facets
        .iter()
        .map(|f| format!("\"{}\": \"...\"", f.name))
        .collect();
    out.push_str(&format!(
        "\nAnswer with exactly this JSON shape: {{{}}}",
        keys.join(", ")
    ));
    out
}

/// JSON schema of the answer, for endpoints that support structured outputs.
pub fn schema(facets: &[&FacetSpec]) -> Value {
    let mut properties = Map::new();
    for facet in facets {
        properties.insert(facet.name.clone(), json!({"type": "string"}));
    }
    json!({
        "type": "object",
        "properties": properties,
        "required": facets.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
        "additionalProperties": false,
    })
}

/// The first JSON object in a reply, tolerating code fences and prose around it.
pub fn parse_answer(content: &str) -> Option<Map<String, Value>> {
    let mut search = content;
    while let Some(start) = search.find('{') {
        let candidate = &search[start..];
        let mut stream = serde_json::Deserializer::from_str(candidate).into_iter::<Value>();
        if let Some(Ok(Value::Object(map))) = stream.next() {
            return Some(map);
        }
        search = &candidate[1..];
    }
    None
}

/// The answer for one facet in a parsed reply: a string, or any other value's text.
pub fn answer_of<'a>(
    answer: &'a Map<String, Value>,
    facet: &str,
) -> Option<std::borrow::Cow<'a, str>> {
    let value = answer.get(facet).or_else(|| {
        answer
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(facet))
            .map(|(_, v)| v)
    })?;
    match value {
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s.as_str())),
        Value::Null => None,
        other => Some(std::borrow::Cow::Owned(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_holds_the_trace_once_and_every_facet() {
        let facets = ["task", "sentiment", "issues"].map(|n| builtin(n).unwrap());
        let refs: Vec<&FacetSpec> = facets.iter().collect();
        let prompt = user_prompt("[user] refund please", &refs);
        assert_eq!(prompt.matches("[user] refund please").count(), 1);
        for name in ["\"task\"", "\"sentiment\"", "\"issues\""] {
            assert!(prompt.contains(name));
        }
        assert!(prompt.contains("POSITIVE, NEUTRAL, NEGATIVE, MIXED"));
        assert_eq!(
            schema(&refs)["required"],
            json!(["task", "sentiment", "issues"])
        );
    }

    #[test]
    fn replies_are_parsed_tolerantly() {
        let fenced = "Sure! Here you go:\n```json\n{\"task\": \"Get a refund\", \"sentiment\": \"negative - annoyed\"}\n```\nHope that helps {not json}";
        let answer = parse_answer(fenced).unwrap();
        assert_eq!(answer_of(&answer, "task").unwrap(), "Get a refund");
        let sentiment = builtin("sentiment").unwrap();
        assert_eq!(
            sentiment
                .accept(&answer_of(&answer, "SENTIMENT").unwrap())
                .as_deref(),
            Some("NEGATIVE: annoyed")
        );
        assert_eq!(sentiment.accept("happy: yes"), None);
        assert_eq!(sentiment.accept("MIXED").as_deref(), Some("MIXED"));
        assert!(parse_answer("no json here").is_none());
        assert!(parse_answer("{broken").is_none());
        let issues = builtin("issues").unwrap();
        assert!(issues.excluded("NONE"));
        assert!(issues.excluded("none."));
        assert!(!issues.excluded("Nonexistent order id returned 404"));
    }

    #[test]
    fn versions_follow_the_prompt() {
        let a = FacetSpec::new("x", "Say A", None, None, "default", 1.0).unwrap();
        let b = FacetSpec::new("x", "Say B", None, None, "default", 1.0).unwrap();
        assert_ne!(a.version, b.version);
        assert!(FacetSpec::new("x", "y", None, Some("(["), "default", 1.0).is_err());
    }
}
