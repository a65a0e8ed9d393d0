//! A slice of GitLab's REST API under `/api/v4`, routed as Grape routes it: the raw path is
//! split at `/` first, then each parameter is percent-decoded once, so `/projects/:id` takes a
//! numeric id or a URL-encoded full path (`group%2Fapp`). OAuth access tokens (`Authorization:
//! Bearer`) and access tokens (`PRIVATE-TOKEN` or `Bearer`, see `access_tokens`) authenticate;
//! `api` or `read_api` is needed (`read_api` for `GET`/`HEAD` only) and `/user` also takes
//! `read_user`; `/user` is the token's own user, and a bot sees only its own projects. Every
//! request is recorded in `Seen`, whatever it gets back, and every answer sets a session
//! cookie, as a careless proxy would pass on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

use super::access_token_api::unauthorized;
use super::access_tokens::{AccessTokenRecord, Refusal, TokenOwner, bearer, private_token};
use super::repos::Project;
use super::{SUB_PATH, Shared, State, random_hex, user};

/// One request the API received, as it arrived.
#[derive(Clone, Debug)]
pub(crate) struct ApiRequest {
    pub method: String,
    /// Path and query, percent-encoding untouched.
    pub path_and_query: String,
    pub authorization: Option<String>,
    pub private_token: Option<String>,
    pub job_token: Option<String>,
    pub cookie: Option<String>,
    /// The token it was made with, when the `Authorization` header held a bearer (an OAuth
    /// access token, or an access token).
    pub token: Option<String>,
    pub status: u16,
}

/// Bodies of a MiB or more stop after their first `HELD_AFTER` bytes until `release` (or 20 s
/// pass): a proxy that waits for a whole body before answering is caught.
#[derive(Clone, Default)]
pub(crate) struct Hold(Arc<AtomicBool>);

pub(super) const HELD_AFTER: usize = 256 << 10;

