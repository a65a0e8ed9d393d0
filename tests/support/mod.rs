//! What the integration tests (`tests/api`) and the benchmark (`benches/broker.rs`) share, each
//! including this module once as `mod support`: a database of their own, labgate's settings for
//! it, throwaway certificate authorities, a fake GitLab, a fake Kubernetes token issuer, JWTs
//! signed and forged, and a browser that keeps cookies.

pub(crate) mod browser;
pub(crate) mod certs;
pub(crate) mod database;
pub(crate) mod fake_gitlab;
pub(crate) mod fake_issuer;
pub(crate) mod jwt;
pub(crate) mod settings;

/// The URL labgate is configured with: people and GitLab reach it there; tests reach it at its
/// test address.
pub(crate) const PUBLIC_URL: &str = "https://labgate.test";
/// The client secret of the OAuth application registered at the fake GitLab.
pub(crate) const CLIENT_SECRET: &str =
    "gloas-5f3c1e0d9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d";
