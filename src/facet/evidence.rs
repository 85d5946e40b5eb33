//! Evidence of trouble in a preprocessed trace, for the Issues facet: error spans and
//! exceptions (`[error]` lines), tool results that report a failure, refusals and repeated
//! identical tool calls. The model names the problem from this list; with an empty list the
//! answer is `NONE` without asking, so a model cannot invent a failure the trace does not show.

/// At most this many items are listed (the first ones: the earliest trouble).
const MAX_ITEMS: usize = 8;
/// Each item's text is cut to this many characters.
const MAX_CHARS: usize = 200;

const FAILURE_WORDS: &[&str] = &[
    "error",
    "failed",
    "failure",
    "exception",
    "traceback",
    "timed out",
    "timeout",
    "not found",
    "denied",
    "forbidden",
    "unauthorized",
    "unavailable",
    "too many requests",
    "rate limit",
    "invalid",
];

const REFUSALS: &[&str] = &[
    "i can't help",
    "i cannot help",
    "i can't assist",
    "i cannot assist",
    "i'm unable",
    "i am unable",
    "i'm not able",
    "i am not able",
    "i won't be able",
    "unfortunately i can't",
    "unfortunately i cannot",
];

fn split(line: &str) -> (&str, &str) {
    line.strip_prefix('[')
        .and_then(|rest| rest.split_once("] "))
        .unwrap_or(("", line))
}

fn cut(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(MAX_CHARS) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}

/// Whether a tool result reports a failure: failure words, or a JSON object with an `error`
/// key, `ok: false`, `success: false` or an HTTP status ≥ 400.
fn failed_result(text: &str) -> bool {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) {
        let falsy = |key: &str| map.get(key).is_some_and(|v| v == false);
        let status = ["status", "status_code", "code"].iter().any(|key| {
            map.get(*key)
                .and_then(serde_json::Value::as_u64)
                .is_some_and(|s| (400..600).contains(&s))
        });
        return map.get("error").is_some_and(|e| !e.is_null() && e != false)
            || falsy("ok")
            || falsy("success")
            || status;
    }
    let lower = text.to_lowercase();
    FAILURE_WORDS.iter().any(|w| lower.contains(w))
}

/// Whether an evidence item is a hard failure (an error span or exception, or a failed tool
/// result), which a `NONE` cannot explain away.
pub fn is_failure(item: &str) -> bool {
    item.starts_with("error: ") || (item.starts_with("tool ") && item.contains(" returned: "))
}

/// The evidence items found in `segments` (the default preprocessor's `[role] text` lines).
pub fn issue_evidence(segments: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut calls: Vec<(&str, &str)> = Vec::new();
    let mut looped: Vec<&str> = Vec::new();
    for (tag, text) in segments.iter().map(|s| split(s)) {
        let item = if tag == "error" {
            Some(format!("error: {}", cut(text)))
        } else if let Some(tool) = tag.strip_prefix("tool ") {
            failed_result(text).then(|| format!("tool {tool} returned: {}", cut(text)))
        } else if let Some(name) = tag.strip_prefix("assistant tool_call ") {
            calls.push((name, text));
            let same = calls.iter().filter(|c| **c == (name, text)).count();
            (same == 3 && !looped.contains(&name)).then(|| {
                looped.push(name);
                format!("the agent called {name} 3 times with the same arguments")
            })
        } else if tag == "assistant" {
            let lower = text.to_lowercase();
            REFUSALS
                .iter()
                .any(|r| lower.contains(r))
                .then(|| format!("the assistant declined: {}", cut(text)))
        } else {
            None
        };
        if let Some(item) = item
            && !out.contains(&item)
        {
            out.push(item);
        }
        if out.len() == MAX_ITEMS {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[&str]) -> Vec<String> {
        text.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_clean_trace_has_no_evidence_even_when_the_user_is_unhappy() {
        let trace = lines(&[
            "[user] The password reset link failed twice, this is useless!",
            "[assistant tool_call send_password_reset] {\"email\":\"a@b.c\"}",
            "[tool send_password_reset] {\"sent\":true}",
            "[assistant] I've sent you a new link.",
        ]);
        assert!(
            issue_evidence(&trace).is_empty(),
            "the user's words are not evidence"
        );
    }

    #[test]
    fn errors_failed_results_refusals_and_loops_are_evidence() {
        let trace = lines(&[
            "[user] where is order 5",
            "[assistant tool_call get_order] {\"id\":5}",
            "[error] execute_tool get_order: RateLimited: 429 Too Many Requests",
            "[tool get_order] Error: 429 Too Many Requests",
            "[assistant tool_call get_order] {\"id\":5}",
            "[tool get_order] {\"ok\": false, \"reason\": \"locked\"}",
            "[assistant tool_call get_order] {\"id\":5}",
            "[tool lookup] {\"status\": 404}",
            "[assistant] I'm unable to find that order.",
        ]);
        let evidence = issue_evidence(&trace);
        assert_eq!(evidence.len(), 6, "{evidence:#?}");
        assert!(evidence[0].starts_with("error: execute_tool get_order"));
        assert!(evidence[1].starts_with("tool get_order returned: Error: 429"));
        assert!(evidence[2].contains("\"ok\": false"));
        assert_eq!(
            evidence[3],
            "the agent called get_order 3 times with the same arguments"
        );
        assert!(evidence[4].contains("404"));
        assert!(evidence[5].starts_with("the assistant declined"));
        assert!(!failed_result("{\"status\":\"shipped\",\"error\":null}"));
    }
}
