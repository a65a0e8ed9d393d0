//! The fake GitLab's OAuth endpoints, as Doorkeeper answers them: authorize (auto-consent),
//! token (code exchange and refresh, with the faults a refresh can meet), revoke and token info.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::id_token::id_token;
use super::user::USER_ID;
use super::{Application, Shared, State, TokenRecord, bearer_record, now, now_ms, random_hex};

/// How the token endpoint fails a refresh, as GitLab or a proxy in front of it can.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum RefreshFault {
    #[default]
    None,
    /// 500 with an HTML page; nothing rotated.
    ServerError,
    /// 429 with `Retry-After: 7`; nothing rotated.
    Throttled,
    /// No answer until long after the client gave up; nothing rotated.
    Timeout,
    /// The connection breaks in the middle of the answer; nothing rotated.
    ConnectionReset,
    /// 200 with a proxy's HTML page; nothing rotated.
    Garbage,
    /// GitLab commits the rotation, then its answer never arrives.
    LostAfterCommit,
}

/// One authorization code, as the authorize endpoint recorded it.
pub(super) struct CodeGrant {
    redirect_uri: String,
    scopes: Vec<String>,
    challenge: Option<(String, String)>,
    nonce: Option<String>,
}

/// Auto-consent, as for a trusted instance-wide application.
pub(super) async fn authorize(
    state: Shared,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let mut state = state.lock().unwrap();
    let query = query.into_inner();
    state.seen.authorize_queries.push(query.clone());
    let param = |name: &str| query.get(name).cloned().unwrap_or_default();
    // Doorkeeper shows an error page, and redirects nowhere, for a wrong client or redirect URI.
    if param("client_id") != state.app.client_id {
        return HttpResponse::Unauthorized()
            .body("Client authentication failed due to unknown client.");
    }
    if param("redirect_uri") != state.app.redirect_uri {
        return HttpResponse::BadRequest().body("The redirect URI included is not valid.");
    }
    let redirect = |pairs: Vec<(&'static str, String)>| {
        let mut url = url::Url::parse(&param("redirect_uri")).unwrap();
        url.query_pairs_mut()
            .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
        HttpResponse::Found()
            .insert_header(("Location", url.to_string()))
            .finish()
    };
    let with_state = |mut pairs: Vec<(&'static str, String)>| {
        if let Some(state) = query.get("state") {
            pairs.push(("state", state.clone()));
        }
        pairs
    };
    if param("response_type") != "code" {
        return redirect(with_state(vec![(
            "error",
            "unsupported_response_type".into(),
        )]));
    }
    // GitLab's default when no scope is sent is `api`.
    let scopes: Vec<String> = match query
        .get("scope")
        .map(|s| s.split_whitespace().map(String::from).collect::<Vec<_>>())
    {
        Some(scopes) if !scopes.is_empty() => scopes,
        _ => vec!["api".to_owned()],
    };
    if scopes.iter().any(|s| !state.app.scopes.contains(s)) {
        return redirect(with_state(vec![("error", "invalid_scope".into())]));
    }
    if state.behaviour.deny {
        let description =
            "The resource owner or authorization server denied the request.".to_owned();
        return redirect(with_state(vec![
            ("error", "access_denied".into()),
            ("error_description", description),
        ]));
    }
    let code = random_hex();
    let challenge = query.get("code_challenge").map(|c| {
        (
            c.clone(),
            query
                .get("code_challenge_method")
                .cloned()
                .unwrap_or_else(|| "plain".into()),
        )
    });
    let grant = CodeGrant {
        redirect_uri: param("redirect_uri"),
        scopes,
        challenge,
        nonce: query.get("nonce").cloned(),
    };
    state.codes.insert(code.clone(), grant);
    let mut pairs = with_state(vec![("code", code)]);
    if let Some(iss) = state.behaviour.iss_parameter.clone() {
        pairs.push(("iss", iss));
    }
    redirect(pairs)
}

