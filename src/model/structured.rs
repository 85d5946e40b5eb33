//! Structured outputs differ between OpenAI-compatible servers: OpenAI, vLLM, Ollama and
//! llama.cpp's own server take `response_format: {type: json_schema}`; llama-cpp-python answers
//! that with HTTP 500 but takes `{type: json_object, schema: …}`; some servers take neither.
//! `EndpointModes` learns, per endpoint, the best mode the server accepts: it starts at the most
//! structured one and steps down when a request is refused in a way that names its format.

use super::errors::ModelError;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Mutex;

/// How a chat request asks for JSON.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum StructuredOutput {
    /// Detect: try `json_schema`, then `json_object`, then `instructions`, and remember the
    /// first the endpoint accepts.
    #[default]
    Auto,
    /// `response_format: {type: json_schema, json_schema: {schema}}` (OpenAI, vLLM, Ollama,
    /// llama.cpp server).
    JsonSchema,
    /// `response_format: {type: json_object, schema}` (llama-cpp-python; others ignore `schema`).
    JsonObject,
    /// No `response_format`: the prompt's instructions and a tolerant parser (fenced JSON is fine).
    Instructions,
}

impl StructuredOutput {
    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            StructuredOutput::Auto => "auto",
            StructuredOutput::JsonSchema => "json_schema",
            StructuredOutput::JsonObject => "json_object",
            StructuredOutput::Instructions => "instructions",
        }
    }

    /// The next less demanding mode, if any.
    fn lower(self) -> Option<StructuredOutput> {
        match self {
            StructuredOutput::Auto | StructuredOutput::JsonSchema => {
                Some(StructuredOutput::JsonObject)
            }
            StructuredOutput::JsonObject => Some(StructuredOutput::Instructions),
            StructuredOutput::Instructions => None,
        }
    }

    /// Every concrete mode, for metrics.
    pub const MODES: [StructuredOutput; 3] = [
        StructuredOutput::JsonSchema,
        StructuredOutput::JsonObject,
        StructuredOutput::Instructions,
    ];

    /// Sets (or removes) `response_format` in a chat request body for this mode.
    pub fn apply(self, body: &mut Value, schema: Option<&Value>) {
        let format = match (self, schema) {
            (StructuredOutput::JsonSchema | StructuredOutput::Auto, Some(schema)) => Some(json!({
                "type": "json_schema",
                "json_schema": {"name": "answer", "strict": true, "schema": schema},
            })),
            (StructuredOutput::JsonObject, Some(schema)) => {
                Some(json!({"type": "json_object", "schema": schema}))
            }
            _ => None,
        };
        if let Some(obj) = body.as_object_mut() {
            match format {
                Some(format) => {
                    obj.insert("response_format".into(), format);
                }
                None => {
                    obj.remove("response_format");
                }
            }
        }
    }
}

/// Whether `error` may be the server refusing how a request asks for JSON: a client error or a
/// 500/501 (llama-cpp-python reports its validation errors as 500). `naming` additionally
/// requires the answer to mention the format, which is proof enough even once settled.
pub fn refuses_format(error: &ModelError, naming: bool) -> bool {
    let ModelError::Http {
        status, message, ..
    } = error
    else {
        return false;
    };
    if !matches!(status, 400 | 415 | 422 | 500 | 501) {
        return false;
    }
    !naming || names_format(message)
}

fn names_format(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    [
        "response_format",
        "json_schema",
        "json_object",
        "schema",
        "grammar",
    ]
    .iter()
    .any(|word| lower.contains(word))
}

/// What one endpoint is known to accept.
pub struct EndpointModes {
    /// The configured mode; `Auto` detects.
    configured: StructuredOutput,
    state: Mutex<ModeState>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ModeState {
    /// The mode the next request uses.
    current: StructuredOutput,
    /// A request in `current` succeeded: it is the endpoint's answer.
    settled: bool,
}

/// What `EndpointModes` concluded after a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Try the request again in this mode.
    Retry(StructuredOutput),
    /// Nothing lower to try: report the error.
    GiveUp,
}

impl EndpointModes {
    pub fn new(configured: StructuredOutput) -> Self {
        let current = match configured {
            StructuredOutput::Auto => StructuredOutput::JsonSchema,
            pinned => pinned,
        };
        Self {
            configured,
            state: Mutex::new(ModeState {
                current,
                settled: configured != StructuredOutput::Auto,
            }),
        }
    }

    /// The mode for the next request, and whether it is still a probe (unsettled, with a lower
    /// mode to fall back to).
    pub fn current(&self) -> (StructuredOutput, bool) {
        let state = *self.state.lock().expect("mode lock");
        let probing = !state.settled && state.current.lower().is_some();
        (state.current, probing)
    }

