//! Load generator: realistic support-agent traces in the OTel GenAI semantic-convention shape,
//! deterministic for a seed, and a sender that replays them over OTLP/gRPC at a given rate, the
//! way an instrumented agent fleet would. For tests, benchmarks and demos.
//!
//! ```no_run
//! # async fn demo() {
//! use tracetopics::loadgen::{LoadgenConfig, Workload, run};
//! let (traces, truth) = Workload::new(7).trace(0);
//! println!("{} {}", truth.intent.name(), truth.request);
//! let report = run(LoadgenConfig { count: 100, ..LoadgenConfig::default() }).await.unwrap();
//! println!("{report}");
//! # }
//! ```

pub mod catalog;
pub mod entities;
pub mod send;
pub mod workload;

pub use catalog::{Intent, Sentiment};
pub use send::{LoadgenConfig, LoadgenError, Report, run, split_for_export};
pub use workload::Workload;

/// What a generated trace is about, for checking what the pipeline makes of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceTruth {
    /// `Intent::OffTopic` for out-of-distribution traces.
    pub intent: Intent,
    pub sentiment: Sentiment,
    /// The tool whose call failed (error status and `exception` event), if one did.
    pub failed_tool: Option<String>,
    /// The failed call was retried, successfully; otherwise the agent gave up and apologized.
    pub retried: bool,
    /// Customer messages in the conversation.
    pub turns: usize,
    /// An off-topic request that should classify as `no_match`.
    pub ood: bool,
    /// The customer's first message.
    pub request: String,
}
