//! Preprocess: one assembled trace becomes compact, role-tagged conversation text — the only
//! thing a facet model ever sees. The default preprocessor understands the common GenAI
//! conventions (see `conventions.rs`); custom ones are JavaScript plugins (see `plugin.rs`).

pub mod budget;
pub mod config;
pub mod conventions;
pub mod conversation;
pub mod messages;
pub mod plugin;
pub mod stage;
pub mod trace;
pub mod values;

pub use config::{OnError, PluginConfig, PreprocessConfig};
pub use plugin::{Plugin, PluginError, PluginOutput};
pub use trace::TraceView;

use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Text,
    Reasoning,
    ToolCall,
    ToolResult,
    Error,
}

/// One item of the conversation, as `defaultSegments(trace)` gives it to plugins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    pub role: Role,
    pub kind: Kind,
    /// The tool, for tool calls and results.
    pub name: Option<String>,
    pub text: String,
    pub span_id: String,
    /// The innermost agent (`invoke_agent` span) the item happened in.
    pub agent: Option<String>,
}

impl Segment {
    /// `[user] …`, `[assistant tool_call get_weather] {"city":"Paris"}`, `[tool get_weather] …`,
    /// `[assistant reasoning] …`, `[error] …`.
    pub fn render(&self) -> String {
        let role = match self.role {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
            Role::Error => "error",
        };
        let name = self.name.as_deref().unwrap_or("unknown");
        match self.kind {
            Kind::ToolCall => format!("[{role} tool_call {name}] {}", self.text),
            Kind::ToolResult => match &self.name {
                Some(name) => format!("[tool {name}] {}", self.text),
                None => format!("[tool] {}", self.text),
            },
            Kind::Reasoning => format!("[{role} reasoning] {}", self.text),
            Kind::Text | Kind::Error => format!("[{role}] {}", self.text),
        }
    }
}

/// What later stages need to know about a trace besides its text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceMeta {
    pub trace_id: String,
    pub service_name: Option<String>,
    pub root_span_name: String,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub models: Vec<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub error_count: usize,
    pub span_count: usize,
    pub log_record_count: usize,
    pub dropped_scorer_spans: usize,
    pub duration_ms: u64,
    /// Short scalar attributes of the resource and the root span, for facet filters
    /// (`service.name`, `http.route`, …).
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// The text a facet model sees for one trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preprocessed {
    /// The preprocessor configured (what facets name).
    pub configured: String,
    /// `default` or the plugin's name (what actually produced the text).
    pub preprocessor: String,
    pub segments: Vec<String>,
    pub meta: TraceMeta,
    /// Tokens cut by the `max_tokens` cap.
    pub omitted_tokens: usize,
    /// Set when a plugin failed and the default preprocessor stood in.
    pub plugin_error: Option<PluginError>,
}

impl Preprocessed {
    pub fn text(&self) -> String {
        self.segments.join("\n")
    }

    /// Tokens of `text()` (o200k BPE), counted on request: the stage itself only tokenizes
    /// texts long enough to need the cap.
    pub fn tokens(&self) -> usize {
        budget::count_tokens(&self.text())
    }
}

/// The default preprocessor's rendered segments (before the token cap) and the trace metadata.
pub fn default_segments(trace: &TraceView) -> (Vec<String>, TraceMeta) {
    let (segments, meta) = conversation::assemble(trace);
    (segments.iter().map(Segment::render).collect(), meta)
}

/// Why a trace produced no text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// The plugin returned `null`.
    ByPlugin,
    /// The plugin failed and `on_error: skip`.
    PluginFailed(PluginError),
    /// Nothing conversational in the trace.
    Empty,
}

/// A configured preprocessor: the default one, or a plugin with its fallback.
pub struct Preprocessor {
    plugin: Option<(Plugin, OnError)>,
    max_tokens: usize,
}

impl Preprocessor {
    /// The preprocessor named `name` in `config` (`default` or a plugin); plugin paths are
    /// resolved against `base_dir`. Fails on unknown names and on scripts that do not compile.
    pub fn new(config: &PreprocessConfig, name: &str, base_dir: &Path) -> Result<Self, String> {
        if name == "default" {
            return Ok(Self::builtin(config.max_tokens));
        }
        let plugin_config = config.plugins.get(name).ok_or_else(|| {
            format!(
                "unknown preprocessor `{name}`: use `default` or a name under preprocess.plugins"
            )
        })?;
        let plugin = Plugin::load(name, plugin_config, base_dir).map_err(|e| e.to_string())?;
        Ok(Self {
            plugin: Some((plugin, plugin_config.on_error)),
            max_tokens: config.max_tokens,
        })
    }

    pub fn builtin(max_tokens: usize) -> Self {
        Self {
            plugin: None,
            max_tokens,
        }
    }

    pub fn name(&self) -> &str {
        self.plugin.as_ref().map_or("default", |(p, _)| &p.name)
    }

    pub fn run(&mut self, trace: &TraceView) -> Result<Preprocessed, Skipped> {
        let (default_text, meta) = default_segments(trace);
        let (preprocessor, mut segments, plugin_error) = match &mut self.plugin {
            None => ("default".to_string(), default_text, None),
            Some((plugin, on_error)) => match plugin.run(trace) {
                Ok(PluginOutput::Segments(segments)) => (plugin.name.clone(), segments, None),
                Ok(PluginOutput::Skip) => return Err(Skipped::ByPlugin),
                Err(error) => match on_error {
                    OnError::Skip => return Err(Skipped::PluginFailed(error)),
                    OnError::Default => ("default".to_string(), default_text, Some(error)),
                },
            },
        };
        segments.retain(|s| !s.trim().is_empty());
        if segments.is_empty() {
            return Err(Skipped::Empty);
        }
        let omitted_tokens = budget::cap(&mut segments, self.max_tokens);
        Ok(Preprocessed {
            configured: self.name().to_string(),
            preprocessor,
            segments,
            meta,
            omitted_tokens,
            plugin_error,
        })
    }
}

#[cfg(test)]
mod tests;
