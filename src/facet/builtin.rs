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
    // A sentence ends at . ? ! followed by a space or the end: not inside "emma.li@x.com".
    let end = text
        .char_indices()
        .find(|&(i, c)| {
            let after = i + c.len_utf8();
            matches!(c, '.' | '?' | '!')
                && i > 10
                && text[after..].chars().next().is_none_or(char::is_whitespace)
        })
        .map_or(text.len(), |(i, c)| i + c.len_utf8());
    let sentence = &text[..end];
    match sentence.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &sentence[..cut]),
        None => sentence.to_string(),
    }
}

/// Words that mark a sentence as asking for something.
const REQUEST_WORDS: &[&str] = &[
    "want", "need", "can", "could", "would", "please", "how", "where", "why", "what", "when",
    "which", "help", "like", "cancel", "change", "update", "reset", "refund", "return", "track",
    "fix", "delete", "upgrade", "apply", "order", "account", "charged", "broken", "doesn't",
    "isn't", "won't", "not",
];
/// Openers that carry no request: greetings and pleasantries.
const GREETINGS: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "good",
    "morning",
    "afternoon",
    "evening",
    "there",
    "thanks",
    "thank",
    "you",
    "quick",
    "question",
    "hope",
    "your",
    "day",
    "is",
    "going",
    "well",
    "so",
    "much",
];

/// Words that only dress a request (how the user feels about the service, the conversation
/// itself) and function words: a sentence made of these and greetings, thanks and venting
/// carries no request ("Third time I'm contacting you about this!", "Sort this out today or
/// I'm taking my business elsewhere.").
const DRESSING: &[&str] = &[
    "honestly",
    "extremely",
    "really",
    "very",
    "so",
    "just",
    "usually",
    "always",
    "otherwise",
    "third",
    "time",
    "times",
    "contacting",
    "trying",
    "complain",
    "complaining",
    "joke",
    "service",
    "business",
    "elsewhere",
    "sort",
    "today",
    "taking",
    "fan",
    "customer",
    "folks",
    "regards",
    "hassle",
    "bit",
    "sorry",
    "trouble",
    "patience",
    "appreciated",
    "shopping",
    "fast",
    "real",
    "answer",
    "hope",
    "i",
    "i'm",
    "i've",
    "im",
    "me",
    "my",
    "am",
    "are",
    "was",
    "were",
    "be",
    "been",
    "it",
    "it's",
    "its",
    "this",
    "that",
    "a",
    "an",
    "the",
    "of",
    "to",
    "with",
    "about",
    "out",
    "or",
    "and",
    "but",
    "though",
    "however",
    "as",
    "you",
    "your",
    "you're",
    "we",
    "our",
    "ok",
    "okay",
    "alright",
    "now",
    "all",
    "in",
    "on",
    "for",
    "at",
];

/// Longest Task answer, in characters. A request longer than this keeps its first sentences
/// up to the cap (the last one cut with `…` only when a single sentence is longer).
pub const TASK_MAX_CHARS: usize = 300;

/// The user's request from the first user message, kept whole: every sentence that asks or
/// explains ("I received my new card, but I don't see it in the app anywhere. What do I do?"),
/// without the sentences that only greet, thank or vent ("Hi!", "This is ridiculous."), and
/// without a greeting before the first comma ("Hello, I need…" → "I need…"). Traces with the
/// same request then read alike, and the request keeps the context that makes it specific.
fn task(segments: &[String]) -> String {
    match first_request(segments) {
        Some(text) => {
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let all = sentences(&text);
            let mut kept: Vec<&str> = all.iter().copied().filter(|s| !is_dressing(s)).collect();
            if kept.is_empty() {
                // Nothing but pleasantries: the most request-like of them.
                kept.extend(
                    all.iter()
                        .enumerate()
                        .max_by_key(|(i, s)| (request_score(s), std::cmp::Reverse(*i)))
                        .map(|(_, s)| *s),
                );
            }
            if let Some(first) = kept.first_mut() {
                *first = strip_greeting(first);
            }
            if kept.is_empty() {
                return capped(&text, TASK_MAX_CHARS);
            }
            join_capped(&kept, TASK_MAX_CHARS)
        }
        None => segments
            .first()
            .map(|s| sentence(split(s).1, 160))
            .unwrap_or_else(|| "Unknown task".into()),
    }
}

/// A sentence (or clause) that asks for nothing: no word beyond greetings, thanks, venting and
/// dressing, or one that scores as no request at all.
fn is_dressing(sentence: &str) -> bool {
    request_score(sentence) <= 0
        || !words(sentence).any(|w| {
            let w = w.as_str();
            !(GREETINGS.contains(&w)
                || POSITIVE.contains(&w)
                || (NEGATIVE.contains(&w) && !REQUEST_WORDS.contains(&w))
                || DRESSING.contains(&w))
        })
        || words(sentence).next().is_some_and(|w| w == "hope")
}

