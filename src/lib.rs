//! labgate: a self-hosted OAuth broker for GitLab installations.
//!
//! Dependencies point one way: `http` → `service` → {`db`, `oauth`, `crypto`} → `domain`;
//! `config`, `telemetry` and `private_files` depend on nothing of ours; `startup` wires everything together.

pub mod background;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod oauth;
pub mod private_files;
pub mod service;
pub mod startup;
pub mod telemetry;

/// The heap allocator `labgate` runs with (`main.rs`), and that its benchmarks measure with.
pub use mimalloc::MiMalloc as Allocator;
