//! Git over HTTPS at the fake GitLab: an OAuth or GitLab access token as the Basic password, then
//! `git http-backend` as a CGI program over the repositories handed to `serve_git` (or made by
//! `create_repository`); clone and push, protocol v0 and v2, each request recorded.

use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::access_tokens::TokenOwner;
use super::api::git_caller;
use super::{SUB_PATH, Shared};

/// One git request over HTTPS, as it arrived.
#[derive(Clone, Debug)]
pub(crate) struct GitRequest {
    pub method: String,
    /// The path under the instance, e.g. `/group/app.git/info/refs`.
    pub path: String,
    pub query: String,
    /// The Basic user name, when there was one.
    pub user: Option<String>,
    /// The Basic password, when there was one.
    pub password: Option<String>,
    /// Whether the password was a live access token that may do what was asked.
    pub accepted: bool,
    pub git_protocol: Option<String>,
    pub status: u16,
}

impl GitRequest {
    /// A push: `git-receive-pack`, advertised or posted.
    pub(crate) fn is_push(&self) -> bool {
        self.path.ends_with("/git-receive-pack") || self.query.contains("service=git-receive-pack")
    }
}

/// Git over HTTPS as GitLab does it: Basic auth whose password is an OAuth access token or a
/// live access token (personal, project, group) with a repository scope (the user name is
/// ignored), then `git http-backend` as a CGI program. Pulls take `api`, `read_api`,
/// `read_repository` or `write_repository`; pushes only `api` or `write_repository`
/// (otherwise 403, as GitLab's access check answers); a bot's token finds only its projects.
pub(super) async fn git_over_http(
    state: Shared,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let credentials = header(AUTHORIZATION.as_str())
        .and_then(|v| v.strip_prefix("Basic ").map(str::to_owned))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(user, password)| (user.to_owned(), password.to_owned()))
        });
    let mut seen = GitRequest {
        method: req.method().to_string(),
        path: req.path().trim_start_matches(SUB_PATH).to_owned(),
        query: req.query_string().to_owned(),
        user: credentials.as_ref().map(|(user, _)| user.clone()),
        password: credentials.as_ref().map(|(_, password)| password.clone()),
        accepted: false,
        git_protocol: header("git-protocol"),
        status: 0,
    };
    let response = answer(&state, &req, &mut seen, body).await;
    seen.status = response.status().as_u16();
    state.lock().unwrap().seen.git_requests.push(seen);
    response
}

async fn answer(
    state: &Shared,
    req: &HttpRequest,
    seen: &mut GitRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (root, scopes, visible, moved) = {
        let mut state = state.lock().unwrap();
        let oauth = seen.password.as_ref().and_then(|token| {
            state
                .tokens
                .find(token)
                .filter(|t| &t.access == token && t.is_live())
                .map(|t| (t.scopes.clone(), TokenOwner::Person))
        });
        let password = seen.password.as_deref().unwrap_or_default();
        let caller =
            oauth.or_else(|| git_caller(&mut state, password).map(|c| (c.scopes, c.owner)));
        let (scopes, owner) = caller.unwrap_or((Vec::new(), TokenOwner::Person));
        let project = seen
            .path
            .split_once(".git/")
            .map(|(p, _)| p.trim_start_matches('/'));
        let visible = owner == TokenOwner::Person
            || project
                .and_then(|p| state.projects.find(p))
                .is_some_and(|p| owner.sees(&p.path_with_namespace));
        // A project moved since keeps answering at its old path.
        let moved = seen.path.split_once(".git/").and_then(|(project, rest)| {
            let now = state
                .projects
                .current_path(project.trim_start_matches('/'))?;
            Some(format!("/{now}.git/{rest}"))
        });
        (state.git_root.clone(), scopes, visible, moved)
    };
    let Some(root) = root else {
        return HttpResponse::NotFound().finish();
    };
    let has = |wanted: &[&str]| scopes.iter().any(|s| wanted.contains(&s.as_str()));
    if !has(&["api", "read_api", "read_repository", "write_repository"]) {
        return HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Basic realm=\"GitLab\""))
            .body("HTTP Basic: Access denied.\n");
    }
    if !visible {
        return HttpResponse::NotFound().content_type("text/plain").body(
            "The project you were looking for could not be found or you don't have permission to view it.\n",
        );
    }
    if seen.is_push() && !has(&["api", "write_repository"]) {
        return HttpResponse::Forbidden()
            .content_type("text/plain")
            .body("You are not allowed to push code to this project.\n");
    }
    seen.accepted = true;
    let git_protocol = seen.git_protocol.clone().unwrap_or_default();
    let path_info = moved.unwrap_or_else(|| req.path().trim_start_matches(SUB_PATH).to_owned());
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let (method, query) = (req.method().to_string(), req.query_string().to_owned());
    let output = web::block(move || {
        use std::io::Write;
        let mut child = std::process::Command::new("git")
            .arg("http-backend")
            .env("GIT_PROJECT_ROOT", root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("PATH_INFO", path_info)
            .env("QUERY_STRING", query)
            .env("REQUEST_METHOD", method)
            .env("CONTENT_TYPE", content_type)
            .env("CONTENT_LENGTH", body.len().to_string())
            .env("REMOTE_USER", "oauth2")
            // What a web server passes on from the `Git-Protocol` header (protocol v2).
            .env("GIT_PROTOCOL", git_protocol)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.receivepack")
            .env("GIT_CONFIG_VALUE_0", "true")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        // Written beside the reading: a big pack must not wait on a full output pipe.
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&body));
        let output = child.wait_with_output();
        writer.join().unwrap()?;
        output
    })
    .await;
    let Ok(Ok(output)) = output else {
        return HttpResponse::InternalServerError().finish();
    };
    // CGI: headers, a blank line, the body.
    let split = output
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    let split = split.or_else(|| {
        output
            .stdout
            .windows(2)
            .position(|w| w == b"\n\n")
            .map(|i| (i, 2))
    });
    let Some((end, gap)) = split else {
        return HttpResponse::BadGateway().finish();
    };
    let mut response = HttpResponse::Ok();
    for line in String::from_utf8_lossy(&output.stdout[..end]).lines() {
        if let Some((name, value)) = line.split_once(": ") {
            if name.eq_ignore_ascii_case("status") {
                let code = value
                    .split_whitespace()
                    .next()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(200);
                response.status(actix_web::http::StatusCode::from_u16(code).unwrap());
            } else {
                response.insert_header((name.to_owned(), value.to_owned()));
            }
        }
    }
    response.body(output.stdout[end + gap..].to_vec())
}
