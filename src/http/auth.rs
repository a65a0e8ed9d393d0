//! Who is calling: the administrator (admin token) or a service (service token).

use std::future::{Future, Ready, ready};
use std::pin::Pin;

use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::ApiError;
use crate::service::principal::{self, Service, SubjectBinding, VerifiedToken};
use crate::service::{Context, ServiceError};

/// Proof that the request carries the admin token. A handler that takes this as its first
/// argument cannot run for anyone else.
pub(super) struct Admin;

/// A service authenticated by a valid service token; its policy comes along, and the one
/// subject the token may act for when it is bound to one.
pub(super) struct ServicePrincipal(pub Service, pub SubjectBinding);

/// A valid service token, its service not yet looked up: for a use case that reads the
/// service's row together with its own data and admits it there.
pub(super) struct ServiceBearer(pub VerifiedToken);

/// Either of the two, for routes both may call.
pub(super) enum Caller {
    Admin,
    Service(Box<Service>, SubjectBinding),
}

type Extracting<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(context(req).and_then(|ctx| {
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
        }))
    }
}

impl FromRequest for ServicePrincipal {
    type Error = ApiError;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let (ctx, token) = (context(req), bearer_token(req).map(str::to_owned));
        Box::pin(async move {
            let (service, binding) = service_for(&*ctx?, token).await?;
            Ok(Self(service, binding))
        })
    }
}

impl FromRequest for ServiceBearer {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(context(req).and_then(|ctx| {
            let token = bearer_token(req).ok_or_else(missing_service_token)?;
            Ok(Self(principal::verify_token(&ctx, token)?))
        }))
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let (ctx, token) = (context(req), bearer_token(req).map(str::to_owned));
        Box::pin(async move {
            let ctx = ctx?;
            if token.as_deref().is_some_and(|t| ctx.admin_token.matches(t)) {
                return Ok(Caller::Admin);
            }
            match service_for(&ctx, token).await {
                Ok((service, binding)) => Ok(Caller::Service(Box::new(service), binding)),
                Err(_) => Err(ApiError::unauthorized(
                    "send the admin token or a valid service token as Authorization: Bearer <token>",
                )),
            }
        })
    }
}

async fn service_for(
    ctx: &Context,
    token: Option<String>,
) -> Result<(Service, SubjectBinding), ApiError> {
    let token = token.ok_or_else(missing_service_token)?;
    Ok(principal::authenticate(ctx, &token).await?)
}

fn missing_service_token() -> ApiError {
    ApiError::from(ServiceError::Unauthenticated(
        "send a service token as Authorization: Bearer <token>; get one from POST /api/v1/service-token".into(),
    ))
}

fn context(req: &HttpRequest) -> Result<web::Data<Context>, ApiError> {
    req.app_data::<web::Data<Context>>()
        .cloned()
        .ok_or_else(|| ApiError::unauthorized("authentication is not available"))
}

fn bearer_token(req: &HttpRequest) -> Option<&str> {
    // Any text: a token with bytes no token has is refused by its check, as any wrong token is.
    // (`HeaderValue::to_str` tests the ~200 bytes of a service token one at a time, on every
    // handout; UTF-8 validation takes them a word at a time.)
    let value = std::str::from_utf8(req.headers().get(AUTHORIZATION)?.as_bytes()).ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}
