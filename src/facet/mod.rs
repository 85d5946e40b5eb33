//! Facets: short summaries of a trace along a few questions (built-ins Task, Sentiment, Issues,
//! plus custom ones), all answered in one model call per trace.

pub mod builtin;
pub mod config;
pub mod evidence;
pub mod extract;
pub mod spec;
pub mod stage;

pub use config::{CustomFacet, FacetsConfig};
pub use extract::{AnswerCache, Extraction, FacetAnswer, FacetModel, extract};
pub use spec::FacetSpec;

/// The enabled facets from configuration, built-ins first; `default_preprocessor` fills in
/// custom facets that name none.
pub fn specs(config: &FacetsConfig, default_preprocessor: &str) -> Result<Vec<FacetSpec>, String> {
    let mut out = Vec::new();
    for name in &config.builtin {
        let mut spec =
            spec::builtin(name).ok_or_else(|| format!("unknown built-in facet `{name}`"))?;
        spec.preprocessor = default_preprocessor.to_string();
        spec.sampling_rate = config.sampling_rate;
        out.push(spec);
    }
    for custom in config.custom.iter().filter(|c| c.enabled) {
        out.push(FacetSpec::new(
            &custom.name,
            &custom.prompt,
            custom.labels.clone(),
            custom.exclude.as_deref(),
            custom
                .preprocessor
                .as_deref()
                .unwrap_or(default_preprocessor),
            custom.sampling_rate.min(config.sampling_rate),
        )?);
    }
    Ok(out)
}

/// Deterministic sampling by trace id: the same trace is always in or out.
pub fn sampled(trace_id: &str, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    trace_id.hash(&mut h);
    (h.finish() % 1_000_000) as f64 / 1_000_000.0 < rate
}
