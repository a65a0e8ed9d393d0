//! `/gitlab/{instance}/api/v4/…`: GitLab's REST API for one project (or `GET /user`), with an
//! access grant as `Authorization: Bearer` or `PRIVATE-TOKEN`. Refusals are problem+json.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use secrecy::ExposeSecret;

use super::super::ApiError;
use super::instance_and_rest;
use super::stream::{Relayed, request_body};
use crate::domain::{Access, ApiCall, ApiTarget, ProjectRef, Refused, judge_api};
use crate::oauth;
use crate::service::proxy::{self, CallRecord, Channel, ProxyPass};
use crate::service::{Context, ServiceError};

const API_PREFIX: &str = "/api/v4";

/// Headers of the caller's request that GitLab may see. Credentials (`Authorization`,
/// `PRIVATE-TOKEN`, `Job-Token`, `Cookie`), `Sudo` and method overrides never go through.
const FORWARDED_REQUEST_HEADERS: &[&str] = &[
    "accept",
    "accept-encoding",
    "accept-language",
    "content-type",
    "content-encoding",
    "content-length",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "range",
];

/// Headers of GitLab's answer that never reach the caller: cookies, and what belongs to one
/// hop of HTTP.
const DROPPED_RESPONSE_HEADERS: &[&str] = &[
    "set-cookie",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "trailer",
    "content-length",
];

/// Fields of `GET /projects/{id}` that are secrets: the runner registration token.
const HIDDEN_PROJECT_FIELDS: &[&str] = &["runners_token"];

/// Query parameters that carry credentials or change who GitLab acts as: refused, not dropped,
/// so the caller learns why the call did not do what it asked.
const REFUSED_QUERY_PARAMETERS: &[&str] = &[
    "private_token",
    "access_token",
    "job_token",
    "sudo",
    "_method",
];

pub(super) async fn forward(
    request: HttpRequest,
    payload: web::Payload,
    ctx: web::Data<Context>,
) -> HttpResponse {
    match judged_and_forwarded(&request, payload, &ctx).await {
        Ok(response) => response,
        Err(error) => error.error_response(),
    }
}

async fn judged_and_forwarded(
    request: &HttpRequest,
    payload: web::Payload,
    ctx: &web::Data<Context>,
) -> Result<HttpResponse, ApiError> {
    let (instance, rest) = instance_and_rest(request, "/gitlab/").ok_or_else(|| {
        ApiError::not_found("no_such_endpoint", "there is no endpoint at this path")
    })?;
    let api_path = rest.strip_prefix(API_PREFIX).ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "outside_grant",
            "only GitLab's REST API under /api/v4 is forwarded",
        )
    })?;
    let method = request.method().as_str();
    let call = judge_api(method, api_path).map_err(|refused| match refused {
        Refused::Malformed(why) => ApiError::new(StatusCode::BAD_REQUEST, "malformed_path", why),
        other => ApiError::new(StatusCode::FORBIDDEN, "outside_grant", other.to_string()),
    })?;
    refuse_query_credentials(request.query_string())?;
    let presented = grant_token(request).ok_or_else(|| {
        proxy::count_unauthenticated(ctx, Channel::Api, 401);
        unauthenticated(
            "send an access grant token (lgp_…) as Authorization: Bearer <token> or PRIVATE-TOKEN",
        )
    })?;
    let grant = proxy::open_grant(ctx, &presented, instance)
        .await
        .map_err(|error| {
            proxy::count_unauthenticated(ctx, Channel::Api, 401);
            refusal(error)
        })?;
    let path_for_audit = format!("{API_PREFIX}{}", audit_path(&call));
    let mut record = CallRecord::refused(&grant, Channel::Api, method, &path_for_audit);
    if let ApiTarget::Project(ProjectRef::Path(project)) = &call.target {
        record = record.with_project(project);
        if let Err(error) = proxy::within_grant(&grant, project, call.needs) {
            return Err(finish_refused(record, ctx, error));
        }
    }
    let mut pass = match proxy::pass_for(ctx, grant, Channel::Api, call.needs).await {
        Ok(pass) => pass,
        Err(error) => return Err(finish_refused(record, ctx, error)),
    };
    // The project GitLab will act on: a numeric id shows no path, and an old path leads to
    // wherever its project was renamed or moved.
    let project = match &call.target {
        ApiTarget::User => None,
        ApiTarget::Project(asked) => match proxy::resolve(ctx, &mut pass, asked).await {
            Ok(Some(project)) => Some(project),
            Ok(None) => {
                let error = ServiceError::Forbidden {
                    code: "outside_grant",
                    detail: format!(
                        "project {asked} is not one this access grant names, or GitLab does \
                         not show it to the grant's person"
                    ),
                };
                return Err(finish_refused(record, ctx, error));
            }
            Err(error) => return Err(finish_refused(record, ctx, error)),
        },
    };
    let record = pass.record(method, project.as_ref(), &path_for_audit);
    if let Some(project) = &project
        && let Err(error) = pass.allows(project)
    {
        return Err(finish_refused(record, ctx, error));
    }
    let target = upstream_path(&call);
    let reads = call.needs == Access::Read;
    let body = (!reads).then_some(payload);
    let whole_project =
        method == "GET" && matches!(call.target, ApiTarget::Project(_)) && call.rest.is_empty();
    let sent = send(&pass, &target, request, body, whole_project).await;
    let upstream = match sent {
        // Reads have no body: after a rotation elsewhere, once more with the newer token.
        Ok(response) if response.status() == 401 && reads => {
            match proxy::after_rejection(ctx, &pass).await {
                Ok(Some(fresher)) => send(&fresher, &target, request, None, whole_project).await,
                Ok(None) => Ok(response),
                Err(error) => return Err(finish_refused(record, ctx, error)),
            }
        }
        other => other,
    };
    match upstream {
        // GitLab refused the person's own token, not the caller's grant: the caller must not
        // take GitLab's 401 for its own.
        Ok(response) if response.status() == 401 => {
            record.finish(ctx, 502, 0);
            Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "gitlab_rejected_token",
                "GitLab refused the person's token (revoked in GitLab?); labgate could not retry",
            ))
        }
        Ok(response) if whole_project => relay_project_itself(response, &pass, record, ctx).await,
        Ok(response) => Ok(relay(response, &pass, record, ctx.clone())),
        Err(e) => {
            tracing::warn!(instance.name = %pass.grant.instance, error.cause = %e, "API call to GitLab failed");
            record.finish(ctx, 502, 0);
            Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "gitlab_unreachable",
                "GitLab could not be reached; try again",
            ))
        }
    }
}

