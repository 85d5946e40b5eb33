//! Custom preprocessors: a JavaScript file defining `function preprocess(trace)`, run in embedded
//! QuickJS. The sandbox has no filesystem, network or process access (QuickJS's `std`/`os`
//! modules are not linked in, and no loader is installed), a memory limit, and a time limit per
//! call enforced by the interrupt handler. The script is compiled once per runtime; a runtime is
//! rebuilt only after a timeout or running out of memory, when its state cannot be trusted.

use super::config::PluginConfig;
use super::trace::TraceView;
use rquickjs::context::EvalOptions;
use rquickjs::{Context, Ctx, Exception, Function, Runtime, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    #[error("cannot read plugin {path}: {message}")]
    Read { path: String, message: String },
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: String,
        line: u32,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("threw: {0}")]
    Threw(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("ran out of memory (limit {0} MiB)")]
    OutOfMemory(usize),
    #[error("returned {0}; expected a string, an array of strings, or null")]
    WrongType(String),
}

impl PluginError {
    /// Short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginError::Read { .. } | PluginError::Syntax { .. } | PluginError::Invalid { .. } => {
                "load"
            }
            PluginError::Threw(_) => "threw",
            PluginError::Timeout(_) => "timeout",
            PluginError::OutOfMemory(_) => "out_of_memory",
            PluginError::WrongType(_) => "wrong_type",
        }
    }
}

/// What a plugin returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginOutput {
    /// `null`: this trace is not to be faceted.
    Skip,
    Segments(Vec<String>),
}

struct Sandbox {
    // Field order matters: the context must drop before its runtime.
    context: Context,
    _runtime: Runtime,
}

pub struct Plugin {
    pub name: String,
    path: PathBuf,
    source: String,
    timeout: Duration,
    memory_limit_mib: usize,
    sandbox: Option<Sandbox>,
    /// Deadline in microseconds since `epoch`; `u64::MAX` when no call is running.
    deadline: Arc<AtomicU64>,
    interrupted: Arc<AtomicBool>,
    epoch: Instant,
}

