//! `/api/v4/personal_access_tokens/self` (`GET`, `DELETE`) and `.../self/rotate` (`POST`), as
//! GitLab's `lib/api/personal_access_tokens/self_{information,rotation}.rb` answer them:
//! - the token is read as `access_tokens` says; none or unknown: 401 `{"message":"401
//!   Unauthorized"}`; expired, or revoked: 401 `{"error":"invalid_token","error_description":
//!   "Token is expired. …"}` or `"Token was revoked. …"` with a `WWW-Authenticate: Bearer`
//!   header (GitLab checks expiry first). An OAuth token is no access token: `self` answers it
//!   400, `rotate` 403 or 405;
//! - `GET self`: any scope; the token's fields (`expires_at` a date, never null here);
//! - `DELETE self`: any scope; 204 and the token is revoked;
//! - `POST self/rotate` needs `api` or `self_rotate` (403 `insufficient_scope` otherwise);
//!   `expires_at` (query, form or JSON; `YYYY-MM-DD`) must be after today and at most 365 days
//!   ahead (400), and is a week from today when absent. The old token is revoked and its
//!   successor made in one step; 200 with the new token's fields and `token`. A revoked token
//!   presented here revokes every live token of its family after it (401);
//! - the rotation waits `rotation_commit_delay`, commits, waits `rotation_delay` and answers;
//!   like GitLab it finishes what it started when the client goes away. `rotation_fault`
//!   spoils it.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{NaiveDate, TimeDelta, Utc};
use serde_json::{Value, json};

use super::access_tokens::{
    AccessTokenRequest, AccessTokenSpec, Refusal, bearer, private_token, today,
};
use super::api::{arrived, json, with_session_cookie};
use super::{SUB_PATH, Shared, State};

/// How `POST /personal_access_tokens/self/rotate` fails, as GitLab or a proxy in front can.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum RotationFault {
    #[default]
    None,
    /// 500 with an HTML page; nothing rotated.
    ServerError,
    /// 429 with `Retry-After: 7`, before GitLab looks at the request; nothing rotated.
    Throttled,
    /// The rotation commits; its answer (status 200) breaks off before the new token.
    ResetAfterCommit,
    /// The rotation commits; a proxy in front answers 502 instead.
    BadGatewayAfterCommit,
}

/// How long GitLab lets a rotated token live when no `expires_at` is asked (`RotateService`).
const DEFAULT_DAYS: i64 = 7;
/// The furthest `expires_at` may be, in days from today.
const MAX_DAYS: i64 = 365;

/// Everything under `{SUB_PATH}/api/v4/personal_access_tokens/`.
pub(super) async fn endpoint(shared: Shared, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let rest = req.match_info().query("rest").to_owned();
    let method = req.method().as_str().to_owned();
    if (method.as_str(), rest.as_str()) == ("POST", "self/rotate") {
        return rotate(shared, req, body).await;
    }
    let mut state = shared.lock().unwrap();
    let (response, token_id) = match (method.as_str(), rest.as_str()) {
        ("GET", "self") => about_self(&mut state, &req),
        ("DELETE", "self") => revoke_self(&mut state, &req),
        (_, "self" | "self/rotate") => (message(405, "405 Method Not Allowed"), None),
        _ => (message(404, "404 Not Found"), None),
    };
    let status = response.status().as_u16();
    record(&mut state, &req, token_id, None, status);
    with_session_cookie(response)
}

/// The token a request presents, once GitLab accepts it.
enum Presented {
    AccessToken(usize),
    /// A live OAuth access token, with its scopes.
    OAuth(Vec<String>),
}

/// An answer, with the presented access token's id when GitLab knows the token.
type Decided = (HttpResponse, Option<u64>);

fn authenticate(
    state: &mut State,
    req: &HttpRequest,
    rotating: bool,
) -> Result<Presented, (Refusal, Option<u64>)> {
    let bearer = bearer(req);
    if let Some(token) = &bearer
        && let Some(record) = state.tokens.find(token).filter(|t| &t.access == token)
    {
        return match record.is_live() {
            true => Ok(Presented::OAuth(record.scopes.clone())),
            false => Err((Refusal::Unknown, None)),
        };
    }
    let Some(token) = private_token(req).or(bearer) else {
        return Err((Refusal::Unknown, None));
    };
    let tokens = &mut state.access_tokens;
    tokens
        .authenticate(&token)
        .map(Presented::AccessToken)
        .map_err(|refusal| {
            let index = tokens.find(&token);
            if let (true, Refusal::Revoked, Some(index)) = (rotating, &refusal, index) {
                tokens.revoke_descendants(index);
            }
            (refusal, index.map(|i| tokens.get(i).id))
        })
}

