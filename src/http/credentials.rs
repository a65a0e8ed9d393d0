//! `POST /api/v1/credentials`: a service fetches a GitLab token for one of its users.

use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpResponse, web};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::Value;

use super::auth::ServiceBearer;
use super::fields::Fields;
use super::{ApiError, method_not_allowed, timestamp};
use crate::service::Context;
use crate::service::credentials::{self, CredentialsForm};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/credentials")
            .route(web::post().to(fetch))
            .default_service(web::to(method_not_allowed)),
    );
}

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
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(Handout {
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
        }))
}

/// SPEC's credentials response, written straight from the handout (the hot path).
#[derive(Serialize)]
struct Handout<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_at: String,
    scopes: Vec<&'a str>,
    connection_id: &'a str,
    gitlab: GitLabUser<'a>,
    instance: InstanceRef<'a>,
}

#[derive(Serialize)]
struct GitLabUser<'a> {
    user_id: &'a str,
    username: &'a str,
}

#[derive(Serialize)]
struct InstanceRef<'a> {
    name: &'a str,
    base_url: &'a str,
}
