use std::future::{Ready, ready};

use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::ApiError;
use crate::service::Context;

/// Proof that the request carries the admin token. A handler that takes this as its first
/// argument cannot run for anyone else.
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<Admin, ApiError> {
    let ctx = req
        .app_data::<web::Data<Context>>()
        .ok_or_else(|| ApiError::unauthorized("authentication is not available"))?;
    let token = bearer_token(req).ok_or_else(|| {
        ApiError::unauthorized("send the admin token as Authorization: Bearer <token>")
    })?;
    if ctx.admin_token.matches(token) {
        Ok(Admin)
    } else {
        Err(ApiError::unauthorized(
            "the bearer token is not the admin token",
        ))
    }
}

fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}
