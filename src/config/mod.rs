//! The YAML configuration: collector-shaped, one struct per stage (each beside its stage), loaded
//! with `${env:…}` expansion and validated so `tracetopics validate` can list every problem with
//! the YAML path that holds it.

pub mod env;
pub mod tls;
pub mod types;

use crate::assemble::config::AssemblerConfig;
use crate::classify::ClassifyConfig;
use crate::export::config::ExportersConfig;
use crate::facet::config::FacetsConfig;
use crate::model::{ModelsConfig, Provider};
use crate::preprocess::config::PreprocessConfig;
use crate::receiver::config::ReceiversConfig;
use crate::store::config::StorageConfig;
use crate::telemetry::config::{HealthCheckConfig, ServiceConfig, TelemetryConfig};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// The whole configuration file. Every section is optional; an empty file runs with defaults.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub receivers: ReceiversConfig,
    #[serde(default)]
    pub assembler: AssemblerConfig,
    #[serde(default)]
    pub preprocess: PreprocessConfig,
    #[serde(default)]
    pub facets: FacetsConfig,
    #[serde(default)]
    pub classify: ClassifyConfig,
    #[serde(default)]
    pub models: ModelsConfig,
    #[serde(default)]
    pub exporters: ExportersConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub topics: crate::topics::config::TopicsConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    #[serde(default)]
    pub health_check: HealthCheckConfig,
    #[serde(default)]
    pub service: ServiceConfig,
    /// The directory relative paths in the file (plugins) are resolved against: the config
    /// file's own directory.
    #[serde(skip)]
    pub base_dir: std::path::PathBuf,
}

/// One thing wrong with a configuration, located by its YAML path (`exporters.otlp.timeout`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a configuration could not be used: every problem found, not only the first.
#[derive(Debug)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let count = self.problems.len();
        writeln!(
            f,
            "invalid configuration ({count} problem{}):",
            if count == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

fn problem(path: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        path: path.into(),
        message: message.into(),
    }
}

