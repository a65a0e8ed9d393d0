//! Signing in and out, and the two extractors every admin handler starts with: `SignedIn` for
//! pages, `Posted` for forms (a live session, the form, and this session's CSRF token checked).

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::dev::Payload;
use actix_web::http::header::LOCATION;
use actix_web::http::{Method, StatusCode};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use maud::html;
use secrecy::ExposeSecret;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::error::PageError;
use super::form::FormData;
use super::layout::{Errors, Input, Section, page, respond};
use crate::crypto::generate_token;
use crate::service::admin_sessions::{self, AdminSession, SESSION_LIFETIME};
use crate::service::{Context, ServiceError};

/// Holds the session token. Path-scoped to the admin pages, so the API never receives it.
pub(super) const SESSION_COOKIE: &str = "labgate_admin";
/// Holds a random value the sign-in form must repeat (no session exists yet to bind it to).
const SIGN_IN_COOKIE: &str = "labgate_sign_in";
const SIGN_IN_FORM_LIFETIME_SECONDS: i64 = 3600;
pub(super) const HOME: &str = "/admin/instances";

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/sign-in")
            .route(web::get().to(sign_in_page))
            .route(web::post().to(sign_in))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/sign-out")
            .route(web::post().to(sign_out))
            .default_service(web::to(super::method_not_allowed)),
    );
}

/// Proof of a live admin session. A handler that takes it cannot run without one: the
/// browser is sent to sign in instead.
pub(super) struct SignedIn(pub AdminSession);

impl Deref for SignedIn {
    type Target = AdminSession;

    fn deref(&self) -> &AdminSession {
        &self.0
    }
}

/// A posted form from a signed-in administrator whose CSRF token matched. Anything else is
/// refused before the handler runs, so nothing changes.
pub(super) struct Posted {
    pub session: AdminSession,
    pub form: FormData,
}

type Extracting<T> = Pin<Box<dyn Future<Output = Result<T, PageError>>>>;

impl FromRequest for SignedIn {
    type Error = PageError;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { session(&req).await.map(SignedIn) })
    }
}

impl FromRequest for Posted {
    type Error = PageError;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let (req, payload) = (req.clone(), payload.take());
        Box::pin(async move {
            let session = session(&req).await?;
            let form = FormData::read(&req, payload).await?;
            if !form
                .get("csrf")
                .is_some_and(|token| session.csrf_matches(token))
            {
                tracing::warn!(http.path = %req.path(), "admin form refused: no valid CSRF token");
                return Err(PageError::Csrf);
            }
            Ok(Posted { session, form })
        })
    }
}

async fn session(req: &HttpRequest) -> Result<AdminSession, PageError> {
    let ctx = context(req)?;
    let found = match req.cookie(SESSION_COOKIE) {
        Some(cookie) if !cookie.value().is_empty() => {
            admin_sessions::find(&ctx, cookie.value()).await?
        }
        _ => None,
    };
    found.ok_or_else(|| PageError::SignIn {
        next: (req.method() == Method::GET)
            .then(|| req.uri().path_and_query().map(|p| p.as_str().to_owned()))
            .flatten()
            .filter(|next| safe_next(next)),
    })
}

fn context(req: &HttpRequest) -> Result<web::Data<Context>, PageError> {
    req.app_data::<web::Data<Context>>()
        .cloned()
        .ok_or_else(|| {
            PageError::Service(ServiceError::Internal(anyhow::anyhow!(
                "the application context is missing"
            )))
        })
}

/// Only a path of the admin pages may be returned to after sign-in: no open redirect.
pub(super) fn safe_next(next: &str) -> bool {
    (next == "/admin" || next.starts_with("/admin/"))
        && next.len() <= 512
        && !next.contains("//")
        && !next.contains('\\')
        && next.chars().all(|c| c.is_ascii_graphic())
}

#[derive(Deserialize)]
struct SignInQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

async fn sign_in_page(
    req: HttpRequest,
    ctx: web::Data<Context>,
    query: web::Query<SignInQuery>,
) -> Result<HttpResponse, PageError> {
    let query = query.into_inner();
    let next = query.next.filter(|n| safe_next(n));
    if session(&req).await.is_ok() {
        return Ok(see_other(next.as_deref().unwrap_or(HOME)));
    }
    let notice = query.signed_out.is_some().then_some("You have signed out.");
    Ok(sign_in_form(
        &ctx,
        StatusCode::OK,
        next.as_deref(),
        notice,
        &Errors::default(),
    ))
}

