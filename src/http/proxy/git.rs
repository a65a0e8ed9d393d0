//! `/git/{instance}/{project}.git/…`: git's smart HTTP (protocol v0 and v2), with an access
//! grant as the Basic password. Answers are plain text, which git shows to its user.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::ExposeSecret;

use super::super::ApiError;
use super::instance_and_rest;
use super::stream::{Relayed, request_body};
use crate::domain::{GitCall, Refused, judge_git};
use crate::service::proxy::{self, CallRecord, Channel, ProxyPass};
use crate::service::{Context, ServiceError};

/// Headers of git's requests that GitLab needs; nothing else of the caller's goes through.
const FORWARDED_REQUEST_HEADERS: &[&str] = &[
    "accept",
    "accept-encoding",
    "content-type",
    "content-encoding",
    "content-length",
    "git-protocol",
];
const FORWARDED_RESPONSE_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "cache-control",
    "expires",
    "pragma",
];

pub(super) async fn forward(
    request: HttpRequest,
    payload: web::Payload,
    ctx: web::Data<Context>,
) -> HttpResponse {
    let Some((instance, rest)) = instance_and_rest(&request, "/git/") else {
        return plain(StatusCode::NOT_FOUND, "Not found");
    };
    let call = match judge_git(request.method().as_str(), rest, request.query_string()) {
        Ok(call) => call,
        Err(Refused::NotGit) => return plain(StatusCode::NOT_FOUND, "Not found"),
        Err(Refused::Malformed(why)) => return plain(StatusCode::BAD_REQUEST, &why),
        Err(Refused::Outside(why)) => return plain(StatusCode::FORBIDDEN, &why),
    };
    let Some(presented) = basic_password(&request) else {
        proxy::count_unauthenticated(&ctx, Channel::Git, 401);
        return unauthorized("labgate: send an access grant token (lgp_…) as the password");
    };
    let grant = match proxy::open_grant(&ctx, &presented, instance).await {
        Ok(grant) => grant,
        Err(error) => {
            proxy::count_unauthenticated(&ctx, Channel::Git, 401);
            return refusal(error);
        }
    };
    let path = call.upstream_path();
    let method = request.method().as_str();
    let refused = |record: CallRecord, ctx: &Context, error: ServiceError| {
        let response = refusal(error);
        record.finish(ctx, response.status().as_u16(), 0);
        response
    };
    if let Err(error) = proxy::within_grant(&grant, &call.project, call.needs) {
        let record =
            CallRecord::refused(&grant, Channel::Git, method, &path).with_project(&call.project);
        return refused(record, &ctx, error);
    }
    let record =
        CallRecord::refused(&grant, Channel::Git, method, &path).with_project(&call.project);
    let mut pass = match proxy::pass_for(&ctx, grant, Channel::Git, call.needs).await {
        Ok(pass) => pass,
        Err(error) => return refused(record, &ctx, error),
    };
    let record = pass.record(method, Some(&call.project), &path);
    if let Err(error) = pass.allows(&call.project) {
        return refused(record, &ctx, error);
    }
    // GitLab serves a renamed project at its old path too: the project git will reach is
    // checked against the grant as well.
    match proxy::resolve_for_git(&ctx, &mut pass, &call.project).await {
        Ok(Some(reached)) => {
            if let Err(error) = pass.allows(&reached) {
                return refused(record, &ctx, error);
            }
        }
        Ok(None) => {
            record.finish(&ctx, 404, 0);
            return plain(
                StatusCode::NOT_FOUND,
                &format!(
                    "labgate: GitLab shows {} no project {}",
                    pass.grant.subject, call.project
                ),
            );
        }
        Err(error) => return refused(record, &ctx, error),
    }
    let is_rpc = request.method() == actix_web::http::Method::POST;
    let sent = send(&pass, &call, &request, is_rpc.then_some(payload)).await;
    let upstream = match sent {
        // The ref advertisement has no body: after a rotation elsewhere, once more.
        Ok(response) if response.status() == 401 && !is_rpc => {
            match proxy::after_rejection(&ctx, &pass).await {
                Ok(Some(fresher)) => send(&fresher, &call, &request, None).await,
                Ok(None) => Ok(response),
                Err(error) => return refused(record, &ctx, error),
            }
        }
        other => other,
    };
    let upstream = match upstream {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!(instance.name = %pass.grant.instance, error.cause = %e, "git call to GitLab failed");
            let response = plain(
                StatusCode::BAD_GATEWAY,
                "labgate: GitLab could not be reached",
            );
            record.finish(&ctx, 502, 0);
            return response;
        }
    };
    // GitLab refused the person's own token: git must not ask its user for a password.
    if upstream.status() == 401 {
        record.finish(&ctx, 502, 0);
        return plain(
            StatusCode::BAD_GATEWAY,
            "labgate: GitLab refused the person's token (revoked in GitLab?)",
        );
    }
    relay(upstream, record, ctx)
}

async fn send(
    pass: &ProxyPass,
    call: &GitCall,
    request: &HttpRequest,
    body: Option<web::Payload>,
) -> Result<reqwest::Response, reqwest::Error> {
    let mut url = format!(
        "{}{}",
        pass.credentials.base_url.trim_end_matches('/'),
        call.upstream_path()
    );
    if let Some(query) = call.upstream_query() {
        url = format!("{url}?{query}");
    }
    let method = if body.is_some() {
        reqwest::Method::POST
    } else {
        reqwest::Method::GET
    };
    let mut upstream = pass.http.request(method, url).basic_auth(
        "oauth2",
        Some(pass.credentials.access_token.expose_secret()),
    );
    for name in FORWARDED_REQUEST_HEADERS {
        for value in request.headers().get_all(*name) {
            upstream = upstream.header(*name, value.as_bytes());
        }
    }
    if let Some(body) = body {
        upstream = upstream.body(request_body(body));
    }
    upstream.send().await
}

fn relay(upstream: reqwest::Response, record: CallRecord, ctx: web::Data<Context>) -> HttpResponse {
    let status = upstream.status().as_u16();
    let mut response =
        HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY));
    for name in FORWARDED_RESPONSE_HEADERS {
        for value in upstream.headers().get_all(*name) {
            if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                response.append_header((name, value.as_bytes()));
            }
        }
    }
    let body = Relayed::new(Box::pin(upstream.bytes_stream()), record, ctx, status);
    response.streaming(body)
}

/// The password of `Authorization: Basic`, whatever the user name.
fn basic_password(request: &HttpRequest) -> Option<String> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (_, password) = decoded.split_once(':')?;
    (!password.is_empty()).then(|| password.to_owned())
}

/// What git is told when the proxy refuses: a status git understands and a line it shows.
fn refusal(error: ServiceError) -> HttpResponse {
    match error {
        ServiceError::Unauthenticated(detail) => unauthorized(&format!("labgate: {detail}")),
        ServiceError::Forbidden { detail, .. }
        | ServiceError::NotConnected(detail)
        | ServiceError::ReauthorizationRequired(detail) => {
            plain(StatusCode::FORBIDDEN, &format!("labgate: {detail}"))
        }
        ServiceError::GitLabUnavailable {
            detail,
            retry_after,
        } => {
            let mut response = plain(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("labgate: {detail}"),
            );
            if let Ok(value) = retry_after.as_secs().max(1).to_string().parse() {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        other => ApiError::from(other).error_response(),
    }
}

fn unauthorized(message: &str) -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"labgate\""))
        .content_type("text/plain; charset=utf-8")
        .body(format!("{message}\n"))
}

fn plain(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(format!("{message}\n"))
}
