use crate::config::types::HumanDuration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `preprocess:` — how a trace becomes the text the facet model sees.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PreprocessConfig {
    /// The preprocessor for facets that do not name their own: `default` (built in: extracts the
    /// conversation from every common GenAI convention) or the name of a plugin below.
    #[serde(default = "default_preprocessor")]
    pub preprocessor: String,
    /// Hard cap on the text a model sees, in tokens (`o200k_base` BPE). Over it, the beginning
    /// and the end are kept and the cut is marked. Default 128000.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    /// Custom preprocessors: JavaScript files defining `function preprocess(trace)`, by name.
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginConfig>,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        Self {
            preprocessor: default_preprocessor(),
            max_tokens: default_max_tokens(),
            plugins: BTreeMap::new(),
        }
    }
}

/// One JavaScript preprocessor (see `plugins/README.md`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The `.js` file, relative to the config file's directory unless absolute.
    pub path: PathBuf,
    /// When the plugin throws, times out, runs out of memory or returns the wrong type:
    /// `default` uses the default preprocessor for that trace, `skip` facets nothing for it.
    #[serde(default)]
    pub on_error: OnError,
    /// Time limit per call (the script is interrupted). Default `200ms`.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Memory limit of the plugin's JavaScript heap, in MiB. Default 64.
    #[serde(default = "default_memory_limit_mib")]
    pub memory_limit_mib: usize,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    #[default]
    Default,
    Skip,
}

fn default_preprocessor() -> String {
    "default".into()
}
fn default_max_tokens() -> usize {
    128_000
}
fn default_timeout() -> HumanDuration {
    HumanDuration::from_millis(200)
}
fn default_memory_limit_mib() -> usize {
    64
}