impl Plugin {
    /// Reads and compiles the script; a syntax error names the file and line.
    pub fn load(name: &str, config: &PluginConfig, base_dir: &Path) -> Result<Plugin, PluginError> {
        let path = if config.path.is_absolute() {
            config.path.clone()
        } else {
            base_dir.join(&config.path)
        };
        let source = std::fs::read_to_string(&path).map_err(|e| PluginError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_source(name, &path, source, config)
    }

    pub fn from_source(
        name: &str,
        path: &Path,
        source: String,
        config: &PluginConfig,
    ) -> Result<Plugin, PluginError> {
        let mut plugin = Plugin {
            name: name.to_string(),
            path: path.to_path_buf(),
            source,
            timeout: config.timeout.get(),
            memory_limit_mib: config.memory_limit_mib,
            sandbox: None,
            deadline: Arc::new(AtomicU64::new(u64::MAX)),
            interrupted: Arc::new(AtomicBool::new(false)),
            epoch: Instant::now(),
        };
        plugin.sandbox = Some(plugin.new_sandbox()?);
        Ok(plugin)
    }

    fn new_sandbox(&self) -> Result<Sandbox, PluginError> {
        let internal = |e: rquickjs::Error| PluginError::Invalid {
            path: self.path.display().to_string(),
            message: e.to_string(),
        };
        let runtime = Runtime::new().map_err(internal)?;
        runtime.set_memory_limit(self.memory_limit_mib.max(1) * 1024 * 1024);
        runtime.set_max_stack_size(1024 * 1024);
        let (deadline, interrupted, epoch) =
            (self.deadline.clone(), self.interrupted.clone(), self.epoch);
        runtime.set_interrupt_handler(Some(Box::new(move || {
            let limit = deadline.load(Ordering::Relaxed);
            let late = limit != u64::MAX && epoch.elapsed().as_micros() as u64 > limit;
            if late {
                interrupted.store(true, Ordering::Relaxed);
            }
            late
        })));
        let context = Context::full(&runtime).map_err(internal)?;
        let path = self.path.display().to_string();
        self.arm();
        let loaded = context.with(|ctx| -> Result<(), PluginError> {
            install_globals(&ctx).map_err(internal)?;
            let mut options = EvalOptions::default();
            options.filename = Some(path.clone());
            options.strict = false;
            if let Err(e) = ctx.eval_with_options::<(), _>(self.source.as_str(), options) {
                let (message, line) = exception_text(&ctx, e);
                if self.interrupted.load(Ordering::Relaxed) {
                    return Err(PluginError::Invalid {
                        path,
                        message: format!("top-level code did not finish within {:?}", self.timeout),
                    });
                }
                return Err(PluginError::Syntax {
                    path,
                    line: line.unwrap_or(0),
                    message,
                });
            }
            let defined: Option<Function> = ctx.globals().get("preprocess").ok();
            if defined.is_none() {
                return Err(PluginError::Invalid {
                    path,
                    message: "does not define `function preprocess(trace)`".into(),
                });
            }
            Ok(())
        });
        self.disarm();
        loaded?;
        Ok(Sandbox {
            context,
            _runtime: runtime,
        })
    }

    fn arm(&self) {
        self.interrupted.store(false, Ordering::Relaxed);
        let limit = self.epoch.elapsed() + self.timeout;
        self.deadline
            .store(limit.as_micros() as u64, Ordering::Relaxed);
    }

    fn disarm(&self) {
        self.deadline.store(u64::MAX, Ordering::Relaxed);
    }

    /// Runs `preprocess(trace)`. After a timeout or out-of-memory the runtime is rebuilt.
    pub fn run(&mut self, trace: &TraceView) -> Result<PluginOutput, PluginError> {
        if self.sandbox.is_none() {
            self.sandbox = Some(self.new_sandbox()?);
        }
        let json = serde_json::to_string(trace).map_err(|e| PluginError::Threw(e.to_string()))?;
        let sandbox = self.sandbox.as_ref().expect("just built");
        self.arm();
        let result = sandbox.context.with(|ctx| {
            let outcome = call(&ctx, &json);
            outcome.map_err(|e| self.classify(&ctx, e))
        });
        self.disarm();
        if matches!(
            result,
            Err(PluginError::Timeout(_) | PluginError::OutOfMemory(_))
        ) {
            self.sandbox = None;
        }
        result
    }

    fn classify(&self, ctx: &Ctx<'_>, error: CallError) -> PluginError {
        match error {
            CallError::WrongType(what) => PluginError::WrongType(what),
            CallError::Js(e) => {
                let (message, line) = exception_text(ctx, e);
                if self.interrupted.load(Ordering::Relaxed) {
                    PluginError::Timeout(self.timeout)
                } else if message.contains("out of memory") {
                    PluginError::OutOfMemory(self.memory_limit_mib)
                } else {
                    PluginError::Threw(match line {
                        Some(line) => format!("{message} (line {line})"),
                        None => message,
                    })
                }
            }
        }
    }
}

enum CallError {
    Js(rquickjs::Error),
    WrongType(String),
}

fn call(ctx: &Ctx<'_>, trace_json: &str) -> Result<PluginOutput, CallError> {
    let trace = ctx.json_parse(trace_json).map_err(CallError::Js)?;
    let preprocess: Function = ctx.globals().get("preprocess").map_err(CallError::Js)?;
    let value: Value = preprocess.call((trace,)).map_err(CallError::Js)?;
    if value.is_null() || value.is_undefined() {
        return Ok(PluginOutput::Skip);
    }
    if let Some(text) = value.as_string() {
        let text = text.to_string().map_err(CallError::Js)?;
        return Ok(PluginOutput::Segments(vec![text]));
    }
    if let Some(array) = value.as_array() {
        let mut out = Vec::with_capacity(array.len());
        for (i, item) in array.iter::<Value>().enumerate() {
            let item = item.map_err(CallError::Js)?;
            match item.as_string() {
                Some(text) => out.push(text.to_string().map_err(CallError::Js)?),
                None => {
                    return Err(CallError::WrongType(format!(
                        "an array whose item {i} is {}",
                        item.type_name()
                    )));
                }
            }
        }
        return Ok(PluginOutput::Segments(out));
    }
    Err(CallError::WrongType(value.type_name().to_string()))
}

/// The message of a thrown value and the line it came from, if the stack names one.
fn exception_text(ctx: &Ctx<'_>, error: rquickjs::Error) -> (String, Option<u32>) {
    if !error.is_exception() {
        return (error.to_string(), None);
    }
    let thrown = ctx.catch();
    if let Some(exception) = thrown.as_exception() {
        let message = exception.message().unwrap_or_default();
        let name: String = exception
            .get::<_, String>("name")
            .unwrap_or_else(|_| "Error".into());
        let line = exception
            .get::<_, Option<i32>>("lineNumber")
            .ok()
            .flatten()
            .map(|l| l.max(0) as u32)
            .or_else(|| exception.stack().as_deref().and_then(first_line_number));
        return (format!("{name}: {message}"), line);
    }
    let text = ctx
        .json_stringify(thrown)
        .ok()
        .flatten()
        .and_then(|s| s.to_string().ok())
        .unwrap_or_else(|| "a non-error value".into());
    (format!("threw {text}"), None)
}

/// `    at preprocess (plugin.js:12:9)` → 12.
fn first_line_number(stack: &str) -> Option<u32> {
    stack.lines().find_map(|line| {
        let inner = line.trim().trim_end_matches(')');
        let mut parts = inner.rsplit(':');
        let _column = parts.next()?;
        parts.next()?.parse().ok()
    })
}

/// `defaultPreprocess(trace)` → the default preprocessor's segments as strings (uncapped: the
/// plugin's own result is capped);
/// `defaultSegments(trace)` → the same as objects `{role, kind, name, text, spanId, agent}`;
/// `console.log(...)` → the sidecar's debug log.
fn install_globals(ctx: &Ctx<'_>) -> rquickjs::Result<()> {
    let globals = ctx.globals();
    globals.set(
        "defaultPreprocess",
        Function::new(ctx.clone(), default_preprocess_js)?,
    )?;
    globals.set(
        "defaultSegments",
        Function::new(ctx.clone(), default_segments_js)?,
    )?;
    let console = rquickjs::Object::new(ctx.clone())?;
    console.set("log", Function::new(ctx.clone(), console_log)?)?;
    globals.set("console", console)?;
    Ok(())
}

fn default_preprocess_js<'js>(ctx: Ctx<'js>, trace: Value<'js>) -> rquickjs::Result<Vec<String>> {
    let view = trace_from_js(&ctx, trace)?;
    Ok(super::default_segments(&view).0)
}

fn default_segments_js<'js>(ctx: Ctx<'js>, trace: Value<'js>) -> rquickjs::Result<Value<'js>> {
    let view = trace_from_js(&ctx, trace)?;
    let (segments, _) = super::conversation::assemble(&view);
    let json = serde_json::to_string(&segments)
        .map_err(|e| Exception::throw_internal(&ctx, &e.to_string()))?;
    ctx.json_parse(json)
}

fn console_log(args: rquickjs::function::Rest<rquickjs::Coerced<String>>) {
    let line: Vec<String> = args.0.into_iter().map(|a| a.0).collect();
    tracing::debug!(target: "tracetopics::plugin", "{}", line.join(" "));
}

fn trace_from_js<'js>(ctx: &Ctx<'js>, trace: Value<'js>) -> rquickjs::Result<TraceView> {
    let json = ctx
        .json_stringify(trace)?
        .map(|s| s.to_string())
        .transpose()?
        .unwrap_or_default();
    serde_json::from_str(&json)
        .map_err(|e| Exception::throw_type(ctx, &format!("not a trace object: {e}")))
}
