//! The hard cap on what a model sees, counted in real BPE tokens (`o200k_base`, the tokenizer of
//! current OpenAI models; other models' counts differ by a few percent). Over budget, the
//! beginning and the end are kept — failures are usually at the end — and the cut is marked.

use tiktoken_rs::CoreBPE;

fn bpe() -> &'static CoreBPE {
    tiktoken_rs::o200k_base_singleton()
}

pub fn count_tokens(text: &str) -> usize {
    bpe().encode_ordinary(text).len()
}

/// Caps `segments` (joined by newlines) at `max_tokens`. Returns the tokens omitted.
pub fn cap(segments: &mut Vec<String>, max_tokens: usize) -> usize {
    let bytes: usize = segments.iter().map(|s| s.len() + 1).sum();
    // A token is at least one byte, so short texts need no tokenizing at all.
    if bytes <= max_tokens {
        return 0;
    }
    let counts: Vec<usize> = segments.iter().map(|s| count_tokens(s) + 1).collect();
    let total: usize = counts.iter().sum();
    if total <= max_tokens {
        return 0;
    }
    // Room for the marker line itself.
    let budget = max_tokens.saturating_sub(16);
    let head_budget = budget / 2;
    let tail_budget = budget - head_budget;

    let mut head = Vec::new();
    let mut used = 0;
    let mut i = 0;
    while i < segments.len() && used + counts[i] <= head_budget {
        used += counts[i];
        i += 1;
    }
    let head_end = i;
    head.extend(segments[..head_end].iter().cloned());
    if head_end < segments.len() && used < head_budget {
        head.push(prefix_tokens(&segments[head_end], head_budget - used - 1));
        used = head_budget;
    }
    let head_used = used;

    let mut tail = Vec::new();
    let mut used = 0;
    let mut j = segments.len();
    while j > head_end + 1 && used + counts[j - 1] <= tail_budget {
        used += counts[j - 1];
        j -= 1;
    }
    if j > head_end + 1 && used < tail_budget {
        tail.push(suffix_tokens(&segments[j - 1], tail_budget - used - 1));
        used = tail_budget;
    }
    tail.extend(segments[j..].iter().cloned());
    let omitted = total.saturating_sub(head_used + used);
    let mut out = head;
    out.push(format!("[… {omitted} tokens omitted …]"));
    out.extend(tail);
    *segments = out;
    omitted
}

fn prefix_tokens(text: &str, tokens: usize) -> String {
    let encoded = bpe().encode_ordinary(text);
    let kept = &encoded[..tokens.min(encoded.len())];
    decode_lossy(kept)
}

fn suffix_tokens(text: &str, tokens: usize) -> String {
    let encoded = bpe().encode_ordinary(text);
    let kept = &encoded[encoded.len() - tokens.min(encoded.len())..];
    decode_lossy(kept)
}

/// A token boundary may split a UTF-8 character; the broken ends are dropped.
fn decode_lossy(tokens: &[u32]) -> String {
    let bytes = bpe().decode_bytes(tokens).unwrap_or_default();
    String::from_utf8_lossy(&bytes)
        .trim_matches('\u{FFFD}')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_texts_pass_unchanged() {
        let mut segments = vec![
            "[user] hello".to_string(),
            "[assistant] hi there".to_string(),
        ];
        let before = segments.clone();
        assert_eq!(cap(&mut segments, 1000), 0);
        assert_eq!(segments, before);
    }

    #[test]
    fn over_budget_keeps_head_and_tail_and_marks_the_cut() {
        let mut segments: Vec<String> = (0..400)
            .map(|i| format!("[user] message number {i} about the refund for order {i}"))
            .collect();
        segments.push("[error] payment_tool: TimeoutError: upstream timed out".into());
        let omitted = cap(&mut segments, 500);
        let text = segments.join("\n");
        assert!(omitted > 0);
        assert!(count_tokens(&text) <= 500, "{} tokens", count_tokens(&text));
        assert!(text.starts_with("[user] message number 0 "));
        assert!(text.ends_with("[error] payment_tool: TimeoutError: upstream timed out"));
        let marker = segments
            .iter()
            .find(|s| s.contains("tokens omitted"))
            .unwrap();
        assert!(marker.contains(&omitted.to_string()));
    }

    #[test]
    fn one_huge_segment_is_cut_inside_at_a_character_boundary() {
        let mut segments = vec![format!(
            "[tool search] {}",
            "défaillance 故障 ".repeat(5000)
        )];
        cap(&mut segments, 300);
        let text = segments.join("\n");
        assert!(count_tokens(&text) <= 300);
        assert!(text.starts_with("[tool search] défaillance"));
        assert!(text.contains("tokens omitted"));
        assert!(!text.contains('\u{FFFD}'));
    }
}