async fn sign_in(
    req: HttpRequest,
    ctx: web::Data<Context>,
    payload: web::Payload,
) -> Result<HttpResponse, PageError> {
    let form = FormData::read(&req, payload.into_inner()).await?;
    let next = form.given("next").filter(|n| safe_next(n));
    let expected = req.cookie(SIGN_IN_COOKIE);
    let presented = form.text("csrf");
    let fresh = expected.is_some_and(|cookie| {
        !presented.is_empty()
            && cookie.value().len() == presented.len()
            && bool::from(cookie.value().as_bytes().ct_eq(presented.as_bytes()))
    });
    if !fresh {
        let mut errors = Errors::default();
        errors.general.push(
            "The sign-in form had expired or did not come from this page. Enter the token again."
                .to_owned(),
        );
        return Ok(sign_in_form(
            &ctx,
            StatusCode::FORBIDDEN,
            next.as_deref(),
            None,
            &errors,
        ));
    }
    match admin_sessions::sign_in(&ctx, &form.text("token")).await {
        Ok((token, _)) => {
            let lifetime = CookieDuration::seconds(SESSION_LIFETIME.num_seconds());
            let mut response = see_other(next.as_deref().unwrap_or(HOME));
            let cookies = [
                cookie(
                    &ctx,
                    SESSION_COOKIE,
                    token.expose_secret(),
                    "/admin",
                    lifetime,
                ),
                cookie(
                    &ctx,
                    SIGN_IN_COOKIE,
                    "",
                    "/admin/sign-in",
                    CookieDuration::ZERO,
                ),
            ];
            for cookie in cookies {
                response.add_cookie(&cookie).map_err(|e| {
                    PageError::Service(ServiceError::Internal(anyhow::anyhow!(
                        "cannot set a cookie: {e}"
                    )))
                })?;
            }
            Ok(response)
        }
        Err(ServiceError::Unauthenticated(message)) => {
            let mut errors = Errors::default();
            errors.add("token", message);
            Ok(sign_in_form(
                &ctx,
                StatusCode::UNAUTHORIZED,
                next.as_deref(),
                None,
                &errors,
            ))
        }
        Err(other) => Err(other.into()),
    }
}

async fn sign_out(posted: Posted, ctx: web::Data<Context>) -> Result<HttpResponse, PageError> {
    admin_sessions::sign_out(&ctx, &posted.session).await?;
    let mut response = see_other("/admin/sign-in?signed_out=1");
    let expired = cookie(&ctx, SESSION_COOKIE, "", "/admin", CookieDuration::ZERO);
    response.add_cookie(&expired).map_err(|e| {
        PageError::Service(ServiceError::Internal(anyhow::anyhow!(
            "cannot clear a cookie: {e}"
        )))
    })?;
    Ok(response)
}

/// The sign-in form, with a fresh value for its cookie and hidden field. The token field is
/// never filled in again.
fn sign_in_form(
    ctx: &Context,
    status: StatusCode,
    next: Option<&str>,
    notice: Option<&str>,
    errors: &Errors,
) -> HttpResponse {
    let nonce = generate_token("");
    let nonce = nonce.expose_secret();
    let body = html! {
        div.signin {
            h1 { "Sign in to labgate" }
            @if let Some(notice) = notice { div.panel.ok role="status" { (notice) } }
            @for message in &errors.general { div.panel.bad role="alert" { (message) } }
            @if ctx.gitlab_sign_in.is_some() {
                p {
                    a.button.primary href=(gitlab_sign_in_href(next)) { "Sign in with GitLab" }
                }
                p.hint { "Or, as break-glass, with the admin token:" }
            }
            form method="post" action="/admin/sign-in" {
                input type="hidden" name="csrf" value=(nonce);
                @if let Some(next) = next { input type="hidden" name="next" value=(next); }
                (Input::text("token", "Admin token", "")
                    .kind("password")
                    .required()
                    .hint(html! {
                        "The token set as " code { "LABGATE__ADMIN__TOKEN" }
                        ", or printed once when labgate first started."
                    })
                    .render(errors))
                button.primary type="submit" { "Sign in" }
            }
        }
    };
    let mut response = respond(status, page("Sign in", None, Section::None, body));
    let form_cookie = cookie(
        ctx,
        SIGN_IN_COOKIE,
        nonce,
        "/admin/sign-in",
        CookieDuration::seconds(SIGN_IN_FORM_LIFETIME_SECONDS),
    );
    if let Err(e) = response.add_cookie(&form_cookie) {
        tracing::error!(error.cause = %e, "cannot set the sign-in cookie");
    }
    response
}

/// HttpOnly, SameSite=Strict, Secure when labgate is reached over https, and expiring.
pub(super) fn cookie(
    ctx: &Context,
    name: &'static str,
    value: &str,
    path: &'static str,
    max_age: CookieDuration,
) -> Cookie<'static> {
    Cookie::build(name, value.to_owned())
        .path(path)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(ctx.public_url.scheme() == "https")
        .max_age(max_age)
        .finish()
}

/// The "Sign in with GitLab" link, carrying where to go afterwards.
fn gitlab_sign_in_href(next: Option<&str>) -> String {
    match next {
        Some(next) => format!(
            "/admin/sign-in/gitlab?next={}",
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        ),
        None => "/admin/sign-in/gitlab".to_owned(),
    }
}

pub(super) fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((LOCATION, location.to_owned()))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_admin_paths_are_returned_to() {
        assert!(safe_next("/admin/instances?x=1"));
        assert!(safe_next("/admin"));
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/admin//evil.example",
            "/administrator",
            "/admin/\\evil",
            "/admin/a b",
        ] {
            assert!(!safe_next(bad), "{bad}");
        }
    }
}
