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
    /// Answers shown in the prompt as examples of the form: an answer that copies one is
    /// rejected (and the facet asked again).
    pub examples: Vec<String>,
    /// Answered only from evidence found in the trace (error spans, exceptions, failed tool
    /// results, refusals, loops): without any, the answer is `NONE` and no model is asked.
    pub grounded: bool,
    /// A short hash of the instruction, labels and examples.
    pub version: String,
}

/// Why an answer was not usable; shown to the model when the facet is asked again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    Empty,
    /// It copies an example of the prompt (or its placeholder).
    CopiesExample(String),
    /// A labelled facet's answer names none of its labels.
    NoLabel,
    /// A grounded facet said `NONE` although the evidence lists a failure.
    IgnoresEvidence,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Empty => write!(f, "it was empty"),
            Rejection::CopiesExample(example) => write!(
                f,
                "it copied the example `{example}` from the instructions instead of describing this trace"
            ),
            Rejection::NoLabel => write!(f, "it did not start with one of the allowed labels"),
            Rejection::IgnoresEvidence => write!(
                f,
                "it said NONE although the evidence lists a failure; name that failure"
            ),
        }
    }
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
            examples: Vec::new(),
            grounded: false,
            version,
        })
    }

    /// Adds examples of the answer's form (shown marked as such, never to be copied).
    fn with_examples(mut self, examples: &[&str]) -> Self {
        self.examples = examples.iter().map(|e| e.to_string()).collect();
        use std::hash::{Hash, Hasher};
        let mut h = rustc_hash::FxHasher::default();
        (&self.version, &self.examples, self.grounded).hash(&mut h);
        self.version = format!("{:08x}", h.finish() as u32);
        self
    }

    fn grounded(mut self) -> Self {
        self.grounded = true;
        self.with_examples(&[])
    }

    /// How the answer must look, for the prompt.
    fn answer_format(&self) -> String {
        match &self.labels {
            Some(labels) => format!(
                "Start the answer with exactly one of {} (the label itself, never the word LABEL), then `: ` and one sentence saying what in the trace shows it.",
                labels.join(", ")
            ),
            None if self.examples.is_empty() => "Answer in one sentence.".into(),
            None => format!(
                "Answer in one sentence. Examples of the form only, each about a different made-up trace (never copy them, never reuse their details): {}.",
                self.examples
                    .iter()
                    .map(|e| format!("`{e}`"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        }
    }

    /// Checks and normalizes a model's answer; `None` when unusable (then retried alone).
    pub fn accept(&self, answer: &str) -> Option<String> {
        self.check(answer).ok()
    }

    /// Checks and normalizes a model's answer, saying why it is unusable.
    pub fn check(&self, answer: &str) -> Result<String, Rejection> {
        let answer = answer
            .trim()
            .trim_matches(|c: char| c == '"' || c == '`' || c == '*')
            .trim();
        if answer.is_empty() || answer == "..." {
            return Err(Rejection::Empty);
        }
        if let Some(example) = self.examples.iter().find(|e| copies(answer, e)) {
            return Err(Rejection::CopiesExample(example.clone()));
        }
        let Some(labels) = &self.labels else {
            return Ok(answer.to_string());
        };
        let (label, reason) = find_label(answer, labels, &self.name).ok_or(Rejection::NoLabel)?;
        Ok(if reason.is_empty() {
            label.clone()
        } else {
            format!("{label}: {reason}")
        })
    }

    /// The text a map clusters: the whole answer, or for a labelled facet only its reason (the
    /// label already is its topic, and would make the map cluster by label); `None` when a
    /// labelled answer gives no reason.
    pub fn clustered_text(&self, answer: &str) -> Option<String> {
        let Some(labels) = &self.labels else {
            return Some(answer.to_string());
        };
        let (_, reason) = find_label(answer, labels, &self.name)?;
        let reason = reason.trim();
        (!reason.is_empty()).then(|| reason.to_string())
    }

    /// The label of an accepted answer of a labelled facet.
    pub fn label_of<'a>(&'a self, answer: &str) -> Option<&'a str> {
        let labels = self.labels.as_ref()?;
        find_label(answer, labels, &self.name).map(|(label, _)| label.as_str())
    }

    pub fn excluded(&self, text: &str) -> bool {
        self.exclude.as_ref().is_some_and(|re| re.is_match(text))
    }
}

