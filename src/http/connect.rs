//! The connect flow's faces: the service API that creates links, and the two browser routes
//! (following a link, coming back from GitLab).

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header::{CACHE_CONTROL, LOCATION, REFERRER_POLICY};
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use super::auth::ServicePrincipal;
use super::fields::Fields;
use super::{ApiError, method_not_allowed, pages, timestamp};
use crate::service::Context;
use crate::service::admin_sign_in;
use crate::service::connect::{self, CallbackParams, ConnectForm, Failure, Outcome};

pub(super) fn api_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/connect-sessions")
            .route(web::post().to(create))
            .default_service(web::to(method_not_allowed)),
    );
}

pub(super) fn browser_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/connect/{id}", web::get().to(confirm))
        .route("/connect/{id}", web::post().to(follow))
        .route("/connect/{id}/cancel", web::post().to(cancel))
        .route("/oauth/{instance}/callback", web::get().to(callback))
        .route(
            "/oauth/{instance}/result/{key}/{connection_id}",
            web::get().to(result),
        );
}

#[utoipa::path(
    post,
    path = "/api/v1/connect-sessions",
    tag = "connect",
    request_body = crate::http::openapi::schemas::ConnectSessionRequest,
    responses(
        (status = 201, description = "A single-use link for the person", body = crate::http::openapi::schemas::ConnectLink),
        (status = 403, description = "The instance or scopes are outside the service's policy", body = crate::http::error::Problem, content_type = "application/problem+json"),
        crate::http::openapi::refusals::BodyRefusals,
        crate::http::openapi::refusals::CommonRefusals
    ),
    security(("service_token" = []))
)]
async fn create(
    caller: ServicePrincipal,
    ctx: web::Data<Context>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let mut fields = Fields::of(
        body.into_inner(),
        &["instance", "subject", "scopes", "return_to"],
    )?;
    let form = ConnectForm {
        instance: fields.text("instance"),
        subject: fields.text("subject"),
        scopes: fields.words("scopes"),
        return_to: fields.text("return_to"),
    };
    fields.finish()?;
    let link = connect::create_session(&ctx, &caller.0, &caller.1, form).await?;
    Ok(HttpResponse::Created()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(json!({
            "id": link.id,
            "url": link.url,
            "expires_at": timestamp(link.expires_at),
        })))
}

/// Shows who asks for what; spends nothing, so link previews and scanners are harmless.
async fn confirm(ctx: web::Data<Context>, id: web::Path<String>) -> HttpResponse {
    match connect::describe(&ctx, &id).await {
        Ok(link) => pages::confirm(&link, &format!("/connect/{id}")),
        Err(failure) => pages::failure(&failure),
    }
}

/// The person agreed: to GitLab, with a cookie binding the sign-in to this browser.
async fn follow(ctx: web::Data<Context>, id: web::Path<String>) -> HttpResponse {
    match connect::start(&ctx, &id).await {
        Ok(started) => {
            let cookie = Cookie::build(
                started.binding.cookie_name,
                started.binding.value.expose_secret().to_owned(),
            )
            .path("/oauth/")
            .http_only(true)
            // Lax: the callback is a top-level navigation coming from GitLab's site.
            .same_site(SameSite::Lax)
            .secure(ctx.public_url.scheme() == "https")
            .max_age(actix_web::cookie::time::Duration::minutes(10))
            .finish();
            let mut response = redirect(started.authorize_url.as_str());
            let _ = response.add_cookie(&cookie);
            response
        }
        Err(failure) => pages::failure(&failure),
    }
}

/// The person declined before going to GitLab: the service hears `status=denied`, as if they
/// had declined there.
async fn cancel(ctx: web::Data<Context>, id: web::Path<String>) -> HttpResponse {
    match connect::cancel(&ctx, &id).await {
        Ok(Some(url)) => redirect(&back_to(
            url,
            &[
                ("status", "denied"),
                ("error", pages::code(&Failure::Denied)),
            ],
        )),
        Ok(None) => pages::cancelled(),
        Err(failure) => pages::failure(&failure),
    }
}

#[derive(Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

async fn callback(
    ctx: web::Data<Context>,
    instance: web::Path<String>,
    req: HttpRequest,
) -> HttpResponse {
    // Parsed here rather than by an extractor, so that a malformed query still gets a page.
    let Ok(web::Query(Callback {
        code,
        state,
        iss,
        error,
    })) = web::Query::<Callback>::from_query(req.query_string())
    else {
        return pages::failure(&connect::Failure::UnknownState);
    };
    // An admin sign-in with GitLab shares the instance's redirect URL; its state says so.
    if let Some(admin_state) = state
        .as_deref()
        .filter(|s| admin_sign_in::is_sign_in_state(s))
    {
        let params = CallbackParams {
            code,
            state: None,
            iss,
            error,
        };
        return super::admin::gitlab_sign_in_callback(&ctx, &req, &instance, admin_state, params)
            .await;
    }
    let cookie = |name: &str| req.cookie(name).map(|c| c.value().to_owned());
    let finished = connect::finish(
        &ctx,
        &instance,
        CallbackParams {
            code,
            state,
            iss,
            error,
        },
        cookie,
    )
    .await;
    // The binding cookie stays until it expires: once the state is spent it opens nothing.
    match finished {
        Outcome::Connected {
            return_to: Some(url),
            connection_id,
            ..
        } => redirect(&back_to(
            url,
            &[("status", "connected"), ("connection_id", &connection_id)],
        )),
        // On to a page whose URL holds no code or state: reloading it shows the result again.
        Outcome::Connected {
            instance,
            session_key,
            connection_id,
            return_to: None,
            ..
        } => redirect(&format!(
            "/oauth/{instance}/result/{session_key}/{connection_id}"
        )),
        Outcome::Failed {
            failure,
            return_to: Some(url),
        } => {
            let status = if failure == Failure::Denied {
                "denied"
            } else {
                "error"
            };
            redirect(&back_to(
                url,
                &[("status", status), ("error", pages::code(&failure))],
            ))
        }
        Outcome::Failed {
            failure,
            return_to: None,
        } => pages::failure(&failure),
    }
}

/// A finished connect's result, for the browser that connected.
async fn result(
    ctx: web::Data<Context>,
    path: web::Path<(String, String, String)>,
    req: HttpRequest,
) -> HttpResponse {
    let (instance, key, connection_id) = path.into_inner();
    let cookie = |name: &str| req.cookie(name).map(|c| c.value().to_owned());
    match connect::result(&ctx, &instance, &key, &connection_id, cookie).await {
        Ok(connected) => pages::connected(&connected.username, &connected.instance),
        Err(failure) => pages::failure(&failure),
    }
}

fn back_to(mut url: Url, params: &[(&str, &str)]) -> String {
    url.query_pairs_mut().extend_pairs(params);
    url.into()
}

/// A redirect that is neither cached nor tells its target where the browser came from.
fn redirect(location: &str) -> HttpResponse {
    HttpResponse::Found()
        .insert_header((LOCATION, location))
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((REFERRER_POLICY, "no-referrer"))
        .finish()
}
