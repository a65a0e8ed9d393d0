//! labgate: a self-hosted OAuth broker for GitLab installations.

pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