#[derive(Deserialize)]
pub(super) struct TokenForm {
    grant_type: String,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// What the token endpoint decided while holding the state: an answer now, or a refresh whose
/// answer comes after `delay`, spoiled by `fault`.
enum TokenStep {
    Answer(HttpResponse),
    Refresh {
        fault: RefreshFault,
        delay: Duration,
        answer: Option<HttpResponse>,
    },
}

pub(super) async fn token(
    shared: Shared,
    req: HttpRequest,
    form: web::Form<TokenForm>,
) -> HttpResponse {
    let form = form.into_inner();
    // GitLab finishes what it started even when the client goes away: the work, and the
    // commit, run in a task of their own that a dropped connection does not cancel.
    let refresh = form.grant_type == "refresh_token";
    let working = {
        let mut state = shared.lock().unwrap();
        state.seen.refreshes_in_progress += usize::from(refresh);
        if refresh {
            state.behaviour.commit_delay
        } else {
            Duration::ZERO
        }
    };
    let decided = actix_web::rt::spawn(async move {
        if !working.is_zero() {
            actix_web::rt::time::sleep(working).await;
        }
        let mut state = shared.lock().unwrap();
        state.seen.refreshes_in_progress -= usize::from(refresh);
        token_step(&mut state, &req, form)
    });
    let Ok(step) = decided.await else {
        return HttpResponse::InternalServerError().finish();
    };
    let (fault, delay, answer) = match step {
        TokenStep::Answer(response) => return response,
        TokenStep::Refresh {
            fault,
            delay,
            answer,
        } => (fault, delay, answer),
    };
    actix_web::rt::time::sleep(delay).await;
    match (fault, answer) {
        (RefreshFault::None, Some(answer)) => answer,
        (RefreshFault::ServerError, _) => HttpResponse::InternalServerError()
            .content_type("text/html")
            .body("<html><body><h1>500</h1>We're sorry, something went wrong on our end.</body></html>"),
        (RefreshFault::Throttled, _) => HttpResponse::TooManyRequests().insert_header(("Retry-After", "7")).body("Retry later\n"),
        (RefreshFault::ConnectionReset, _) => {
            let broken = futures_util::stream::iter([
                Ok::<_, std::io::Error>(web::Bytes::from_static(b"{\"access_token\":\"")),
                Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset")),
            ]);
            HttpResponse::Ok().content_type("application/json").streaming(broken)
        }
        (RefreshFault::Garbage, _) => HttpResponse::Ok().content_type("text/html").body("<html>Bad gateway</html>"),
        // Timeout, LostAfterCommit: no answer until long after the client gave up.
        _ => {
            actix_web::rt::time::sleep(Duration::from_secs(30)).await;
            HttpResponse::GatewayTimeout().finish()
        }
    }
}

fn token_step(state: &mut State, req: &HttpRequest, form: TokenForm) -> TokenStep {
    // A code request without a PKCE verifier cannot redeem labgate's codes: it is a check of
    // the client's credentials (a made-up code), counted apart from real exchanges.
    if form.grant_type == "authorization_code" && form.code_verifier.is_none() {
        state.seen.client_checks += 1;
    }
    if !client_authenticated(
        &state.app,
        req,
        form.client_id.as_deref(),
        form.client_secret.as_deref(),
    ) {
        return TokenStep::Answer(oauth_error(
            401,
            "invalid_client",
            "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.",
        ));
    }
    match form.grant_type.as_str() {
        "authorization_code" => {
            if form.code_verifier.is_some() {
                state.seen.code_exchanges += 1;
            }
            let Some(grant) = form
                .code
                .as_deref()
                .and_then(|code| state.codes.remove(code))
            else {
                return TokenStep::Answer(invalid_grant());
            };
            if form.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str()) {
                return TokenStep::Answer(invalid_grant());
            }
            if let Some((challenge, method)) = &grant.challenge {
                let Some(verifier) = &form.code_verifier else {
                    return TokenStep::Answer(invalid_grant());
                };
                let derived = match method.as_str() {
                    "S256" => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
                    _ => verifier.clone(),
                };
                if &derived != challenge {
                    return TokenStep::Answer(invalid_grant());
                }
            }
            let mut scopes = grant.scopes.clone();
            scopes.extend(state.behaviour.extra_granted_scope.clone());
            let record = issue(state, scopes);
            TokenStep::Answer(token_response(state, &record, grant.nonce.as_deref()))
        }
        "refresh_token" => {
            state.seen.refreshes += 1;
            let (fault, delay) = (state.behaviour.refresh_fault, state.behaviour.refresh_delay);
            let presented = form.refresh_token.unwrap_or_default();
            let commits = matches!(fault, RefreshFault::None | RefreshFault::LostAfterCommit);
            let mut answer = None;
            if commits {
                let reused = state
                    .tokens
                    .find_mut(&presented)
                    .is_some_and(|t| t.refresh == presented && t.rotated);
                if reused {
                    state.seen.rotated_reuses += 1;
                }
                let Some(old) = state
                    .tokens
                    .find_mut(&presented)
                    .filter(|t| t.refresh == presented && !t.revoked)
                else {
                    return TokenStep::Answer(invalid_grant());
                };
                // No grace: the old access and refresh tokens die before the new pair exists.
                old.revoked = true;
                old.rotated = true;
                let (scopes, family) = (old.scopes.clone(), old.family);
                let record = issue_in_family(state, scopes, Some(family));
                state.seen.last_rotation_ms.insert(family, now_ms());
                answer = Some(token_response(state, &record, None));
            }
            TokenStep::Refresh {
                fault,
                delay,
                answer,
            }
        }
        _ => TokenStep::Answer(oauth_error(
            400,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        )),
    }
}

