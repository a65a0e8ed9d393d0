//! `POST /api/v1/credentials`: a service fetches a GitLab token for one of its users.

use actix_web::error::JsonPayloadError;
use actix_web::http::header::{CACHE_CONTROL, ContentType};
use actix_web::{HttpResponse, web};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::auth::ServiceBearer;
use super::bodies::{GitLabUser, Handout, InstanceRef};
use super::fields::Fields;
use super::json_body::JsonBytes;
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
    body: JsonBytes,
) -> Result<HttpResponse, ApiError> {
    let form = read_form(&body.0)?;
    let handed = credentials::hand_out(&ctx, &caller.0, form).await?;
    let body = handed.rendered.get_or_init(|| render(&handed).into());
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .content_type(ContentType::json())
        .body(body.expose_secret().to_owned()))
}

/// The usual request: exactly these two fields, both strings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainRequest {
    instance: String,
    subject: String,
}

/// Reads the usual request straight into its two strings: building a JSON tree for it (a map,
/// its keys and values) was a fifth of a handout's own work in the handler. Any other body
/// (more fields, a field twice, a wrong type, not JSON at all) is read as a tree, so that every
/// problem is named as before.
fn read_form(body: &[u8]) -> Result<CredentialsForm, ApiError> {
    // A derived struct also reads an array of its fields' values: only an object is the usual.
    let object = body.trim_ascii_start().starts_with(b"{");
    match serde_json::from_slice::<PlainRequest>(body) {
        Ok(plain) if object => Ok(CredentialsForm {
            instance: Some(plain.instance),
            subject: Some(plain.subject),
            scopes: None,
            min_valid_for: None,
        }),
        _ => read_tree(body),
    }
}

/// Reads the body as a tree, field by field, naming every problem.
fn read_tree(body: &[u8]) -> Result<CredentialsForm, ApiError> {
    let tree = serde_json::from_slice(body)
        .map_err(|e| ApiError::from_json_error(JsonPayloadError::Deserialize(e)))?;
    let mut fields = Fields::of(tree, &["instance", "subject", "scopes", "min_valid_for"])?;
    let form = CredentialsForm {
        instance: fields.text("instance"),
        subject: fields.text("subject"),
        scopes: fields.words("scopes"),
        min_valid_for: fields.integer("min_valid_for"),
    };
    fields.finish()?;
    Ok(form)
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

#[cfg(test)]
mod tests {
    use actix_web::ResponseError;
    use actix_web::body::MessageBody;

    use super::*;

    /// What a caller sees of a reading: the form, or the refusal's body (with its status).
    fn seen(read: Result<CredentialsForm, ApiError>) -> String {
        match read {
            Ok(form) => format!("{form:?}"),
            Err(refused) => {
                let answer = refused.error_response();
                let body = answer.into_body().try_into_bytes().unwrap_or_default();
                String::from_utf8_lossy(&body).into_owned()
            }
        }
    }

    /// The short way answers every body as the tree alone answers it.
    #[test]
    fn every_body_is_read_as_the_tree_reads_it() {
        let bodies = [
            r#"{"instance":"corp","subject":"user-17"}"#,
            r#"{"subject":"user-17","instance":"corp"}"#,
            r#"{"instance":"corp","subject":"us\u0065r-17"}"#,
            r#"{"instance":"corp","instance":"other","subject":"user-17"}"#,
            r#"{"instance":"corp","subject":null}"#,
            r#"{"instance":"corp","subject":17}"#,
            r#"{"instance":"corp"}"#,
            r#"{"instance":"corp","subject":"user-17","colour":"blue"}"#,
            r#"{"instance":"corp","subject":"user-17","min_valid_for":600}"#,
            r#"{"instance":"corp","subject":"user-17","min_valid_for":null}"#,
            r#"{"instance":"corp","subject":"user-17","scopes":"read_api api"}"#,
            r#"{"instance":"corp","subject":"user-17","min_valid_for":1e400}"#,
            r#"["corp","user-17"]"#,
            r#""corp""#,
            r#"{}"#,
        ];
        for body in bodies {
            let short = seen(read_form(body.as_bytes()));
            assert_eq!(short, seen(read_tree(body.as_bytes())), "{body}");
            assert!(!short.is_empty(), "{body}");
        }
        // Some of those answers as a caller reads them: a null is refused, a number too large
        // is not JSON, and the last of a field given twice counts.
        let read = |n: usize| seen(read_form(bodies[n].as_bytes()));
        assert!(read(4).contains("must be a string"));
        assert!(read(11).contains("not valid JSON"));
        assert!(read(3).contains("other"));
    }
}
