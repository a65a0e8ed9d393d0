//! The admin web pages under `/admin`: server-rendered with maud, usable without JavaScript.
//! Sign-in with the admin token opens a session (cookie); every form carries that session's
//! CSRF token. Pages call the same use cases as the admin API, so they give the same messages
//! and add no second path to the data.

mod access_grants;
mod access_tokens;
mod assets;
mod audit;
mod connections;
mod error;
mod form;
mod gitlab_sign_in;
mod instances;
mod layout;
mod services;
mod session;

use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpResponse, ResponseError, web};

pub(super) use error::PageError;
pub(super) use gitlab_sign_in::callback as gitlab_sign_in_callback;
use session::{SignedIn, see_other};

/// No script or style but labgate's own, no framing, no form sent elsewhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .wrap(
                DefaultHeaders::new()
                    .add(("Cache-Control", "no-store"))
                    .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
                    .add(("Referrer-Policy", "no-referrer"))
                    .add(("X-Content-Type-Options", "nosniff"))
                    .add(("X-Frame-Options", "DENY")),
            )
            .route("", web::get().to(home))
            .route("/", web::get().to(home))
            .configure(assets::routes)
            .configure(session::routes)
            .configure(gitlab_sign_in::routes)
            .configure(instances::routes)
            .configure(services::routes)
            .configure(access_tokens::routes)
            .configure(connections::routes)
            .configure(access_grants::routes)
            .configure(audit::routes)
            .default_service(web::to(not_found)),
    );
}

async fn home(_: SignedIn) -> HttpResponse {
    see_other("/admin/instances")
}

/// Unknown admin paths: sign in first, so probing reveals nothing.
async fn not_found(_: SignedIn) -> Result<HttpResponse, PageError> {
    Err(PageError::NotFound(
        "There is no admin page at this address.".to_owned(),
    ))
}

async fn method_not_allowed() -> HttpResponse {
    PageError::MethodNotAllowed.error_response()
}