/// The path to ask GitLab for, below `/api/v4`: the project as parsed, the rest as received.
fn upstream_path(call: &ApiCall) -> String {
    match &call.target {
        ApiTarget::User => "/user".to_owned(),
        ApiTarget::Project(ProjectRef::Path(project)) => {
            format!("/projects/{}{}", project.encoded(), call.rest)
        }
        ApiTarget::Project(ProjectRef::Id(id)) => format!("/projects/{id}{}", call.rest),
    }
}

fn audit_path(call: &ApiCall) -> String {
    match &call.target {
        ApiTarget::User => "/user".to_owned(),
        ApiTarget::Project(project) => format!("/projects/{project}{}", call.rest_decoded),
    }
}

async fn send(
    pass: &ProxyPass,
    target: &str,
    request: &HttpRequest,
    body: Option<web::Payload>,
    whole_project: bool,
) -> Result<reqwest::Response, reqwest::Error> {
    let mut url = format!(
        "{}{API_PREFIX}{target}",
        pass.credentials.base_url.trim_end_matches('/')
    );
    if !request.query_string().is_empty() {
        url = format!("{url}?{}", request.query_string());
    }
    let method = reqwest::Method::from_bytes(request.method().as_str().as_bytes())
        .unwrap_or(reqwest::Method::GET);
    let mut upstream = pass
        .http
        .request(method, url)
        .bearer_auth(pass.credentials.access_token.expose_secret());
    for name in FORWARDED_REQUEST_HEADERS {
        // The project's own description is read here, so it must come uncompressed.
        if whole_project && *name == "accept-encoding" {
            continue;
        }
        for value in request.headers().get_all(*name) {
            upstream = upstream.header(*name, value.as_bytes());
        }
    }
    if let Some(body) = body {
        upstream = upstream.body(request_body(body));
    }
    upstream.send().await
}

fn relay(
    upstream: reqwest::Response,
    pass: &ProxyPass,
    record: CallRecord,
    ctx: web::Data<Context>,
) -> HttpResponse {
    let status = upstream.status().as_u16();
    let mut response = answer_head(&upstream, pass, &ctx);
    let length = upstream.content_length();
    let body = Relayed::new(Box::pin(upstream.bytes_stream()), record, ctx, status);
    match length {
        Some(length) => response.no_chunking(length).streaming(body),
        None => response.streaming(body),
    }
}