impl Hold {
    #[allow(dead_code)] // used by tests/api, not by benches/broker.rs
    pub(crate) fn release(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    async fn wait(&self) {
        let until = Instant::now() + Duration::from_secs(20);
        while !self.0.load(Ordering::SeqCst) && Instant::now() < until {
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Everything under `{SUB_PATH}/api/`.
pub(super) async fn api(state: Shared, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let mut state = state.lock().unwrap();
    let mut seen = arrived(&req);
    let response = with_session_cookie(answer(&mut state, &req, &body));
    seen.status = response.status().as_u16();
    state.seen.api_requests.push(seen);
    response
}

/// A request to the API as it arrived, its status not known yet.
pub(super) fn arrived(req: &HttpRequest) -> ApiRequest {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    ApiRequest {
        method: req.method().to_string(),
        path_and_query: req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        authorization: header("authorization"),
        private_token: header("private-token"),
        job_token: header("job-token"),
        cookie: header("cookie"),
        token: header("authorization").and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned)),
        status: 0,
    }
}

/// Rails' session cookie, set on every API answer.
pub(super) fn with_session_cookie(mut response: HttpResponse) -> HttpResponse {
    response.headers_mut().insert(
        actix_web::http::header::SET_COOKIE,
        format!(
            "_gitlab_session={}; path=/; HttpOnly; SameSite=Lax",
            random_hex()
        )
        .parse()
        .unwrap(),
    );
    response
}

fn answer(state: &mut State, req: &HttpRequest, body: &[u8]) -> HttpResponse {
    let prefix = format!("{SUB_PATH}/api/v4/");
    let Some(route) = req.path().strip_prefix(&prefix) else {
        return not_found("404 Not Found");
    };
    let segments: Vec<&str> = route.split('/').collect();
    let method = req.method().clone();
    let reading = method == Method::GET || method == Method::HEAD;
    let caller = match api_caller(state, req) {
        Ok(caller) => caller,
        Err(refusal) => return unauthorized(refusal),
    };
    let has = |scope: &str| caller.scopes.iter().any(|s| s == scope);
    let allowed = has("api")
        || (reading && has("read_api"))
        || (reading && segments == ["user"] && has("read_user"));
    if !allowed {
        let needed = if reading { "read_api" } else { "api" };
        return json(
            403,
            json!({
                "error": "insufficient_scope",
                "error_description": "The request requires higher privileges than provided by the access token.",
                "scope": needed,
            }),
        );
    }
    match (reading, segments.as_slice()) {
        (true, ["user"]) => json(200, caller.user_json()),
        (true, ["projects"]) => {
            let base = state.issuer.clone();
            let projects = state.projects.all().iter();
            let seen = projects.filter(|p| caller.owner.sees(&p.path_with_namespace));
            let all: Vec<Value> = seen.map(|p| p.json(&base)).collect();
            json(200, json!(all))
        }
        (true, ["groups" | "users" | "search" | "snippets", ..]) => json(200, json!([])),
        (_, ["projects", id, rest @ ..]) => project(state, req, &caller, &decode(id), rest, body),
        _ => not_found("404 Not Found"),
    }
}

/// Whom a request to the API or git acts for, and with which scopes.
pub(super) struct Caller {
    pub scopes: Vec<String>,
    pub owner: TokenOwner,
    /// The access token's name: a bot user is named after it.
    name: String,
}

impl Caller {
    /// `GET /api/v4/user`: the token's own user.
    pub(super) fn user_json(&self) -> Value {
        match &self.owner {
            TokenOwner::Person => user::api_user(),
            TokenOwner::Bot { id, username, .. } => json!({
                "id": id, "username": username, "name": self.name, "state": "active", "bot": true,
            }),
        }
    }
}

/// The caller of an `/api/v4` request: an OAuth access token as `Authorization: Bearer` (as
/// before access tokens), else an access token from `PRIVATE-TOKEN` or the bearer. Refused:
/// GitLab's 401 answers.
pub(super) fn api_caller(state: &mut State, req: &HttpRequest) -> Result<Caller, Refusal> {
    let bearer = bearer(req);
    if let Some(token) = &bearer
        && let Some(record) = state.tokens.find(token).filter(|t| &t.access == token)
    {
        return match record.is_live() {
            true => Ok(Caller {
                scopes: record.scopes.clone(),
                owner: TokenOwner::Person,
                name: String::new(),
            }),
            false => Err(Refusal::Unknown),
        };
    }
    let token = private_token(req).or(bearer).ok_or(Refusal::Unknown)?;
    let index = state.access_tokens.authenticate(&token)?;
    Ok(caller(state.access_tokens.get(index)))
}

/// The caller of a git request whose Basic password is `password`, when it is a live access
/// token (GitLab's `personal_access_token_check`, whatever the user name).
pub(super) fn git_caller(state: &mut State, password: &str) -> Option<Caller> {
    let index = state.access_tokens.authenticate(password).ok()?;
    Some(caller(state.access_tokens.get(index)))
}

fn caller(record: &AccessTokenRecord) -> Caller {
    Caller {
        scopes: record.scopes.clone(),
        owner: record.owner.clone(),
        name: record.name.clone(),
    }
}

/// `/projects/:id/...`, for a project the person can see.
fn project(
    state: &mut State,
    req: &HttpRequest,
    caller: &Caller,
    id: &str,
    rest: &[&str],
    body: &[u8],
) -> HttpResponse {
    let base = state.issuer.clone();
    let (hold, broken) = (state.hold.clone(), state.break_large_bodies);
    let Some(project) = state
        .projects
        .find_mut(id)
        .filter(|p| caller.owner.sees(&p.path_with_namespace))
    else {
        return not_found("404 Project Not Found");
    };
    let method = req.method();
    match (method.as_str(), rest) {
        ("GET" | "HEAD" | "PUT", []) => json(200, project.json(&base)),
        ("DELETE", []) => json(202, json!({"message": "202 Accepted"})),
        ("GET" | "HEAD", ["issues"]) => paginated(req, &project.issues),
        ("POST", ["issues"]) => {
            let fields: Value = serde_json::from_slice(body).unwrap_or_else(|_| {
                let form: serde_json::Map<String, Value> = url::form_urlencoded::parse(body)
                    .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                    .collect();
                Value::Object(form)
            });
            let Some(title) = fields["title"].as_str().filter(|t| !t.is_empty()) else {
                return json(400, json!({"error": "title is missing"}));
            };
            let description = fields["description"].as_str().unwrap_or_default();
            json(201, project.open_issue(title, description))
        }
        ("GET" | "HEAD", ["issues", iid]) => {
            let iid = iid.parse::<u64>().ok();
            match project.issues.iter().find(|i| i["iid"].as_u64() == iid) {
                Some(issue) => json(200, issue.clone()),
                None => not_found("404 Issue Not Found"),
            }
        }
        ("GET" | "HEAD", ["repository", "files", file, "raw"]) => {
            raw_file(project, &decode(file), hold, broken)
        }
        ("GET" | "HEAD", ["members"]) => json(
            200,
            json!([{"id": user::USER_ID, "username": user::USERNAME, "access_level": 50}]),
        ),
        _ => not_found("404 Not Found"),
    }
}

/// GitLab's offset pagination: `page` and `per_page` (20 by default, 100 at most), the `X-*`
/// headers and a `Link` header whose URLs are built from the request's own URL (Host included).
fn paginated(req: &HttpRequest, items: &[Value]) -> HttpResponse {
    let query: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let number = |name: &str, default: usize| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(default)
    };
    let per_page = number("per_page", 20).min(100);
    let page = number("page", 1);
    let total_pages = items.len().div_ceil(per_page).max(1);
    let shown: Vec<Value> = items
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect();
    let info = req.connection_info();
    let own = format!("https://{}{}", info.host(), req.path());
    let href = |to: usize| {
        let mut pairs: Vec<(String, String)> = query
            .iter()
            .filter(|(k, _)| k != "page" && k != "per_page")
            .cloned()
            .collect();
        pairs.push(("page".into(), to.to_string()));
        pairs.push(("per_page".into(), per_page.to_string()));
        pairs.sort();
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        format!("{own}?{encoded}")
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("<{}>; rel=\"prev\"", href(page - 1)));
    }
    if page < total_pages {
        links.push(format!("<{}>; rel=\"next\"", href(page + 1)));
    }
    links.push(format!("<{}>; rel=\"first\"", href(1)));
    links.push(format!("<{}>; rel=\"last\"", href(total_pages)));
    let maybe = |n: usize, present: bool| {
        if present {
            n.to_string()
        } else {
            String::new()
        }
    };
    HttpResponse::Ok()
        .insert_header(("Link", links.join(", ")))
        .insert_header(("X-Page", page.to_string()))
        .insert_header(("X-Per-Page", per_page.to_string()))
        .insert_header(("X-Total", items.len().to_string()))
        .insert_header(("X-Total-Pages", total_pages.to_string()))
        .insert_header(("X-Next-Page", maybe(page + 1, page < total_pages)))
        .insert_header(("X-Prev-Page", maybe(page.saturating_sub(1), page > 1)))
        .json(shown)
}