fn about_self(state: &mut State, req: &HttpRequest) -> Decided {
    match authenticate(state, req, false) {
        Err((refusal, id)) => (unauthorized(refusal), id),
        Ok(Presented::OAuth(_)) => (not_an_access_token(), None),
        Ok(Presented::AccessToken(index)) => {
            let record = state.access_tokens.get(index);
            let mut body = record.json();
            body["last_used_ips"] = json!([]);
            (json(200, body), Some(record.id))
        }
    }
}

fn revoke_self(state: &mut State, req: &HttpRequest) -> Decided {
    match authenticate(state, req, false) {
        Err((refusal, id)) => (unauthorized(refusal), id),
        Ok(Presented::OAuth(_)) => (not_an_access_token(), None),
        Ok(Presented::AccessToken(index)) => {
            let record = state.access_tokens.get_mut(index);
            record.revoked = true;
            (HttpResponse::NoContent().finish(), Some(record.id))
        }
    }
}

async fn rotate(shared: Shared, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let (fault, working, delay) = {
        let mut state = shared.lock().unwrap();
        let b = &state.behaviour;
        let knobs = (b.rotation_fault, b.rotation_commit_delay, b.rotation_delay);
        if knobs.0 == RotationFault::Throttled {
            let id = presented_id(&state, &req);
            record(&mut state, &req, id, None, 429);
            return HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", "7"))
                .body("Retry later\n");
        }
        state.access_tokens.seen.rotations_in_progress += 1;
        knobs
    };
    // GitLab finishes what it started even when the client goes away: the work, and the
    // commit, run in a task of their own that a dropped connection does not cancel.
    let decided = actix_web::rt::spawn(async move {
        if !working.is_zero() {
            actix_web::rt::time::sleep(working).await;
        }
        let mut state = shared.lock().unwrap();
        state.access_tokens.seen.rotations_in_progress -= 1;
        let (response, token_id, new_id) = rotate_step(&mut state, &req, &body, fault);
        let status = match (fault, new_id) {
            (RotationFault::ResetAfterCommit, Some(_)) => 200,
            (RotationFault::BadGatewayAfterCommit, Some(_)) => 502,
            _ => response.status().as_u16(),
        };
        record(&mut state, &req, token_id, new_id, status);
        (response, new_id.is_some())
    });
    let Ok((response, committed)) = decided.await else {
        return HttpResponse::InternalServerError().finish();
    };
    if !committed {
        return with_session_cookie(response);
    }
    actix_web::rt::time::sleep(delay).await;
    match fault {
        RotationFault::ResetAfterCommit => {
            let broken = futures_util::stream::iter([
                Ok::<_, std::io::Error>(web::Bytes::from_static(b"{\"id\":")),
                Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset")),
            ]);
            HttpResponse::Ok()
                .content_type("application/json")
                .streaming(broken)
        }
        RotationFault::BadGatewayAfterCommit => HttpResponse::BadGateway()
            .content_type("text/html")
            .body("<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"),
        _ => with_session_cookie(response),
    }
}