/// `GET /projects/{id}` shows the project's maintainers its runner registration token: the
/// one answer read whole (a project's description is small) and relayed without it.
async fn relay_project_itself(
    upstream: reqwest::Response,
    pass: &ProxyPass,
    record: CallRecord,
    ctx: &Context,
) -> Result<HttpResponse, ApiError> {
    let status = upstream.status().as_u16();
    let mut response = answer_head(&upstream, pass, ctx);
    let body = oauth::body_within(upstream, oauth::PROJECT_ANSWER_LIMIT).await;
    let filtered = match (status, body) {
        (200, Some(body)) => {
            serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .map(|mut project| {
                    if let Some(fields) = project.as_object_mut() {
                        for secret in HIDDEN_PROJECT_FIELDS {
                            fields.remove(*secret);
                        }
                    }
                    project.to_string().into_bytes()
                })
        }
        (_, body) => body,
    };
    let Some(body) = filtered else {
        record.finish(ctx, 502, 0);
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "gitlab_unreadable",
            "GitLab's description of the project could not be read",
        ));
    };
    record.finish(ctx, status, body.len() as u64);
    Ok(response.body(body))
}

/// The answer's status and GitLab's headers, cleaned: no cookies, nothing of one hop's, and
/// pagination links that lead back through labgate.
fn answer_head(
    upstream: &reqwest::Response,
    pass: &ProxyPass,
    ctx: &Context,
) -> actix_web::HttpResponseBuilder {
    let status = upstream.status().as_u16();
    let mut response =
        HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY));
    let gitlab_api = format!(
        "{}{API_PREFIX}",
        pass.credentials.base_url.trim_end_matches('/')
    );
    let labgate_api = format!(
        "{}/gitlab/{}{API_PREFIX}",
        ctx.public_base(),
        pass.grant.instance
    );
    for (name, value) in upstream.headers() {
        if DROPPED_RESPONSE_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let Ok(name) = HeaderName::from_bytes(name.as_str().as_bytes()) else {
            continue;
        };
        let value = if name == header::LINK {
            let rewritten = value.to_str().ok().and_then(|links| {
                HeaderValue::from_str(&links.replace(&gitlab_api, &labgate_api)).ok()
            });
            match rewritten {
                Some(value) => value,
                None => continue,
            }
        } else {
            match HeaderValue::from_bytes(value.as_bytes()) {
                Ok(value) => value,
                Err(_) => continue,
            }
        };
        response.append_header((name, value));
    }
    response
}

/// The access grant token from `Authorization: Bearer` or `PRIVATE-TOKEN`.
fn grant_token(request: &HttpRequest) -> Option<String> {
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    bearer
        .or_else(|| {
            headers
                .get("private-token")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_owned())
        })
        .filter(|t| !t.is_empty())
}

/// Parameter names as GitLab's Rack reads them: pairs split on `&` and `;`, spaces after a
/// separator dropped, and `name[]`/`name[key]` naming `name`.
fn refuse_query_credentials(query: &str) -> Result<(), ApiError> {
    for pair in query.split(['&', ';']) {
        let raw_name = pair.trim_start_matches(' ').split('=').next().unwrap_or("");
        let decoded: String = url::form_urlencoded::parse(raw_name.as_bytes())
            .map(|(name, _)| name.into_owned())
            .collect();
        let name = decoded.split('[').next().unwrap_or("").trim();
        if REFUSED_QUERY_PARAMETERS
            .iter()
            .any(|refused| name.eq_ignore_ascii_case(refused))
        {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "refused_parameter",
                format!(
                    "the query parameter {name:?} is not forwarded: labgate authenticates to \
                     GitLab itself, as the grant's person"
                ),
            ));
        }
    }
    Ok(())
}

fn unauthenticated(detail: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "invalid_access_grant", detail)
}

fn refusal(error: ServiceError) -> ApiError {
    match error {
        ServiceError::Unauthenticated(detail) => unauthenticated(&detail),
        other => ApiError::from(other),
    }
}

fn finish_refused(record: CallRecord, ctx: &Context, error: ServiceError) -> ApiError {
    let error = refusal(error);
    record.finish(ctx, error.status_code().as_u16(), 0);
    error
}
