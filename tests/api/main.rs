//! Integration tests: the real application on port 0, its own database per test (SQLite, and
//! PostgreSQL when LABGATE_TEST_POSTGRES_URL is set), and a fake GitLab on real TLS.

// A test binary has no API: its shared modules are `pub` for one another only.
#![allow(unreachable_pub)]

/// Shared with the benchmark: databases, settings, certificates, the fake GitLab, a browser.
#[path = "../support/mod.rs"]
mod support;

#[macro_use]
mod helpers;

mod access_token_crash;
mod access_token_rotation;
mod access_tokens;
mod admin_auth;
mod admin_browser;
mod admin_browser_access_token;
mod admin_browser_gitlab;
mod admin_gitlab_sign_in;
mod admin_pages;
mod audit_writer;
mod connect_flow;
mod crash;
mod credentials;
mod fake_gitlab_access_tokens;
mod fleet;
mod instance_checks;
mod instances;
mod key_rotation;
mod lifecycle;
mod logs;
mod openapi;
mod operator_commands;
mod paging;
mod proxy;
mod request_logs;
mod secrets;
mod services;
mod tools;
mod webhooks;
mod workload_identity;
