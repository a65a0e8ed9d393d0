//! `POST /api/v1/keys/rotate`: an online master-key rotation, started by a serving process.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::auth::Admin;
use super::{ApiError, method_not_allowed};
use crate::service::Context;
use crate::service::key_rotation::api;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/keys/rotate")
            .route(web::post().to(rotate))
            .default_service(web::to(method_not_allowed)),
    );
}

#[utoipa::path(
    post,
    path = "/api/v1/keys/rotate",
    tag = "keys",
    description = "Re-seals every secret under this process's master key (`security.master_key_file`), from the key beside it (`security.previous_master_key_file`), in the background, as `labgate rotate-key` does. Its end is audited (`master_key_rotated`).",
    responses(
        (status = 202, description = "Started (or resumed): the key ids", body = crate::http::openapi::schemas::RotationStarted),
        (status = 409, description = "A rotation is running already, or this process is not configured with both keys", body = crate::http::error::Problem, content_type = "application/problem+json"),
        crate::http::openapi::refusals::CommonRefusals
    ),
    security(("admin_token" = []))
)]
async fn rotate(_: Admin, ctx: web::Data<Context>) -> Result<HttpResponse, ApiError> {
    let started = api::start(&ctx).await?;
    Ok(HttpResponse::Accepted().json(json!({
        "from": started.from,
        "to": started.to,
        "resumed": started.resumed,
    })))
}
