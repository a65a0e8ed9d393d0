//! `POST /api/v1/credentials`: a service fetches a GitLab token for one of its users.

use actix_web::http::header::{CACHE_CONTROL, ContentType};
use actix_web::{HttpResponse, web};
use secrecy::ExposeSecret;
use serde_json::Value;

use super::auth::ServiceBearer;
use super::bodies::{GitLabUser, Handout, InstanceRef};
use super::fields::Fields;
use super::{ApiError, method_not_allowed, timestamp};
use crate::service::Context;
use crate::service::credentials::{self, Credentials, CredentialsForm};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/credentials")
            .route(web::post().to(fetch))
            .default_service(web::to(method_not_allowed)),
    );
}

#[utoipa::path(
    post,
    path = "/api/v1/credentials",
    tag = "credentials",
    request_body = crate::http::openapi::schemas::CredentialsRequest,
    responses(
        (status = 200, description = "A GitLab token valid for at least `max(min_valid_for, 60)` seconds", body = Handout),
        (status = 403, description = "Outside the service's policy", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "The subject has no connection covering the request (`not_connected`)", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The person must connect again (`reauthorization_required`)", body = crate::http::error::Problem, content_type = "application/problem+json"),
        crate::http::openapi::refusals::BodyRefusals,
        crate::http::openapi::refusals::CommonRefusals
    ),
    security(("service_token" = []))
)]
async fn fetch(
    caller: ServiceBearer,
    ctx: web::Data<Context>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let mut fields = Fields::of(
        body.into_inner(),
        &["instance", "subject", "scopes", "min_valid_for"],
    )?;
    let form = CredentialsForm {
        instance: fields.text("instance"),
        subject: fields.text("subject"),
        scopes: fields.words("scopes"),
        min_valid_for: fields.integer("min_valid_for"),
    };
    fields.finish()?;
    let handed = credentials::hand_out(&ctx, &caller.0, form).await?;
    let body = handed.rendered.get_or_init(|| render(&handed).into());
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .content_type(ContentType::json())
        .body(body.expose_secret().to_owned()))
}

/// SPEC's credentials response.
fn render(handed: &Credentials) -> String {
    let handout = Handout {
        access_token: handed.access_token.expose_secret(),
        token_type: "Bearer",
        expires_at: timestamp(handed.expires_at),
        scopes: handed.scopes.iter().collect(),
        connection_id: &handed.connection_id,
        gitlab: GitLabUser {
            user_id: &handed.gitlab_user_id,
            username: &handed.gitlab_username,
        },
        instance: InstanceRef {
            name: &handed.instance,
            base_url: &handed.base_url,
        },
    };
    serde_json::to_string(&handout).expect("a handout serialises: it holds only strings")
}