    /// A request in `mode` succeeded; true when this settles the endpoint (log it once).
    pub fn succeeded(&self, mode: StructuredOutput) -> bool {
        let mut state = self.state.lock().expect("mode lock");
        if state.settled || state.current != mode {
            return false;
        }
        state.settled = true;
        true
    }

    /// A request in `mode` failed with `error`. Steps down while detecting (any refusal) and,
    /// once settled, only for a refusal that names the format (for this request alone).
    pub fn refused(&self, mode: StructuredOutput, error: &ModelError) -> Step {
        if self.configured != StructuredOutput::Auto {
            return Step::GiveUp;
        }
        let Some(lower) = mode.lower() else {
            return Step::GiveUp;
        };
        let mut state = self.state.lock().expect("mode lock");
        if !state.settled && refuses_format(error, false) {
            if state.current == mode {
                state.current = lower;
            }
            Step::Retry(lower)
        } else if refuses_format(error, true) {
            Step::Retry(lower)
        } else {
            Step::GiveUp
        }
    }

    /// Every mode failed the same request without naming the format: the endpoint is broken,
    /// not picky. Forget what was learned so the next request probes again.
    pub fn inconclusive(&self) {
        if self.configured != StructuredOutput::Auto {
            return;
        }
        let mut state = self.state.lock().expect("mode lock");
        if !state.settled {
            state.current = StructuredOutput::JsonSchema;
        }
    }

    /// The mode in use (the one being probed while detecting).
    pub fn in_use(&self) -> StructuredOutput {
        self.state.lock().expect("mode lock").current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, message: &str) -> ModelError {
        ModelError::Http {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    #[test]
    fn detection_steps_down_and_settles() {
        let modes = EndpointModes::new(StructuredOutput::Auto);
        assert_eq!(modes.current(), (StructuredOutput::JsonSchema, true));
        let refused = http(500, "Input should be 'text' or 'json_object'");
        assert_eq!(
            modes.refused(StructuredOutput::JsonSchema, &refused),
            Step::Retry(StructuredOutput::JsonObject)
        );
        assert_eq!(modes.current(), (StructuredOutput::JsonObject, true));
        assert!(modes.succeeded(StructuredOutput::JsonObject));
        assert!(
            !modes.succeeded(StructuredOutput::JsonObject),
            "logged once"
        );
        assert_eq!(modes.current(), (StructuredOutput::JsonObject, false));
        // Settled: a bare 500 is an outage, not a refusal...
        assert_eq!(
            modes.refused(StructuredOutput::JsonObject, &http(500, "boom")),
            Step::GiveUp
        );
        // ...one naming the format steps down for that request only.
        assert_eq!(
            modes.refused(StructuredOutput::JsonObject, &http(400, "bad schema")),
            Step::Retry(StructuredOutput::Instructions)
        );
        assert_eq!(modes.in_use(), StructuredOutput::JsonObject);
    }

    #[test]
    fn an_endpoint_failing_everything_is_probed_again_later() {
        let modes = EndpointModes::new(StructuredOutput::Auto);
        let bare = http(500, "Internal Server Error");
        assert!(matches!(
            modes.refused(StructuredOutput::JsonSchema, &bare),
            Step::Retry(_)
        ));
        assert!(matches!(
            modes.refused(StructuredOutput::JsonObject, &bare),
            Step::Retry(StructuredOutput::Instructions)
        ));
        assert_eq!(modes.current(), (StructuredOutput::Instructions, false));
        modes.inconclusive();
        assert_eq!(modes.current(), (StructuredOutput::JsonSchema, true));
        // Outages and auth failures are never taken for a refusal.
        for status in [401, 404, 429, 503] {
            assert_eq!(
                modes.refused(StructuredOutput::JsonSchema, &http(status, "schema")),
                Step::GiveUp
            );
        }
    }

    #[test]
    fn a_pinned_mode_is_used_as_is() {
        let modes = EndpointModes::new(StructuredOutput::JsonObject);
        assert_eq!(modes.current(), (StructuredOutput::JsonObject, false));
        assert_eq!(
            modes.refused(StructuredOutput::JsonObject, &http(400, "json_object")),
            Step::GiveUp
        );
        let mut body = json!({"model": "m"});
        let schema = json!({"type": "object"});
        StructuredOutput::JsonObject.apply(&mut body, Some(&schema));
        assert_eq!(body["response_format"]["schema"], schema);
        StructuredOutput::Instructions.apply(&mut body, Some(&schema));
        assert!(body.get("response_format").is_none());
    }
}
