//! Cluster keywords by class-based TF-IDF (BERTopic's c-TF-IDF): all texts of a cluster form one
//! document; a term's weight is its frequency in the class divided by the class's word count,
//! times idf = log(1 + A / f_t), where A is the average number of words per class and f_t the
//! term's frequency over all classes. Terms are unigrams and bigrams of a simple lowercase
//! tokenizer with English stop words removed (as scikit-learn's CountVectorizer does, bigrams are
//! formed after stop-word removal).

use std::collections::HashMap;

/// English stop words (scikit-learn's list, abridged to the common ones).
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "almost",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "cannot",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "done",
    "down",
    "during",
    "each",
    "either",
    "else",
    "etc",
    "even",
    "ever",
    "every",
    "few",
    "for",
    "from",
    "further",
    "get",
    "got",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "however",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "least",
    "less",
    "may",
    "me",
    "might",
    "more",
    "most",
    "much",
    "must",
    "my",
    "myself",
    "neither",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "often",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "per",
    "please",
    "rather",
    "same",
    "she",
    "should",
    "since",
    "so",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "though",
    "through",
    "thus",
    "to",
    "too",
    "under",
    "until",
    "up",
    "upon",
    "us",
    "very",
    "via",
    "was",
    "we",
    "well",
    "were",
    "what",
    "when",
    "where",
    "whether",
    "which",
    "while",
    "who",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "within",
    "without",
    "would",
    "yet",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// Lowercase alphanumeric tokens of at least two characters, stop words removed, and no word
/// holding a digit: numbers and ids ("NW-8195", "v2") name one trace, never a topic.
pub fn tokenize(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter(|word| !word.chars().any(|c| c.is_numeric()))
        .flat_map(|word| word.split(|c: char| !c.is_alphanumeric()))
        .filter(|t| t.chars().count() >= 2)
        .map(str::to_lowercase)
        .filter(|t| !t.chars().all(|c| c.is_numeric()))
        .filter(|t| STOP_WORDS.binary_search(&t.as_str()).is_err())
        .collect()
}

/// Top `top_n` (term, weight) per class for classes 0..n_classes of `labels` (−1 = noise, which
/// still counts as a class for the idf so generic noise words are discounted).
pub fn class_keywords(
    texts: &[String],
    labels: &[i32],
    n_classes: usize,
    top_n: usize,
) -> Vec<Vec<(String, f32)>> {
    let mut vocabulary: HashMap<String, usize> = HashMap::new();
    let mut terms: Vec<String> = Vec::new();
    // Row 0 is noise, row c + 1 is class c.
    let mut counts: Vec<HashMap<usize, u32>> = vec![HashMap::new(); n_classes + 1];
    let mut intern = |t: String| -> usize {
        if let Some(&id) = vocabulary.get(&t) {
            return id;
        }
        let id = terms.len();
        terms.push(t.clone());
        vocabulary.insert(t, id);
        id
    };
    for (text, &label) in texts.iter().zip(labels) {
        let row = if label < 0 { 0 } else { label as usize + 1 };
        if row > n_classes {
            continue;
        }
        let tokens = tokenize(text);
        for (i, token) in tokens.iter().enumerate() {
            *counts[row].entry(intern(token.clone())).or_insert(0) += 1;
            if let Some(next) = tokens.get(i + 1) {
                *counts[row]
                    .entry(intern(format!("{token} {next}")))
                    .or_insert(0) += 1;
            }
        }
    }
    let class_totals: Vec<f64> = counts
        .iter()
        .map(|c| c.values().map(|&v| f64::from(v)).sum())
        .collect();
    let non_empty = class_totals.iter().filter(|&&t| t > 0.0).count().max(1);
    let average_words = class_totals.iter().sum::<f64>() / non_empty as f64;
    let mut term_totals = vec![0.0f64; terms.len()];
    for class in &counts {
        for (&t, &c) in class {
            term_totals[t] += f64::from(c);
        }
    }
    (1..=n_classes)
        .map(|row| {
            let total = class_totals[row];
            if total == 0.0 {
                return Vec::new();
            }
            let mut scored: Vec<(f64, usize)> = counts[row]
                .iter()
                .map(|(&t, &c)| {
                    let tf = f64::from(c) / total;
                    let idf = (1.0 + average_words / term_totals[t]).ln();
                    (tf * idf, t)
                })
                .collect();
            scored.sort_by(|a, b| {
                b.0.total_cmp(&a.0)
                    .then_with(|| terms[a.1].cmp(&terms[b.1]))
            });
            scored
                .into_iter()
                .take(top_n)
                .map(|(w, t)| (terms[t].clone(), w as f32))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_word_list_is_sorted_for_binary_search() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn tokenizer_lowercases_and_drops_stop_words_numbers_and_single_letters() {
        assert_eq!(
            tokenize("The Agent booked 2 flights to Paris, a city! Order NW-8195"),
            vec!["agent", "booked", "flights", "paris", "city", "order"]
        );
    }

    #[test]
    fn distinctive_words_outrank_words_shared_by_all_classes() {
        let texts: Vec<String> = [
            "user asks about flight booking",
            "flight booking for user",
            "user wants weather forecast",
            "weather forecast for tomorrow user",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let kw = class_keywords(&texts, &[0, 0, 1, 1], 2, 3);
        let top0: Vec<&str> = kw[0].iter().map(|(t, _)| t.as_str()).collect();
        let top1: Vec<&str> = kw[1].iter().map(|(t, _)| t.as_str()).collect();
        assert!(
            top0.contains(&"flight") && top0.contains(&"booking"),
            "{top0:?}"
        );
        assert!(
            top1.contains(&"weather") && top1.contains(&"forecast"),
            "{top1:?}"
        );
        assert!(!top0.contains(&"user") && !top1.contains(&"user"));
        assert!(
            top0.contains(&"flight booking"),
            "bigrams are terms too: {top0:?}"
        );
    }
}
