//! Refusals many operations share, described once: each answers a problem document.
#![allow(dead_code)] // Described, never built.

use utoipa::IntoResponses;

use crate::http::error::Problem;

/// What any authenticated operation may answer before or beside its own work.
#[derive(IntoResponses)]
pub(crate) enum CommonRefusals {
    #[response(
        status = 401,
        description = "No valid token",
        content_type = "application/problem+json"
    )]
    Unauthenticated(Problem<'static>),
    #[response(
        status = 503,
        description = "The database (or GitLab) does not answer; `Retry-After` says when to try again",
        content_type = "application/problem+json"
    )]
    Unavailable(Problem<'static>),
}

/// What an operation that reads a JSON body may answer about the body itself.
#[derive(IntoResponses)]
pub(crate) enum BodyRefusals {
    #[response(
        status = 400,
        description = "The body is not JSON, or not an object",
        content_type = "application/problem+json"
    )]
    Malformed(Problem<'static>),
    #[response(
        status = 413,
        description = "The body is over 64 KiB",
        content_type = "application/problem+json"
    )]
    TooLarge(Problem<'static>),
    #[response(
        status = 415,
        description = "The body is not application/json",
        content_type = "application/problem+json"
    )]
    NotJson(Problem<'static>),
    #[response(
        status = 422,
        description = "A field is missing or refused: `errors` names each",
        content_type = "application/problem+json"
    )]
    Invalid(Problem<'static>),
}
