//! Tracetopics: an OpenTelemetry-collector-style sidecar that assembles agent traces and gives
//! each a topic. This crate is the sidecar; `tracetopics` is its command line.

pub mod app;
pub mod assemble;
pub mod classify;
pub mod cluster;
pub mod config;
pub mod core;
pub mod demo;
pub mod embed;
pub mod export;
pub mod facet;
pub mod loadgen;
pub mod model;
pub mod otlp;
pub mod pipeline;
pub mod preprocess;
pub mod receiver;
pub mod store;
pub mod telemetry;
pub mod topics;

pub use app::{RunningSidecar, Sidecar};
pub use config::Config;