impl Config {
    /// Reads, expands (`${env:VAR}` from the process environment) and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![problem(
                "<file>",
                format!("cannot read {}: {e}", path.display()),
            )],
        })?;
        let base_dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Self::parse_in(&text, |name| std::env::var(name).ok(), base_dir)
    }

    /// Parses configuration text with the given variable lookup, collecting every problem.
    pub fn parse(
        text: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        Self::parse_in(text, lookup, Path::new("."))
    }

    /// As `parse`, resolving relative paths (plugins) against `base_dir`.
    pub fn parse_in(
        text: &str,
        lookup: impl Fn(&str) -> Option<String>,
        base_dir: &Path,
    ) -> Result<Config, ConfigError> {
        let expanded = env::expand(text, lookup).map_err(|unset| ConfigError {
            problems: unset
                .into_iter()
                .map(|u| {
                    problem(
                        format!("<line {}>", u.line),
                        format!(
                            "environment variable `{}` is not set and has no default (write `${{env:{}:-default}}` to give one)",
                            u.name, u.name
                        ),
                    )
                })
                .collect(),
        })?;
        let mut value: serde_yaml_ng::Value = if expanded.trim().is_empty() {
            serde_yaml_ng::Value::Null
        } else {
            serde_yaml_ng::from_str(&expanded).map_err(|e| ConfigError {
                problems: vec![problem("<yaml>", format!("not valid YAML: {e}"))],
            })?
        };
        if value.is_null() {
            value = serde_yaml_ng::Value::Mapping(Default::default());
        }

        // serde stops at the first error; to list them all, remove each offending key and try
        // again. Defaults fill the removed keys, so later sections are still checked.
        let mut problems = Vec::new();
        let config = loop {
            match serde_path_to_error::deserialize::<_, Config>(value.clone()) {
                Ok(config) => break Some(config),
                Err(err) => {
                    let (path, message) = describe(&err);
                    let removable = !path.is_empty() && remove_path(&mut value, &path);
                    problems.push(problem(
                        if path.is_empty() {
                            ".".to_string()
                        } else {
                            path.join(".")
                        },
                        message,
                    ));
                    if !removable || problems.len() >= 100 {
                        break None;
                    }
                }
            }
        };
        let config = config.map(|mut config| {
            config.base_dir = base_dir.to_path_buf();
            config
        });
        if let Some(config) = &config {
            problems.extend(config.check());
            problems.extend(config.check_plugins());
            problems.extend(config.check_facets());
        }
        match config {
            Some(config) if problems.is_empty() => Ok(config),
            _ => Err(ConfigError { problems }),
        }
    }

    /// Facet names, labels, patterns, preprocessors and model endpoints.
    fn check_facets(&self) -> Vec<Problem> {
        let f = &self.facets;
        let mut problems = Vec::new();
        if !(0.0..=1.0).contains(&f.sampling_rate) {
            problems.push(problem("facets.sampling_rate", "must be between 0 and 1"));
        }
        for (i, name) in f.builtin.iter().enumerate() {
            if crate::facet::spec::builtin(name).is_none() {
                problems.push(problem(
                    format!("facets.builtin.{i}"),
                    format!("unknown built-in facet `{name}`; use task, sentiment or issues"),
                ));
            }
        }
        let mut seen: Vec<&str> = f.builtin.iter().map(String::as_str).collect();
        for (i, custom) in f.custom.iter().enumerate() {
            let at = |key: &str| format!("facets.custom.{i}.{key}");
            let valid_name = !custom.name.is_empty()
                && custom
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid_name {
                problems.push(problem(at("name"), "use lowercase letters, digits and `_`"));
            } else if seen.contains(&custom.name.as_str()) {
                problems.push(problem(
                    at("name"),
                    format!("`{}` is used twice", custom.name),
                ));
            }
            seen.push(&custom.name);
            if custom.prompt.trim().is_empty() {
                problems.push(problem(at("prompt"), "must not be empty"));
            }
            if custom.labels.as_ref().is_some_and(|l| l.is_empty()) {
                problems.push(problem(
                    at("labels"),
                    "give at least one label, or remove the key",
                ));
            }
            if let Some(pattern) = &custom.exclude {
                if let Err(e) = regex::Regex::new(pattern) {
                    problems.push(problem(at("exclude"), e.to_string()));
                }
            }
            if let Some(name) = &custom.preprocessor {
                if name != "default" && !self.preprocess.plugins.contains_key(name) {
                    problems.push(problem(
                        at("preprocessor"),
                        format!(
                            "`{name}` is neither `default` nor a plugin under preprocess.plugins"
                        ),
                    ));
                }
            }
            if !(0.0..=1.0).contains(&custom.sampling_rate) {
                problems.push(problem(at("sampling_rate"), "must be between 0 and 1"));
            }
        }
        for (key, model) in [
            ("facets", &self.models.facets),
            ("embeddings", &self.models.embeddings),
            ("naming", &self.models.naming),
        ] {
            if model.provider == Provider::Openai {
                if let Err(e) = crate::model::OpenAiClient::new(model) {
                    problems.push(problem(format!("models.{key}"), e));
                }
            }
        }
        problems
    }

    /// Every plugin must compile (a syntax error is reported with file and line) and the
    /// global preprocessor must exist.
    fn check_plugins(&self) -> Vec<Problem> {
        let p = &self.preprocess;
        let mut problems = Vec::new();
        if p.max_tokens < 256 {
            problems.push(problem("preprocess.max_tokens", "must be at least 256"));
        }
        if p.preprocessor != "default" && !p.plugins.contains_key(&p.preprocessor) {
            problems.push(problem(
                "preprocess.preprocessor",
                format!(
                    "`{}` is neither `default` nor a plugin under preprocess.plugins",
                    p.preprocessor
                ),
            ));
        }
        for (name, plugin) in &p.plugins {
            if name == "default" {
                problems.push(problem(
                    format!("preprocess.plugins.{name}"),
                    "`default` names the built-in preprocessor; choose another name",
                ));
            }
            if plugin.timeout.get().is_zero() {
                problems.push(problem(
                    format!("preprocess.plugins.{name}.timeout"),
                    "must be greater than 0",
                ));
            }
            if let Err(e) = crate::preprocess::Plugin::load(name, plugin, &self.base_dir) {
                problems.push(problem(format!("preprocess.plugins.{name}"), e.to_string()));
            }
        }
        problems
    }

    /// Checks that span several keys or need more than a type.
    fn check(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let protocols = &self.receivers.otlp.protocols;
        if protocols.grpc.is_none() && protocols.http.is_none() {
            problems.push(problem(
                "receivers.otlp.protocols",
                "enable at least one of `grpc` or `http`",
            ));
        }
        if let Some(grpc) = &protocols.grpc {
            if grpc.max_recv_msg_size_mib == 0 {
                problems.push(problem(
                    "receivers.otlp.protocols.grpc.max_recv_msg_size_mib",
                    "must be at least 1",
                ));
            }
        }
        if let Some(http) = &protocols.http {
            if http.max_request_body_size == 0 {
                problems.push(problem(
                    "receivers.otlp.protocols.http.max_request_body_size",
                    "must be at least 1",
                ));
            }
            if http.max_connections == 0 {
                problems.push(problem(
                    "receivers.otlp.protocols.http.max_connections",
                    "must be at least 1",
                ));
            }
        }
        let mut listeners = Vec::new();
        if let Some(grpc) = &protocols.grpc {
            listeners.push(("receivers.otlp.protocols.grpc.endpoint", &grpc.endpoint));
        }
        if let Some(http) = &protocols.http {
            listeners.push(("receivers.otlp.protocols.http.endpoint", &http.endpoint));
        }
        listeners.push((
            "telemetry.metrics.endpoint",
            &self.telemetry.metrics.endpoint,
        ));
        listeners.push(("health_check.endpoint", &self.health_check.endpoint));
        listeners.push(("topics.admin.endpoint", &self.topics.admin.endpoint));
        for (i, (path, endpoint)) in listeners.iter().enumerate() {
            if endpoint.port == 0 {
                continue;
            }
            if let Some((other, _)) = listeners[..i]
                .iter()
                .find(|(_, e)| e.port == endpoint.port && e.host == endpoint.host)
            {
                problems.push(problem(
                    *path,
                    format!("`{endpoint}` is already used by {other}"),
                ));
            }
        }

        let a = &self.assembler;
        if a.idle_wait.get().is_zero() {
            problems.push(problem("assembler.idle_wait", "must be greater than 0"));
        }
        if a.max_trace_age.get().is_zero() {
            problems.push(problem("assembler.max_trace_age", "must be greater than 0"));
        }
        if a.max_traces == 0 {
            problems.push(problem("assembler.max_traces", "must be at least 1"));
        }
        if a.max_spans_per_trace == 0 {
            problems.push(problem(
                "assembler.max_spans_per_trace",
                "must be at least 1",
            ));
        }

        let e = &self.exporters.otlp;
        match crate::export::target::ExportTarget::from_config(e) {
            Err(message) => problems.push(problem("exporters.otlp.endpoint", message)),
            Ok(target) => {
                if let Some(receiver) = loops_back(&target, protocols) {
                    problems.push(problem(
                        "exporters.otlp.endpoint",
                        format!("points at this sidecar's own receiver ({receiver}); spans would loop forever"),
                    ));
                }
            }
        }
        if e.timeout.get().is_zero() {
            problems.push(problem("exporters.otlp.timeout", "must be greater than 0"));
        }
        for (name, value) in &e.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                problems.push(problem(
                    format!("exporters.otlp.headers.{name}"),
                    "not a valid header name",
                ));
            }
            // The value is a secret more often than not: say what is wrong, never what it is.
            if http::HeaderValue::from_str(value.expose()).is_err() {
                problems.push(problem(
                    format!("exporters.otlp.headers.{name}"),
                    "value contains characters not allowed in a header",
                ));
            }
        }
        let r = &e.retry_on_failure;
        if r.multiplier < 1.0 {
            problems.push(problem(
                "exporters.otlp.retry_on_failure.multiplier",
                "must be at least 1.0",
            ));
        }
        if !(0.0..1.0).contains(&r.randomization_factor) {
            problems.push(problem(
                "exporters.otlp.retry_on_failure.randomization_factor",
                "must be in [0, 1)",
            ));
        }
        if r.initial_interval.get().is_zero() {
            problems.push(problem(
                "exporters.otlp.retry_on_failure.initial_interval",
                "must be greater than 0",
            ));
        }
        if r.max_interval < r.initial_interval {
            problems.push(problem(
                "exporters.otlp.retry_on_failure.max_interval",
                "must be at least initial_interval",
            ));
        }
        let q = &e.sending_queue;
        if q.num_consumers == 0 {
            problems.push(problem(
                "exporters.otlp.sending_queue.num_consumers",
                "must be at least 1",
            ));
        }
        if q.queue_size == 0 {
            problems.push(problem(
                "exporters.otlp.sending_queue.queue_size",
                "must be at least 1",
            ));
        }
        if e.batch.send_batch_size == 0 {
            problems.push(problem(
                "exporters.otlp.batch.send_batch_size",
                "must be at least 1",
            ));
        }
        if e.batch.send_batch_max_bytes < 1024 {
            problems.push(problem(
                "exporters.otlp.batch.send_batch_max_bytes",
                "must be at least 1024",
            ));
        }
        problems.extend(
            self.topics
                .problems()
                .into_iter()
                .map(|(path, message)| problem(path, message)),
        );
        if self.storage.path.as_os_str().is_empty() {
            problems.push(problem("storage.path", "must not be empty"));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.telemetry.logs.level).is_err() {
            problems.push(problem(
                "telemetry.logs.level",
                format!(
                    "`{}` is not a log level or filter (try `info` or `debug`)",
                    self.telemetry.logs.level
                ),
            ));
        }
        problems
    }
}