/// Decides a rotation, holding the state: the answer, the presented token's id, and the new
/// token's id when the rotation committed.
fn rotate_step(
    state: &mut State,
    req: &HttpRequest,
    body: &[u8],
    fault: RotationFault,
) -> (HttpResponse, Option<u64>, Option<u64>) {
    if fault == RotationFault::ServerError {
        let page =
            "<html><body><h1>500</h1>We're sorry, something went wrong on our end.</body></html>";
        let response = HttpResponse::InternalServerError()
            .content_type("text/html")
            .body(page);
        return (response, presented_id(state, req), None);
    }
    // Grape: authentication and scopes (`before`), then parameters, then the endpoint.
    let (index, scopes) = match authenticate(state, req, true) {
        Err((refusal, id)) => return (unauthorized(refusal), id, None),
        Ok(Presented::OAuth(scopes)) => (None, scopes),
        Ok(Presented::AccessToken(index)) => {
            (Some(index), state.access_tokens.get(index).scopes.clone())
        }
    };
    let id = index.map(|i| state.access_tokens.get(i).id);
    if !scopes.iter().any(|s| s == "api" || s == "self_rotate") {
        return (insufficient_scope(), id, None);
    }
    let asked = match requested_expiry(req, body) {
        Ok(asked) => asked,
        Err(()) => {
            return (
                json(400, json!({"error": "expires_at is invalid"})),
                id,
                None,
            );
        }
    };
    let Some(index) = index else {
        return (message(405, "405 Method Not Allowed"), None, None);
    };
    let today = today();
    let expires_at = asked.unwrap_or(today + TimeDelta::days(DEFAULT_DAYS));
    let latest = today + TimeDelta::days(MAX_DAYS);
    if expires_at <= today {
        return (
            message(400, "400 Bad request - Expires at must be in the future"),
            id,
            None,
        );
    }
    if expires_at > latest {
        let text = format!("400 Bad request - Expires at must be before {latest}");
        return (message(400, &text), id, None);
    }
    // No grace: the old token dies in the step that makes its successor.
    let old = state.access_tokens.get_mut(index);
    old.revoked = true;
    old.rotated = true;
    let old = old.clone();
    let spec = AccessTokenSpec {
        name: old.name,
        scopes: old.scopes,
        expires_at,
        created_at: Utc::now(),
        owner: old.owner,
    };
    let tokens = &mut state.access_tokens;
    let issued = tokens.issue(spec, Some(old.id));
    let new = tokens.get(issued).clone();
    tokens.seen.rotations += 1;
    *tokens
        .seen
        .rotations_by_family
        .entry(new.family)
        .or_default() += 1;
    let mut answer = new.json();
    answer["token"] = json!(new.token);
    (json(200, answer), Some(old.id), Some(new.id))
}

/// `expires_at` from the body (JSON or form) or the query: absent or empty is `None`; a value
/// that is no `YYYY-MM-DD` date is refused as Grape refuses it.
fn requested_expiry(req: &HttpRequest, body: &[u8]) -> Result<Option<NaiveDate>, ()> {
    let json_body = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let from_body = if json_body {
        let parsed: Value = serde_json::from_slice(body).map_err(|_| ())?;
        match parsed.get("expires_at") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(()),
        }
    } else {
        form_value(body, "expires_at")
    };
    let value = from_body.or_else(|| form_value(req.query_string().as_bytes(), "expires_at"));
    match value.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => NaiveDate::parse_from_str(&v, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| ()),
    }
}

fn form_value(encoded: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(encoded)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The id of the access token a request carries, without judging it.
fn presented_id(state: &State, req: &HttpRequest) -> Option<u64> {
    let token = private_token(req).or_else(|| bearer(req))?;
    let tokens = &state.access_tokens;
    tokens.find(&token).map(|i| tokens.get(i).id)
}

fn record(
    state: &mut State,
    req: &HttpRequest,
    token_id: Option<u64>,
    new_token_id: Option<u64>,
    status: u16,
) {
    state.access_tokens.seen.requests.push(AccessTokenRequest {
        method: req.method().to_string(),
        path: req.path().trim_start_matches(SUB_PATH).to_owned(),
        token_id,
        new_token_id,
        status,
    });
    let mut seen = arrived(req);
    seen.status = status;
    state.seen.api_requests.push(seen);
}

/// GitLab's 401 answers (`API::APIGuard`): a plain one for no or an unknown token, Rack
/// OAuth2's `invalid_token` for an expired or revoked one.
pub(super) fn unauthorized(refusal: Refusal) -> HttpResponse {
    let description = match refusal {
        Refusal::Unknown => return message(401, "401 Unauthorized"),
        Refusal::Expired => {
            "Token is expired. You can either do re-authorization or token refresh."
        }
        Refusal::Revoked => "Token was revoked. You have to re-authorize from the user.",
    };
    let challenge = format!(
        "Bearer realm=\"The API\", error=\"invalid_token\", error_description=\"{description}\""
    );
    HttpResponse::Unauthorized()
        .insert_header(("WWW-Authenticate", challenge))
        .json(json!({"error": "invalid_token", "error_description": description}))
}

fn insufficient_scope() -> HttpResponse {
    json(
        403,
        json!({
            "error": "insufficient_scope",
            "error_description": "The request requires higher privileges than provided by the access token.",
            "scope": "api self_rotate",
        }),
    )
}

fn not_an_access_token() -> HttpResponse {
    message(
        400,
        "400 Bad request - This endpoint requires token type to be a personal access token",
    )
}

fn message(status: u16, text: &str) -> HttpResponse {
    json(status, json!({"message": text}))
}
