//! Integration tests: the real application on port 0, its own database per test (SQLite, and
//! PostgreSQL when LABGATE_TEST_POSTGRES_URL is set), and a fake GitLab on real TLS.

#[macro_use]
mod helpers;
mod certs;
mod fake_gitlab;

mod admin_auth;
mod admin_browser;
mod admin_pages;
mod connect_flow;
mod crash;
mod credentials;
mod instance_checks;
mod instances;
mod lifecycle;
mod logs;
mod secrets;
mod services;
mod tools;