/// The receiver endpoint an exporter target would send straight back into, if any.
fn loops_back(
    target: &crate::export::target::ExportTarget,
    protocols: &crate::receiver::config::ProtocolsConfig,
) -> Option<String> {
    let url = match target {
        crate::export::target::ExportTarget::Grpc(url)
        | crate::export::target::ExportTarget::Http(url) => url,
    };
    let authority = url.trim_start_matches("http://").split('/').next()?;
    let endpoint: types::Endpoint = authority.parse().ok()?;
    let local = |host: &str| matches!(host, "localhost" | "127.0.0.1" | "::1" | "0.0.0.0" | "::");
    let receivers = [
        protocols.grpc.as_ref().map(|g| &g.endpoint),
        protocols.http.as_ref().map(|h| &h.endpoint),
    ];
    receivers.into_iter().flatten().find_map(|receiver| {
        let same_host =
            receiver.host == endpoint.host || (local(&receiver.host) && local(&endpoint.host));
        (receiver.port != 0 && receiver.port == endpoint.port && same_host)
            .then(|| receiver.to_string())
    })
}

/// The YAML path and a readable message for a deserialization error. serde reports an unknown
/// key at its parent, so the key's name is appended to the path.
fn describe(err: &serde_path_to_error::Error<serde_yaml_ng::Error>) -> (Vec<String>, String) {
    let mut path: Vec<String> = err
        .path()
        .iter()
        .filter_map(|segment| match segment {
            serde_path_to_error::Segment::Map { key } => Some(key.clone()),
            serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
            serde_path_to_error::Segment::Enum { variant } => Some(variant.clone()),
            serde_path_to_error::Segment::Unknown => None,
        })
        .collect();
    let message = err.inner().to_string();
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_string();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some(key) = rest.split('`').next() {
            if path.last().map(String::as_str) != Some(key) {
                path.push(key.to_string());
            }
        }
    }
    (path, message)
}

fn remove_path(value: &mut serde_yaml_ng::Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut node = value;
    for key in parents {
        node = match node {
            serde_yaml_ng::Value::Mapping(map) => match map.get_mut(key.as_str()) {
                Some(child) => child,
                None => return false,
            },
            serde_yaml_ng::Value::Sequence(seq) => {
                match key.parse::<usize>().ok().and_then(|i| seq.get_mut(i)) {
                    Some(child) => child,
                    None => return false,
                }
            }
            _ => return false,
        };
    }
    match node {
        serde_yaml_ng::Value::Mapping(map) => map.remove(last.as_str()).is_some(),
        serde_yaml_ng::Value::Sequence(seq) => match last.parse::<usize>() {
            Ok(i) if i < seq.len() => {
                seq.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests;
