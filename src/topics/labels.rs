//! Labelled facets (sentiment, a custom facet with `labels`): their labels are their topics.
//! They are counted and put on spans without a map; a map of their free-text reasons follows
//! once enough distinct reasons are stored. This is what `topics show` and `GET /topics` report
//! for them meanwhile.

use crate::config::Config;
use crate::facet::FacetSpec;
use crate::store::StoreError;
use crate::store::facets;
use redb::Database;
use serde::{Deserialize, Serialize};

/// How many stored answers of the window gave one label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelCount {
    pub label: String,
    pub count: usize,
}

/// The enabled facets whose answer is a label (an unusable facet config yields none: the
/// sidecar refuses to start with it anyway).
pub fn labelled_specs(config: &Config) -> Vec<FacetSpec> {
    crate::facet::specs(&config.facets, &config.preprocess.preprocessor)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.labels.is_some())
        .collect()
}

/// Counts of every label of `spec` among its stored answers since `since_ms`, in the configured
/// label order (a label nobody gave counts 0); excluded answers are not counted.
pub fn label_counts(
    db: &Database,
    spec: &FacetSpec,
    since_ms: u64,
) -> Result<Vec<LabelCount>, StoreError> {
    let labels = spec.labels.as_deref().unwrap_or_default();
    let mut counts: Vec<LabelCount> = labels
        .iter()
        .map(|label| LabelCount {
            label: label.clone(),
            count: 0,
        })
        .collect();
    for record in facets::since(db, &spec.name, since_ms)? {
        if record.excluded {
            continue;
        }
        if let Some(label) = spec.label_of(&record.text) {
            if let Some(c) = counts.iter_mut().find(|c| c.label == label) {
                c.count += 1;
            }
        }
    }
    Ok(counts)
}

/// The label counts of `facet` over the topics window, when it is a labelled facet.
pub fn window_label_counts(
    db: &Database,
    config: &Config,
    facet: &str,
    now_ms: u64,
) -> Option<Vec<LabelCount>> {
    let spec = labelled_specs(config)
        .into_iter()
        .find(|s| s.name == facet)?;
    let since = now_ms.saturating_sub(config.topics.window.get().as_millis() as u64);
    match label_counts(db, &spec, since) {
        Ok(counts) => Some(counts),
        Err(e) => {
            tracing::warn!(facet, error = %e, "cannot count the facet's labels");
            None
        }
    }
}

/// "labels (its topics; 47 answers in the window): NEGATIVE 12, NEUTRAL 30, POSITIVE 5".
pub fn labels_text(counts: &[LabelCount]) -> String {
    let total: usize = counts.iter().map(|c| c.count).sum();
    let each: Vec<String> = counts
        .iter()
        .map(|c| format!("{} {}", c.label, c.count))
        .collect();
    format!(
        "labels (its topics; {total} answers in the window): {}",
        each.join(", ")
    )
}
