//! The admin pages' stylesheet and script, kept as plain files beside this module and built
//! into the binary, so the pages load nothing from elsewhere and the CSP can stay `'self'`.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpResponse, web};

pub(super) const STYLESHEET_PATH: &str = "/admin/assets/admin.css";
pub(super) const SCRIPT_PATH: &str = "/admin/assets/admin.js";

const STYLESHEET: &str = include_str!("assets/admin.css");
/// Progressive enhancement only: copy buttons, and the redirect URL following the name as it
/// is typed. Every page works without it.
const SCRIPT: &str = include_str!("assets/admin.js");

/// Serves both files under the `/admin` scope, at `STYLESHEET_PATH` and `SCRIPT_PATH`.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/assets/admin.css",
        web::get().to(|| async { asset("text/css; charset=utf-8", STYLESHEET) }),
    )
    .route(
        "/assets/admin.js",
        web::get().to(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
    );
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, content_type))
        .insert_header((CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}
