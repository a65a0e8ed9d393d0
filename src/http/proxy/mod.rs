//! The proxy's HTTP edge: `/git/{instance}/…` (git smart HTTP) and `/gitlab/{instance}/api/v4/…`
//! (the REST API), forwarded with the person's GitLab token, which the caller never sees. Each
//! call is judged on the raw path exactly as received (`domain::judge_git`, `judge_api`), then
//! streamed both ways (`stream`).

mod api;
mod git;
mod stream;

use actix_web::{HttpRequest, web};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::scope("/git").default_service(web::to(git::forward)))
        .service(web::scope("/gitlab").default_service(web::to(api::forward)));
}

/// Splits the raw path after `prefix` (`/git/`, `/gitlab/`) into the instance's name and the rest,
/// as received: nothing decoded, nothing normalised.
fn instance_and_rest<'a>(request: &'a HttpRequest, prefix: &str) -> Option<(&'a str, &'a str)> {
    let after = request.uri().path().strip_prefix(prefix)?;
    match after.find('/') {
        Some(slash) => Some((&after[..slash], &after[slash..])),
        None => Some((after, "")),
    }
}