/// Whole sentences joined by a space while they fit in `max_chars`; a first sentence that
/// alone is longer is cut with `…`.
fn join_capped(sentences: &[&str], max_chars: usize) -> String {
    let mut out = String::new();
    let mut chars = 0;
    for s in sentences {
        let len = s.chars().count() + usize::from(!out.is_empty());
        if chars + len > max_chars {
            if out.is_empty() {
                return capped(s, max_chars);
            }
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(s);
        chars += len;
    }
    out
}

fn capped(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if matches!(c, '.' | '?' | '!') {
            let end = i + c.len_utf8();
            // "e.g." and "1.5" are not sentence ends: require a space or the end after it.
            if text[end..].is_empty() || text[end..].starts_with(' ') {
                let piece = text[start..end].trim();
                if !piece.is_empty() {
                    out.push(piece);
                }
                start = end;
            }
        }
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

fn request_score(sentence: &str) -> i32 {
    let words: Vec<String> = words(sentence).collect();
    let asks = words
        .iter()
        .filter(|w| REQUEST_WORDS.contains(&w.as_str()))
        .count() as i32;
    let filler = words
        .iter()
        .filter(|w| GREETINGS.contains(&w.as_str()) || POSITIVE.contains(&w.as_str()))
        .count() as i32;
    let question = i32::from(sentence.ends_with('?')) * 2;
    let emotion = words
        .iter()
        .filter(|w| NEGATIVE.contains(&w.as_str()) && !REQUEST_WORDS.contains(&w.as_str()))
        .count() as i32;
    asks * 2 + question + (words.len() as i32).min(8) / 2 - filler * 2 - emotion
}

/// "Hello, I want…" → "I want…"; "Thanks so much, but where is…" → "where is…". A head that
/// carries content stays ("I received my new card, but I don't see it…").
fn strip_greeting(sentence: &str) -> &str {
    for turn in [", but ", ", however "] {
        if let Some((head, rest)) = sentence.split_once(turn) {
            if is_dressing(head) && !is_dressing(rest) {
                return rest;
            }
        }
    }
    match sentence.split_once(", ") {
        Some((head, rest))
            if !rest.is_empty() && words(head).all(|w| GREETINGS.contains(&w.as_str())) =>
        {
            rest
        }
        _ => sentence,
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
        assert_eq!(
            answer(&task, &trace),
            "My blender arrived broken. I want a refund for order 991!",
            "the whole request: the scene it sets belongs to it"
        );
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

    #[test]
    fn the_task_skips_greetings_and_emotional_openers() {
        let task = builtin("task").unwrap();
        for (message, expected) in [
            (
                "Good morning! Where is my order NW-123?",
                "Where is my order NW-123?",
            ),
            (
                "Hello, I need to reset my password.",
                "I need to reset my password.",
            ),
            (
                "This is ridiculous. I was charged twice for order 55. Fix this now.",
                "I was charged twice for order 55. Fix this now.",
            ),
            (
                "Hi, quick question. Can I change my delivery address?",
                "Can I change my delivery address?",
            ),
            ("cancel my plan", "cancel my plan"),
            (
                "I'm locked out of my account (emma.li@example.com). Please help.",
                "I'm locked out of my account (emma.li@example.com). Please help.",
            ),
            (
                "Thanks so much, but where is my refund for order 7?",
                "where is my refund for order 7?",
            ),
            (
                "The newsletter gave me FREESHIP but the cart rejects it.",
                "The newsletter gave me FREESHIP but the cart rejects it.",
            ),
        ] {
            let trace = lines(&[&format!("[user] {message}"), "[assistant] Sure."]);
            assert_eq!(answer(&task, &trace), expected, "{message}");
        }
    }

    #[test]
    fn the_task_keeps_a_multi_sentence_request_whole() {
        let task = builtin("task").unwrap();
        for (message, expected) in [
            (
                "I received my new card, but I don't see it in the app anywhere. What do I do?",
                "I received my new card, but I don't see it in the app anywhere. What do I do?",
            ),
            (
                "Hi there! My top-up failed twice today. Why is that? Thanks so much!",
                "My top-up failed twice today. Why is that?",
            ),
            (
                "Delivery was fast as always, but where is my refund for order 7?",
                "Delivery was fast as always, but where is my refund for order 7?",
            ),
            ("Hello! Thank you!", "Hello!"),
            // Dressing around the request: feelings about the service, threats, apologies.
            (
                "I usually love shopping with you, but where is my refund for order 7? \
                 Sort this out today or I'm taking my business elsewhere.",
                "where is my refund for order 7?",
            ),
            (
                "Third time I'm contacting you about this! The app crashes when I open it. \
                 Hope you can help, it's been a bit of a hassle.",
                "The app crashes when I open it.",
            ),
        ] {
            let trace = lines(&[&format!("[user] {message}"), "[assistant] Sure."]);
            assert_eq!(answer(&task, &trace), expected, "{message}");
        }
        // A long request keeps whole sentences up to the cap; one overlong sentence is cut.
        let sentence = "My transfer to the savings account has been pending for days now.";
        let long = [sentence; 8].join(" ");
        let trace = lines(&[&format!("[user] {long}")]);
        let answer_text = answer(&task, &trace);
        assert!(
            answer_text.chars().count() <= TASK_MAX_CHARS,
            "{answer_text}"
        );
        assert!(
            answer_text.ends_with("now."),
            "whole sentences: {answer_text}"
        );
        assert_eq!(
            answer_text.matches(sentence).count(),
            TASK_MAX_CHARS / (sentence.len() + 1)
        );
        let run_on = "word ".repeat(200);
        let trace = lines(&[&format!("[user] please help with this {run_on}")]);
        let cut = answer(&task, &trace);
        assert_eq!(
            cut.chars().count(),
            TASK_MAX_CHARS + 1,
            "cap plus the ellipsis"
        );
        assert!(cut.ends_with('…'));
    }
}