/// Lowercase words, for comparing an answer with an example.
fn word_list(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Whether `answer` copies `example`: the example's words make up most of the answer, or the
/// answer holds the example whole.
fn copies(answer: &str, example: &str) -> bool {
    let (a, e) = (word_list(answer), word_list(example));
    if e.is_empty() || a.is_empty() {
        return false;
    }
    if a.windows(e.len()).any(|w| w == e.as_slice()) {
        return true;
    }
    let shared = a.iter().filter(|w| e.contains(w)).count();
    shared * 4 >= a.len() * 3 && shared * 4 >= e.len() * 3
}

/// The label an answer gives and its reason. Tolerates `LABEL: X`, `Sentiment: X`, any case,
/// brackets and bold, and a lone label mentioned in a sentence.
fn find_label<'a>(answer: &str, labels: &'a [String], facet: &str) -> Option<(&'a String, String)> {
    let mut text = answer.trim();
    for prefix in ["label", facet] {
        let lower = text.to_lowercase();
        if let Some(rest) = lower.strip_prefix(&prefix.to_lowercase()) {
            let rest_len = rest.len();
            let trimmed = rest.trim_start_matches([':', '=', '-', ' ']);
            if trimmed.len() < rest_len {
                text = &text[text.len() - trimmed.len()..];
            }
        }
    }
    let text = text.trim_start_matches(['[', '(', '*', '`', '"', ' ']);
    let upper = text.to_uppercase();
    let boundary = |rest: &str| {
        rest.chars()
            .next()
            .is_none_or(|c| !c.is_alphanumeric() && c != '_')
    };
    let starts = labels
        .iter()
        .filter(|l| {
            let l = l.to_uppercase();
            upper.starts_with(&l) && boundary(&upper[l.len()..])
        })
        .max_by_key(|l| l.len());
    if let Some(label) = starts {
        let rest = text[label.len()..]
            .trim_start_matches([']', ')', '*', '`', '"', ':', '-', ' ', '—', '–', '.', ','])
            .trim();
        let rest = rest
            .strip_prefix("Reason:")
            .or_else(|| rest.strip_prefix("reason:"))
            .unwrap_or(rest)
            .trim();
        return Some((label, rest.to_string()));
    }
    // A sentence naming exactly one label ("The user is NEGATIVE about …").
    let words = word_list(text);
    let named: Vec<&String> = labels
        .iter()
        .filter(|l| words.contains(&l.to_lowercase()))
        .collect();
    match named.as_slice() {
        [label] => Some((label, text.to_string())),
        _ => None,
    }
}

/// The built-in facets: they are the product, so they are prompted with care.
pub fn builtin(name: &str) -> Option<FacetSpec> {
    let spec = match name {
        "task" => FacetSpec::new(
            "task",
            "What is the user trying to accomplish? One sentence in the imperative that names the user's concrete goal with the details the user gives (the product, order, account, place, amount or error they mention). Describe the user's goal, not what the assistant did. If there is no user request, describe the job the agent was given.",
            None,
            None,
            "default",
            1.0,
        )
        .map(|spec| {
            spec.with_examples(&[
                "Move the yoga class booked for Saturday to Sunday",
                "Fix the failing database migration in the staging deploy",
                "Find a vegetarian restaurant near the hotel for tonight",
            ])
        }),
        "sentiment" => FacetSpec::new(
            "sentiment",
            "How does the user feel over the whole conversation, judged from the user's own messages (their wording, frustration, thanks), not the assistant's tone?",
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
            "What went wrong on the agent's side? The evidence listed below was found in the trace (errors, exceptions, failed tool results, refusals, repeated calls). Name the main problem and its visible cause in one sentence, using only this evidence and the trace; never guess a failure the trace does not show. A failed call counts even when a retry fixed it. If the evidence shows nothing that went wrong, answer exactly `NONE`.",
            None,
            Some("^NONE\\b"),
            "default",
            1.0,
        )
        .map(FacetSpec::grounded),
        _ => return None,
    };
    Some(spec.expect("built-in facets are valid"))
}

pub const SYSTEM_PROMPT: &str = "You analyze one trace of an AI agent: the conversation between a user and an assistant, with tool calls, tool results and errors. You describe the trace along several facets. Answer with one JSON object and nothing else: one key per facet, each value a string written as that facet asks. Base every answer only on the trace.";

