//! The `builtin` facet provider: deterministic rules instead of an LLM, for offline use, demos
//! and tests. Honest about what it is: Task is the user's first request, Sentiment comes from a
//! word list, Issues from error lines, failed tool results, refusals and repeated tool calls.
//! Custom facets get a keyword-matched label (or the first request) — no model reads a prompt.

use super::spec::FacetSpec;

/// A preprocessed line split into its tag (`user`, `assistant tool_call x`, `error`, …) and text.
fn split(line: &str) -> (&str, &str) {
    line.strip_prefix('[')
        .and_then(|rest| rest.split_once("] "))
        .unwrap_or(("", line))
}

const POSITIVE: &[&str] = &[
    "thanks",
    "thank",
    "great",
    "perfect",
    "awesome",
    "excellent",
    "love",
    "helpful",
    "appreciate",
    "amazing",
    "wonderful",
    "works",
    "solved",
    "nice",
    "glad",
    "happy",
    "fantastic",
];
const NEGATIVE: &[&str] = &[
    "angry",
    "terrible",
    "useless",
    "frustrated",
    "frustrating",
    "annoyed",
    "annoying",
    "worst",
    "broken",
    "ridiculous",
    "unacceptable",
    "disappointed",
    "disappointing",
    "waste",
    "awful",
    "horrible",
    "still",
    "again",
    "wrong",
    "never",
    "complaint",
    "refund",
    "cancel",
    "upset",
];
const REFUSALS: &[&str] = &[
    "i can't",
    "i cannot",
    "i'm unable",
    "i am unable",
    "i'm not able",
    "i am not able",
    "i won't be able",
    "i'm sorry, but",
    "unfortunately i can",
];

pub fn answer(facet: &FacetSpec, segments: &[String]) -> String {
    match facet.name.as_str() {
        "task" => task(segments),
        "sentiment" => sentiment(segments),
        "issues" => issues(segments),
        _ => custom(facet, segments),
    }
}

fn first_request(segments: &[String]) -> Option<&str> {
    segments
        .iter()
        .map(|s| split(s))
        .find(|(tag, text)| *tag == "user" && !text.trim().is_empty())
        .map(|(_, text)| text)
}

fn sentence(text: &str, max_chars: usize) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let end = text
        .char_indices()
        .find(|(i, c)| matches!(c, '.' | '?' | '!') && *i > 10)
        .map_or(text.len(), |(i, c)| i + c.len_utf8());
    let sentence = &text[..end];
    match sentence.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &sentence[..cut]),
        None => sentence.to_string(),
    }
}

fn task(segments: &[String]) -> String {
    match first_request(segments) {
        Some(text) => sentence(text, 160),
        None => segments
            .first()
            .map(|s| sentence(split(s).1, 160))
            .unwrap_or_else(|| "Unknown task".into()),
    }
}

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

fn sentiment(segments: &[String]) -> String {
    let (mut positive, mut negative) = (Vec::new(), Vec::new());
    for (tag, text) in segments.iter().map(|s| split(s)) {
        if tag != "user" {
            continue;
        }
        for word in words(text) {
            if POSITIVE.contains(&word.as_str()) && !positive.contains(&word) {
                positive.push(word);
            } else if NEGATIVE.contains(&word.as_str()) && !negative.contains(&word) {
                negative.push(word);
            }
        }
    }
    let quote = |w: &[String]| {
        w.iter()
            .take(3)
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (positive.is_empty(), negative.is_empty()) {
        (true, true) => "NEUTRAL: The user's messages carry no clear emotional words.".into(),
        (false, true) => format!("POSITIVE: The user says {}.", quote(&positive)),
        (true, false) => format!("NEGATIVE: The user says {}.", quote(&negative)),
        (false, false) => format!(
            "MIXED: The user says {} but also {}.",
            quote(&negative),
            quote(&positive)
        ),
    }
}

fn issues(segments: &[String]) -> String {
    let mut calls: Vec<&str> = Vec::new();
    for (tag, text) in segments.iter().map(|s| split(s)) {
        if tag == "error" {
            return format!("Error: {}", sentence(text, 200));
        }
        if let Some(tool) = tag.strip_prefix("tool ") {
            let lower = text.to_lowercase();
            if [
                "error",
                "failed",
                "exception",
                "timed out",
                "timeout",
                "not found",
                "denied",
            ]
            .iter()
            .any(|w| lower.contains(w))
            {
                return format!("Tool {tool} failed: {}", sentence(text, 160));
            }
        }
        if tag.contains("tool_call") {
            calls.push(text);
            let same = calls.iter().filter(|c| **c == text).count();
            if same >= 3 {
                let name = tag.rsplit(' ').next().unwrap_or("tool");
                return format!(
                    "Loop: the agent called {name} {same} times with the same arguments."
                );
            }
        }
        if tag == "assistant" {
            let lower = text.to_lowercase();
            if REFUSALS.iter().any(|r| lower.contains(r)) {
                return format!("Refusal: {}", sentence(text, 160));
            }
        }
    }
    "NONE".into()
}

fn custom(facet: &FacetSpec, segments: &[String]) -> String {
    let text = segments.join("\n").to_lowercase();
    match &facet.labels {
        Some(labels) if !labels.is_empty() => {
            let found = labels
                .iter()
                .find(|l| text.contains(&l.to_lowercase().replace('_', " ")))
                .unwrap_or(&labels[0]);
            format!("{found}: chosen by keyword by the builtin provider.")
        }
        _ => task(segments),
    }
}

#[cfg(test)]
mod tests {
    use super::super::spec::builtin;
    use super::*;

    fn lines(text: &[&str]) -> Vec<String> {
        text.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rules_produce_task_sentiment_and_issues() {
        let trace = lines(&[
            "[system] You are a shop assistant.",
            "[user] My blender arrived broken. I want a refund for order 991!",
            "[assistant tool_call refund] {\"order\":991}",
            "[error] execute_tool refund: PaymentError: gateway timeout",
            "[user] This is useless, thanks for nothing",
        ]);
        let task = builtin("task").unwrap();
        let sentiment = builtin("sentiment").unwrap();
        let issues = builtin("issues").unwrap();
        assert_eq!(answer(&task, &trace), "My blender arrived broken.");
        assert_eq!(
            answer(&sentiment, &trace),
            "MIXED: The user says 'broken', 'refund', 'useless' but also 'thanks'."
        );
        assert!(sentiment.accept(&answer(&sentiment, &trace)).is_some());
        assert_eq!(
            answer(&issues, &trace),
            "Error: execute_tool refund: PaymentError: gateway timeout"
        );
        let fine = lines(&["[user] What are your opening hours?", "[assistant] 9 to 5."]);
        assert_eq!(answer(&issues, &fine), "NONE");
        assert!(issues.excluded(&answer(&issues, &fine)));
        assert!(answer(&sentiment, &fine).starts_with("NEUTRAL"));
        let refusal = lines(&[
            "[user] hack my neighbour's wifi",
            "[assistant] I'm sorry, but I can't help with that.",
        ]);
        assert!(answer(&issues, &refusal).starts_with("Refusal:"));
    }
}
