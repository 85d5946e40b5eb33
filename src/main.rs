use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tracetopics::{Config, Sidecar};

/// Tracetopics — an OpenTelemetry-collector-style sidecar that gives every agent trace a topic.
///
/// It receives OTLP traces (gRPC :4317, HTTP :4318), assembles spans into whole traces, and
/// forwards every span to your downstream OTLP endpoint through a persistent queue, so it can sit
/// in an existing pipeline as a loss-free hop.
#[derive(Parser)]
#[command(
    name = "tracetopics",
    version,
    about,
    long_about,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the sidecar until SIGTERM or Ctrl-C (then it drains and exits).
    Run {
        /// YAML configuration file; `${env:VAR}` and `${env:VAR:-default}` are expanded.
        #[arg(short, long, value_name = "FILE", env = "TRACETOPICS_CONFIG")]
        config: PathBuf,
    },
    /// Check a configuration file and list every problem with its YAML path. Exits 1 if any.
    Validate {
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Print exactly what the facet model would see for one trace: the tool for plugin authors.
    Preprocess {
        /// Configuration file (its `preprocess:` section is used); defaults apply without one.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The trace as OTLP/JSON: one export request, or JSON Lines of them (as the Collector's
        /// file exporter writes), with `resourceSpans` and/or `resourceLogs`.
        #[arg(short, long, value_name = "TRACE.json")]
        trace: PathBuf,
        /// Use this preprocessor instead of `preprocess.preprocessor` (`default` or a plugin).
        #[arg(short, long)]
        preprocessor: Option<String>,
        /// Also print the trace metadata (service, user, models, tokens, errors) as JSON.
        #[arg(long)]
        meta: bool,
    },
    /// See the whole product offline: starts the sidecar (config.example.yaml: builtin models,
    /// redb in a fresh temporary directory) with a local downstream, drives the load generator
    /// until every facet has a topic map, prints the maps and enriched spans, then keeps running
    /// with live per-topic counts until Ctrl-C.
    Demo {
        /// Configuration to run with; the exporter is pointed at the demo's own downstream.
        #[arg(
            short,
            long,
            value_name = "FILE",
            default_value = "config.example.yaml"
        )]
        config: PathBuf,
        /// Traces sent before the maps are built (at least `topics.min_traces` + 50).
        #[arg(long, default_value_t = 600)]
        traces: u64,
        /// Traces per second of the load generator.
        #[arg(long, default_value_t = 300.0)]
        rate: f64,
        /// Exit after showing the maps and enriched spans.
        #[arg(long)]
        exit_when_done: bool,
    },
    /// Send realistic support-agent traces (OTel GenAI conventions) over OTLP/gRPC, for demos
    /// and load tests. The same seed always yields the same conversations.
    Loadgen {
        /// OTLP/gRPC endpoint to send to.
        #[arg(long, default_value = "http://127.0.0.1:4317")]
        endpoint: String,
        /// Traces started per second (0 = as fast as possible).
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
        /// Traces to send.
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// Traces in flight at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Share of off-topic traces (poems, trivia, …) that should classify as no_match.
        #[arg(long, default_value_t = 0.0)]
        ood_share: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Topic maps: show them or rebuild one now (through the running sidecar).
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// Cluster a filtered subset of the stored summaries now and print the topics, ranked by
    /// share. Nothing is saved: the automatic maps stay as they are. Asks the running sidecar,
    /// or opens the storage file itself when none runs.
    Cluster {
        /// The facet whose summaries are clustered (`task`, `issues`, a custom facet…).
        #[arg(long)]
        facet: String,
        /// Summaries of this last period.
        #[arg(long, default_value = "24h")]
        since: String,
        /// Keep only traces whose FIELD equals VALUE (service_name, root_span_name, user_id,
        /// session_id); repeat to combine.
        #[arg(long = "filter", value_name = "FIELD=VALUE")]
        filters: Vec<String>,
        /// hdbscan, kmeans or agglomerative (default: `topics.clustering`).
        #[arg(long)]
        algorithm: Option<String>,
        /// Number of clusters for kmeans / agglomerative (alone, it implies kmeans).
        #[arg(long)]
        k: Option<usize>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Give up waiting for the running sidecar's answer after this long.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Configuration file (storage path, admin endpoint, models); defaults without one.
        #[arg(short, long, value_name = "FILE", env = "TRACETOPICS_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum TopicsCommand {
    /// Print the current topic map of every facet (or one) and the automation state.
    Show {
        #[arg(long)]
        facet: Option<String>,
        /// Configuration file (storage path, admin endpoint, models); defaults without one.
        #[arg(short, long, value_name = "FILE", env = "TRACETOPICS_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Rebuild a facet's map now in the running sidecar, and print it.
    Regenerate {
        #[arg(long)]
        facet: String,
        /// Give up waiting for the new map after this long (the sidecar finishes it anyway).
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Configuration file (storage path, admin endpoint, models); defaults without one.
        #[arg(short, long, value_name = "FILE", env = "TRACETOPICS_CONFIG")]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { config } => match Config::load(&config) {
            Ok(_) => {
                println!("{}: configuration is valid", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprint!("{}: {e}", config.display());
                ExitCode::FAILURE
            }
        },
        Command::Preprocess {
            config,
            trace,
            preprocessor,
            meta,
        } => preprocess(config, trace, preprocessor, meta),
        Command::Demo {
            config,
            traces,
            rate,
            exit_when_done,
        } => demo(config, traces, rate, exit_when_done),
        Command::Loadgen {
            endpoint,
            rate,
            count,
            concurrency,
            ood_share,
            seed,
        } => loadgen(tracetopics::loadgen::LoadgenConfig {
            endpoint,
            rate_per_sec: rate,
            count,
            concurrency,
            ood_share,
            seed,
        }),
        Command::Topics { command } => {
            let (config, result) = match command {
                TopicsCommand::Show { facet, config } => (config, TopicsAction::Show(facet)),
                TopicsCommand::Regenerate {
                    facet,
                    timeout,
                    config,
                } => (config, TopicsAction::Regenerate(facet, timeout)),
            };
            let Some(config) = load_or_default(config) else {
                return ExitCode::FAILURE;
            };
            print_result(match result {
                TopicsAction::Show(facet) => {
                    tracetopics::topics::cli::show(&config, facet.as_deref())
                }
                TopicsAction::Regenerate(facet, timeout) => {
                    tracetopics::topics::cli::regenerate(&config, &facet, timeout)
                }
            })
        }
        Command::Cluster {
            facet,
            since,
            filters,
            algorithm,
            k,
            json,
            timeout,
            config,
        } => {
            let Some(config) = load_or_default(config) else {
                return ExitCode::FAILURE;
            };
            let request = match cluster_request(facet, &since, &filters, algorithm, k) {
                Ok(request) => request,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            print_result(tracetopics::topics::cli::cluster(
                &config, &request, json, timeout,
            ))
        }
        Command::Run { config: path } => {
            let config = match Config::load(&path) {
                Ok(config) => config,
                Err(e) => {
                    eprint!("{}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            };
            tracetopics::telemetry::init_logs(&config.telemetry.logs);
            limit_malloc_arenas();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .thread_name("tracetopics")
                .build()
                .expect("building the tokio runtime");
            runtime.block_on(run(config))
        }
    }
}

enum TopicsAction {
    Show(Option<String>),
    Regenerate(String, Duration),
}

/// The config file, or the defaults without one; `None` (reported) when it is invalid.
fn load_or_default(path: Option<PathBuf>) -> Option<Config> {
    match path {
        Some(path) => match Config::load(&path) {
            Ok(config) => Some(config),
            Err(e) => {
                eprint!("{}: {e}", path.display());
                None
            }
        },
        None => Some(Config::default()),
    }
}

fn print_result(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(text) => {
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn cluster_request(
    facet: String,
    since: &str,
    filters: &[String],
    algorithm: Option<String>,
    k: Option<usize>,
) -> Result<tracetopics::topics::adhoc::ClusterRequest, String> {
    let since = humantime::parse_duration(since)
        .map_err(|e| format!("--since `{since}`: {e} (write e.g. 24h or 7d)"))?;
    let mut request = tracetopics::topics::adhoc::ClusterRequest {
        facet,
        since: tracetopics::config::types::HumanDuration(since),
        algorithm,
        k,
        ..Default::default()
    };
    for filter in filters {
        let (key, value) = filter
            .split_once('=')
            .ok_or_else(|| format!("--filter `{filter}`: write FIELD=VALUE"))?;
        request.filters.insert(key.trim().into(), value.into());
    }
    Ok(request)
}

fn preprocess(
    config: Option<PathBuf>,
    trace: PathBuf,
    preprocessor: Option<String>,
    meta: bool,
) -> ExitCode {
    use tracetopics::preprocess::{Preprocessor, Skipped, trace::from_otlp_json};
    let config = match config {
        Some(path) => match Config::load(&path) {
            Ok(config) => config,
            Err(e) => {
                eprint!("{}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
        None => Config::default(),
    };
    let name = preprocessor.unwrap_or_else(|| config.preprocess.preprocessor.clone());
    let base_dir = if config.base_dir.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        config.base_dir.as_path()
    };
    let mut preprocessor = match Preprocessor::new(&config.preprocess, &name, base_dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let view = match std::fs::read_to_string(&trace)
        .map_err(|e| e.to_string())
        .and_then(|text| from_otlp_json(&text))
    {
        Ok(view) => view,
        Err(e) => {
            eprintln!("{}: {e}", trace.display());
            return ExitCode::FAILURE;
        }
    };
    match preprocessor.run(&view) {
        Ok(out) => {
            if let Some(error) = &out.plugin_error {
                eprintln!(
                    "plugin `{name}` failed ({error}); showing the default preprocessor's output (on_error: default)"
                );
            }
            println!("{}", out.text());
            eprintln!(
                "-- {} segment(s), {} token(s){}, by `{}`",
                out.segments.len(),
                out.tokens(),
                if out.omitted_tokens > 0 {
                    format!(", {} omitted by the cap", out.omitted_tokens)
                } else {
                    String::new()
                },
                out.preprocessor
            );
            if meta {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&out.meta).unwrap_or_default()
                );
            }
            ExitCode::SUCCESS
        }
        Err(Skipped::ByPlugin) => {
            eprintln!("-- skipped: plugin `{name}` returned null");
            ExitCode::SUCCESS
        }
        Err(Skipped::Empty) => {
            eprintln!("-- skipped: no conversation found in the trace");
            ExitCode::SUCCESS
        }
        Err(Skipped::PluginFailed(error)) => {
            eprintln!("-- skipped: plugin `{name}` failed ({error}) and on_error is skip");
            ExitCode::from(2)
        }
    }
}

fn demo(path: PathBuf, traces: u64, rate: f64, exit_when_done: bool) -> ExitCode {
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(e) => {
            eprint!("{}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    if !(rate > 0.0) {
        eprintln!("--rate must be greater than 0");
        return ExitCode::from(2);
    }
    // The demo prints its own story; the sidecar's info logs would drown it (RUST_LOG wins).
    let mut logs = config.telemetry.logs.clone();
    logs.level = "warn".into();
    tracetopics::telemetry::init_logs(&logs);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    let options = tracetopics::demo::DemoOptions {
        config,
        traces,
        rate,
        exit_when_done,
        timeout: std::time::Duration::from_secs(300),
    };
    match runtime.block_on(tracetopics::demo::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn loadgen(config: tracetopics::loadgen::LoadgenConfig) -> ExitCode {
    let bad_rate = config.rate_per_sec.is_nan() || config.rate_per_sec < 0.0;
    if !(0.0..=1.0).contains(&config.ood_share) || bad_rate {
        eprintln!("--ood-share must be within 0..=1 and --rate must be ≥ 0");
        return ExitCode::from(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    match runtime.block_on(tracetopics::loadgen::run(config)) {
        Ok(report) => {
            println!("{report}");
            if report.failed_requests == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> ExitCode {
    let sidecar = match Sidecar::start(config).await {
        Ok(sidecar) => sidecar,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "tracetopics started");
    wait_for_signal().await;
    let report = sidecar.shutdown().await;
    if report.drained {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    }
}

async fn wait_for_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
    }
}

/// glibc gives every thread that allocates its own arena; for a small, steady sidecar that only
/// fragments memory. Two arenas keep RSS low at no measurable CPU cost.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