/// The user message: the trace text once, then every facet's instruction; a grounded facet
/// gets the `evidence` found in the trace, and a facet asked again the reason its last answer
/// was refused (`notes`).
pub fn user_prompt(
    text: &str,
    facets: &[&FacetSpec],
    evidence: &[String],
    notes: &[(String, Rejection)],
) -> String {
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
        if facet.grounded {
            out.push_str("  Evidence found in the trace:\n");
            for item in evidence {
                out.push_str(&format!("  * {item}\n"));
            }
        }
        for (_, why) in notes.iter().filter(|(name, _)| *name == facet.name) {
            out.push_str(&format!(
                "  Your previous answer for \"{}\" was not usable: {why}. Answer about this trace only.\n",
                facet.name
            ));
        }
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
        // `{"label": "NEGATIVE", "reason": "…"}`: a model that split a labelled answer.
        Value::Object(o) if o.get("label").is_some_and(Value::is_string) => {
            let label = o["label"].as_str().unwrap_or_default();
            let reason = o
                .get("reason")
                .or_else(|| o.get("explanation"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            Some(std::borrow::Cow::Owned(if reason.is_empty() {
                label.to_string()
            } else {
                format!("{label}: {reason}")
            }))
        }
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
        let prompt = user_prompt("[user] refund please", &refs, &[], &[]);
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
    fn the_task_prompt_marks_its_examples_and_refuses_copies() {
        let task = builtin("task").unwrap();
        let prompt = user_prompt("[user] hi", &[&task], &[], &[]);
        assert!(!prompt.contains("blender") && !prompt.contains("last week"));
        assert!(prompt.contains("Examples of the form only"));
        assert_eq!(task.examples.len(), 3);
        for example in &task.examples {
            assert!(prompt.contains(example.as_str()));
            assert!(matches!(
                task.check(example),
                Err(Rejection::CopiesExample(_))
            ));
        }
        // Near-copies too: case, punctuation, a word changed or added.
        for copy in [
            "move the yoga class booked for saturday to sunday.",
            "Move my yoga class booked for Saturday to Sunday",
            "Please fix the failing database migration in the staging deploy now",
        ] {
            assert!(
                matches!(task.check(copy), Err(Rejection::CopiesExample(_))),
                "{copy}"
            );
        }
        for own in [
            "Get a refund for the damaged monitor in order NW-72716",
            "Find out why the yoga app crashes on start",
            "Cancel the Sunday delivery of order 55",
        ] {
            assert_eq!(task.check(own).as_deref(), Ok(own));
        }
        assert_eq!(task.check(" ... "), Err(Rejection::Empty));
        // The refusal is told to the model when it is asked again.
        let note = (
            "task".to_string(),
            task.check(&task.examples[0]).unwrap_err(),
        );
        let again = user_prompt("[user] hi", &[&task], &[], &[note]);
        assert!(again.contains("previous answer for \"task\" was not usable: it copied"));
    }

    #[test]
    fn labels_are_found_however_the_model_writes_them() {
        let sentiment = builtin("sentiment").unwrap();
        for (given, expected) in [
            ("LABEL: NEUTRAL", Some("NEUTRAL")),
            (
                "label: negative - waited two weeks",
                Some("NEGATIVE: waited two weeks"),
            ),
            ("**Positive**: says thanks", Some("POSITIVE: says thanks")),
            ("Sentiment: MIXED", Some("MIXED")),
            (
                "[NEGATIVE] Reason: the refund is late",
                Some("NEGATIVE: the refund is late"),
            ),
            (
                "The user sounds negative about the wait.",
                Some("NEGATIVE: The user sounds negative about the wait."),
            ),
            ("NEGATIVELY charged", None),
            ("happy: yes", None),
            ("POSITIVE or NEGATIVE", Some("POSITIVE: or NEGATIVE")),
            ("Either positive or negative.", None),
        ] {
            assert_eq!(sentiment.accept(given).as_deref(), expected, "{given}");
        }
        assert_eq!(sentiment.label_of("NEGATIVE: late"), Some("NEGATIVE"));
        // A map clusters the reason only; a bare label leaves nothing to cluster.
        assert_eq!(
            sentiment.clustered_text("NEGATIVE: late").as_deref(),
            Some("late")
        );
        assert_eq!(sentiment.clustered_text("NEGATIVE"), None);
        let task = builtin("task").unwrap();
        assert_eq!(
            task.clustered_text("Get a refund").as_deref(),
            Some("Get a refund")
        );
        let prompt = user_prompt("[user] hi", &[&sentiment], &[], &[]);
        assert!(prompt.contains("never the word LABEL"), "{prompt}");
        let split =
            parse_answer(r#"{"sentiment": {"label": "neutral", "reason": "polite"}}"#).unwrap();
        assert_eq!(
            sentiment
                .accept(&answer_of(&split, "sentiment").unwrap())
                .as_deref(),
            Some("NEUTRAL: polite")
        );
    }

    #[test]
    fn issues_are_asked_with_the_evidence() {
        let issues = builtin("issues").unwrap();
        assert!(issues.grounded);
        let evidence = vec!["error: execute_tool get_order: 429 Too Many Requests".to_string()];
        let prompt = user_prompt("[user] hi", &[&issues], &evidence, &[]);
        assert!(prompt.contains("Evidence found in the trace:\n  * error: execute_tool get_order"));
        assert!(prompt.contains("never guess a failure"));
    }

    #[test]
    fn versions_follow_the_prompt() {
        let a = FacetSpec::new("x", "Say A", None, None, "default", 1.0).unwrap();
        let b = FacetSpec::new("x", "Say B", None, None, "default", 1.0).unwrap();
        assert_ne!(a.version, b.version);
        assert!(FacetSpec::new("x", "y", None, Some("(["), "default", 1.0).is_err());
    }
}
