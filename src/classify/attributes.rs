//! The attribute contract: what a classified trace's spans carry. Documented in the README as a
//! stable API; change it only with a major version.

use crate::store::facets::{self, FacetRecord};
use crate::store::{StoreError, classifications};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};

/// Label of a trace beyond every topic's distance threshold.
pub const NO_MATCH: &str = "no_match";

/// A trace's topic for one facet.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    pub facet: String,
    /// Stable topic id; `None` for `no_match`.
    pub topic_id: Option<u32>,
    /// The topic's name, or `no_match`.
    pub label: String,
    /// Cosine distance (1 − cos) to the nearest centroid.
    pub distance: f32,
    pub map_version: u64,
}

/// `tracetopics.facet.<facet>`: the summary, cut to `max_chars` characters.
pub fn facet_summary(record: &FacetRecord, max_chars: usize) -> KeyValue {
    let text = match record.text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &record.text[..cut]),
        None => record.text.clone(),
    };
    string(format!("tracetopics.facet.{}", record.facet), text)
}

/// `tracetopics.topic.<facet>.{id,label,distance,map_version}` (no `id` for `no_match`).
pub fn topic(classification: &Classification) -> Vec<KeyValue> {
    let prefix = format!("tracetopics.topic.{}", classification.facet);
    let mut attributes = Vec::with_capacity(4);
    if let Some(id) = classification.topic_id {
        attributes.push(int(format!("{prefix}.id"), i64::from(id)));
    }
    attributes.push(string(
        format!("{prefix}.label"),
        classification.label.clone(),
    ));
    attributes.push(KeyValue {
        key: format!("{prefix}.distance"),
        key_strindex: 0,
        value: Some(AnyValue {
            // Rounded so the attribute reads well; classification decisions use the full value.
            value: Some(Value::DoubleValue(
                (f64::from(classification.distance) * 1e4).round() / 1e4,
            )),
        }),
    });
    attributes.push(int(
        format!("{prefix}.map_version"),
        classification.map_version as i64,
    ));
    attributes
}

/// The attributes of a trace from its stored facet and classification records (for spans that
/// arrive after the trace left, when memory no longer has them).
pub fn stored(
    db: &redb::Database,
    trace_id: &[u8; 16],
    max_chars: usize,
) -> Result<Vec<KeyValue>, StoreError> {
    let mut attributes: Vec<KeyValue> = facets::of_trace(db, trace_id)?
        .iter()
        .map(|r| facet_summary(r, max_chars))
        .collect();
    for record in classifications::of_trace(db, trace_id)? {
        attributes.extend(topic(&Classification {
            facet: record.facet,
            topic_id: record.topic_id,
            label: record.label,
            distance: record.distance,
            map_version: record.map_version,
        }));
    }
    Ok(attributes)
}

fn string(key: String, value: String) -> KeyValue {
    KeyValue {
        key,
        key_strindex: 0,
        value: Some(AnyValue {
            value: Some(Value::StringValue(value)),
        }),
    }
}

fn int(key: String, value: i64) -> KeyValue {
    KeyValue {
        key,
        key_strindex: 0,
        value: Some(AnyValue {
            value: Some(Value::IntValue(value)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(text: &str) -> FacetRecord {
        FacetRecord {
            trace_id: [1; 16],
            facet: "task".into(),
            text: text.into(),
            excluded: false,
            time_ms: 0,
            version: "1".into(),
            preprocessor: "default".into(),
            facet_model: "m".into(),
            embedding_model: "e".into(),
            service_name: None,
            root_span_name: String::new(),
            user_id: None,
            session_id: None,
            embedding: Vec::new(),
        }
    }

    #[test]
    fn summaries_are_cut_on_a_character_boundary() {
        let kv = facet_summary(&record("héllo wörld"), 4);
        assert_eq!(kv.key, "tracetopics.facet.task");
        let Some(Value::StringValue(text)) = kv.value.and_then(|v| v.value) else {
            panic!("a string attribute")
        };
        assert_eq!(text, "héll…");
        let kv = facet_summary(&record("short"), 10);
        assert!(
            matches!(kv.value.and_then(|v| v.value), Some(Value::StringValue(t)) if t == "short")
        );
    }

    #[test]
    fn no_match_has_a_label_but_no_id() {
        let mut c = Classification {
            facet: "task".into(),
            topic_id: Some(7),
            label: "Refunds".into(),
            distance: 0.123456,
            map_version: 3,
        };
        let keys: Vec<String> = topic(&c).into_iter().map(|kv| kv.key).collect();
        assert_eq!(
            keys,
            [
                "tracetopics.topic.task.id",
                "tracetopics.topic.task.label",
                "tracetopics.topic.task.distance",
                "tracetopics.topic.task.map_version"
            ]
        );
        c.topic_id = None;
        c.label = NO_MATCH.into();
        let attributes = topic(&c);
        assert_eq!(attributes.len(), 3);
        assert!(
            matches!(&attributes[0].value.as_ref().unwrap().value, Some(Value::StringValue(l)) if l == "no_match")
        );
    }
}