/// A file's bytes, streamed in 64 KiB chunks; a held body stops after `HELD_AFTER` bytes, a
/// broken one breaks there (GitLab going down mid-stream).
fn raw_file(project: &Project, path: &str, hold: Option<Hold>, broken: bool) -> HttpResponse {
    let Some(content) = project.files.get(path).cloned() else {
        return not_found("404 File Not Found");
    };
    let large = content.len() >= 1 << 20;
    let (hold, broken) = (hold.filter(|_| large), broken && large);
    let length = content.len() as u64;
    let chunks = futures_util::stream::unfold(0usize, move |offset| {
        let (content, hold) = (content.clone(), hold.clone());
        async move {
            if offset >= content.len() {
                return None;
            }
            if offset == HELD_AFTER && broken {
                let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "GitLab died");
                return Some((Err(reset), content.len()));
            }
            if offset == HELD_AFTER
                && let Some(hold) = hold
            {
                hold.wait().await;
            }
            let limit = if offset < HELD_AFTER {
                HELD_AFTER
            } else {
                content.len()
            };
            let end = (offset + (64 << 10)).min(limit).min(content.len());
            Some((Ok::<_, std::io::Error>(content.slice(offset..end)), end))
        }
    });
    HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header(("X-Gitlab-File-Path", path.to_owned()))
        .no_chunking(length)
        .streaming(chunks)
}

/// A route parameter, decoded once as Rails does; undecodable bytes never match anything.
fn decode(raw: &str) -> String {
    percent_decode_str(raw).decode_utf8_lossy().into_owned()
}

pub(super) fn json(status: u16, body: Value) -> HttpResponse {
    HttpResponseBuilder::new(actix_web::http::StatusCode::from_u16(status).unwrap()).json(body)
}

fn not_found(message: &str) -> HttpResponse {
    json(404, json!({"message": message}))
}

impl super::FakeGitLab {
    /// From now on, large API bodies stop after their first part until the hold is released.
    #[allow(dead_code)] // used by tests/api, not by benches/broker.rs
    pub(crate) fn hold_large_bodies(&self) -> Hold {
        let hold = Hold::default();
        self.state.lock().unwrap().hold = Some(hold.clone());
        hold
    }

    /// From now on, large API bodies break off after their first part, as when GitLab dies.
    #[allow(dead_code)] // used by tests/api, not by benches/broker.rs
    pub(crate) fn break_large_bodies(&self) {
        self.state.lock().unwrap().break_large_bodies = true;
    }

    /// Every API request received after the first `since`.
    #[allow(dead_code)] // used by tests/api, not by benches/broker.rs
    pub(crate) fn api_requests_since(&self, since: usize) -> Vec<ApiRequest> {
        self.state.lock().unwrap().seen.api_requests[since..].to_vec()
    }

    /// Makes an access token expire now, as time would; its refresh token still works.
    #[allow(dead_code)] // used by tests/api, not by benches/broker.rs
    pub(crate) fn expire_access_token(&self, access_token: &str) {
        let mut state = self.state.lock().unwrap();
        if let Some(record) = state.tokens.find_mut(access_token) {
            record.created_at = 0;
        }
    }
}