#[derive(Deserialize)]
pub(super) struct RevokeForm {
    token: String,
    client_id: Option<String>,
    client_secret: Option<String>,
}

pub(super) async fn revoke(
    state: Shared,
    req: HttpRequest,
    form: web::Form<RevokeForm>,
) -> HttpResponse {
    let mut state = state.lock().unwrap();
    let form = form.into_inner();
    if !client_authenticated(
        &state.app,
        &req,
        form.client_id.as_deref(),
        form.client_secret.as_deref(),
    ) {
        return oauth_error(
            403,
            "unauthorized_client",
            "You are not authorized to revoke this token",
        );
    }
    if let Some(record) = state.tokens.find_mut(&form.token) {
        record.revoked = true;
    }
    state.seen.revoked_tokens.push(form.token);
    HttpResponse::Ok().json(json!({}))
}

/// GitLab's `GET /oauth/token/info`: 401 for a revoked or expired access token.
pub(super) async fn token_info(state: Shared, req: HttpRequest) -> HttpResponse {
    let state = state.lock().unwrap();
    match bearer_record(&state, &req) {
        Some(record) => HttpResponse::Ok().json(json!({
            "resource_owner_id": USER_ID,
            "scope": record.scopes,
            "expires_in": (record.created_at + record.lifetime.as_secs()).saturating_sub(now()),
            "application": {"uid": state.app.client_id},
            "created_at": record.created_at,
        })),
        None => HttpResponse::Unauthorized().json(
            json!({"error": "invalid_token", "error_description": "The access token is invalid"}),
        ),
    }
}

fn client_authenticated(
    app: &Application,
    req: &HttpRequest,
    id: Option<&str>,
    secret: Option<&str>,
) -> bool {
    let basic = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let (id, secret) = match &basic {
        Some(pair) => match pair.split_once(':') {
            Some((id, secret)) => (Some(id), Some(secret)),
            None => (None, None),
        },
        None => (id, secret),
    };
    let decode = |v: &str| {
        url::form_urlencoded::parse(format!("v={v}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    id.and_then(decode).as_deref() == Some(app.client_id.as_str())
        && secret.and_then(decode).as_deref() == Some(app.client_secret.as_str())
}

fn issue(state: &mut State, scopes: Vec<String>) -> TokenRecord {
    issue_in_family(state, scopes, None)
}

/// A new pair: of the grant `family` (a rotation), or of a new grant.
fn issue_in_family(state: &mut State, scopes: Vec<String>, family: Option<usize>) -> TokenRecord {
    let record = TokenRecord {
        access: random_hex(),
        refresh: random_hex(),
        scopes,
        created_at: now(),
        lifetime: state.behaviour.token_lifetime,
        revoked: false,
        rotated: false,
        family: family.unwrap_or(state.tokens.records.len()),
    };
    state.tokens.push(record.clone());
    record
}

fn token_response(state: &State, record: &TokenRecord, nonce: Option<&str>) -> HttpResponse {
    let omit_expires_in = state.behaviour.omit_expires_in;
    let mut body = json!({
        "access_token": record.access,
        "token_type": "Bearer",
        "expires_in": record.lifetime.as_secs(),
        "refresh_token": record.refresh,
        "scope": record.scopes.join(" "),
        "created_at": record.created_at,
    });
    if record.scopes.iter().any(|s| s == "openid") {
        body["id_token"] = json!(id_token(state, nonce));
    }
    if omit_expires_in {
        body.as_object_mut().unwrap().remove("expires_in");
    }
    HttpResponse::Ok()
        // As GitLab (Rails) names every request, for its logs.
        .insert_header(("X-Request-Id", format!("01FAKE{}", &random_hex()[..20])))
        .insert_header(("Cache-Control", "no-store"))
        .json(body)
}

fn invalid_grant() -> HttpResponse {
    oauth_error(
        400,
        "invalid_grant",
        "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.",
    )
}

fn oauth_error(status: u16, error: &str, description: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .json(json!({"error": error, "error_description": description}))
}
