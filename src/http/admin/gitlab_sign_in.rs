//! Signing in to the admin pages with GitLab: `GET /admin/sign-in/gitlab` sends the browser to
//! the sign-in instance with a cookie binding the sign-in to it; GitLab sends it back to the
//! instance's own callback (`/oauth/{name}/callback`), which hands admin states to `callback`.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, LOCATION, REFERRER_POLICY};
use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::layout::{Section, page, respond};
use super::session::{HOME, SESSION_COOKIE, cookie, safe_next};
use crate::service::Context;
use crate::service::admin_sessions::SESSION_LIFETIME;
use crate::service::admin_sign_in::{self, SignInFailure};
use crate::service::connect::CallbackParams;

/// Binds a sign-in to the browser that started it. Path-scoped to the callbacks, and
/// SameSite=Lax: the way back from GitLab is a top-level navigation from GitLab's site.
const BINDING_COOKIE: &str = "labgate_admin_gitlab";

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/sign-in/gitlab")
            .route(web::get().to(start))
            .default_service(web::to(super::method_not_allowed)),
    );
}

#[derive(Deserialize)]
struct StartQuery {
    next: Option<String>,
}

async fn start(req: HttpRequest, ctx: web::Data<Context>) -> HttpResponse {
    let next = web::Query::<StartQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().next)
        .filter(|n| safe_next(n));
    match admin_sign_in::start(&ctx, next).await {
        Ok(started) => {
            let binding = Cookie::build(BINDING_COOKIE, started.binding.expose_secret().to_owned())
                .path("/oauth/")
                .http_only(true)
                .same_site(SameSite::Lax)
                .secure(ctx.public_url.scheme() == "https")
                .max_age(CookieDuration::minutes(10))
                .finish();
            let mut response = HttpResponse::Found()
                .insert_header((LOCATION, started.authorize_url.as_str()))
                .insert_header((CACHE_CONTROL, "no-store"))
                .insert_header((REFERRER_POLICY, "no-referrer"))
                .finish();
            let _ = response.add_cookie(&binding);
            response
        }
        Err(failure) => failure_page(&failure),
    }
}

/// The callback, for a state that belongs to an admin sign-in. On success the session cookie
/// is set and a page sends the browser on: a redirect would carry the journey from GitLab's
/// site, and the browser would withhold the SameSite=Strict session cookie from its end.
pub(crate) async fn callback(
    ctx: &Context,
    req: &HttpRequest,
    instance: &str,
    state: &str,
    params: CallbackParams,
) -> HttpResponse {
    let binding = req.cookie(BINDING_COOKIE).map(|c| c.value().to_owned());
    let finished = admin_sign_in::finish(ctx, instance, state, params, binding).await;
    let mut response = match finished {
        Ok(signed_in) => {
            let next = signed_in
                .next
                .filter(|n| safe_next(n))
                .unwrap_or_else(|| HOME.to_owned());
            let body = html! {
                div.signin {
                    h1 { "Signed in" }
                    div.panel.ok role="status" {
                        "Signed in with GitLab as " strong { (signed_in.session.actor) } "."
                    }
                    p { a.button.primary href=(next) { "Continue" } }
                }
            };
            let mut response =
                respond(StatusCode::OK, page("Signed in", None, Section::None, body));
            response.headers_mut().insert(
                actix_web::http::header::REFRESH,
                actix_web::http::header::HeaderValue::from_str(&format!("0; url={next}"))
                    .unwrap_or_else(|_| actix_web::http::header::HeaderValue::from_static("0")),
            );
            let session = cookie(
                ctx,
                SESSION_COOKIE,
                signed_in.token.expose_secret(),
                "/admin",
                CookieDuration::seconds(SESSION_LIFETIME.num_seconds()),
            );
            if let Err(e) = response.add_cookie(&session) {
                tracing::error!(error.cause = %e, "cannot set the session cookie");
                return failure_page(&SignInFailure::Internal);
            }
            response
        }
        Err(failure) => failure_page(&failure),
    };
    let spent = Cookie::build(BINDING_COOKIE, "")
        .path("/oauth/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(ctx.public_url.scheme() == "https")
        .max_age(CookieDuration::ZERO)
        .finish();
    let _ = response.add_cookie(&spent);
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, "no-store".parse().expect("a header value"));
    // The callback's URL holds the code and state: no page it leads to may learn it.
    headers.insert(
        REFERRER_POLICY,
        "no-referrer".parse().expect("a header value"),
    );
    response
}

/// What went wrong, said to the person; never a code, state or token.
fn failure_page(failure: &SignInFailure) -> HttpResponse {
    let (status, message) = match failure {
        SignInFailure::NotAllowed { username } => (
            StatusCode::FORBIDDEN,
            format!(
                "GitLab user @{username} is not an administrator of labgate: they are in none of \
                 the admin groups and not among the admin users."
            ),
        ),
        SignInFailure::NotEnabled => (
            StatusCode::NOT_FOUND,
            "Signing in with GitLab is not enabled ([admin] sign_in_instance).".to_owned(),
        ),
        SignInFailure::UnknownInstance(name) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "Signing in with GitLab goes through the instance {name:?} ([admin] \
                 sign_in_instance), which is not registered. Sign in with the admin token."
            ),
        ),
        SignInFailure::UnknownState | SignInFailure::Expired => (
            StatusCode::BAD_REQUEST,
            "This sign-in is unknown, expired or already used. Start again.".to_owned(),
        ),
        SignInFailure::OtherBrowser => (
            StatusCode::FORBIDDEN,
            "This sign-in was started in another browser. Start again here.".to_owned(),
        ),
        SignInFailure::Denied => (
            StatusCode::FORBIDDEN,
            "You declined at GitLab; nothing was signed in.".to_owned(),
        ),
        SignInFailure::GitLabUnavailable => (
            StatusCode::BAD_GATEWAY,
            "GitLab could not be reached. Try again later.".to_owned(),
        ),
        SignInFailure::Internal => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong inside labgate; it has been logged.".to_owned(),
        ),
        SignInFailure::WrongInstance
        | SignInFailure::IssuerMismatch
        | SignInFailure::MissingCode
        | SignInFailure::GitLabRefused(_)
        | SignInFailure::Unverified => (
            StatusCode::BAD_REQUEST,
            "GitLab's answer could not be verified; nothing was signed in. Start again.".to_owned(),
        ),
    };
    let body = html! {
        div.signin {
            h1 { "Not signed in" }
            div.panel.bad role="alert" { (message) }
            p { a href="/admin/sign-in" { "Back to sign-in" } }
        }
    };
    respond(status, page("Not signed in", None, Section::None, body))
}
