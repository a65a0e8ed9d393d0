//! Git over HTTPS at the fake GitLab: an OAuth access token as the Basic password, then
//! `git http-backend` as a CGI program over the repositories handed to `serve_git`.

use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{SUB_PATH, Shared};

/// Git over HTTPS as GitLab does it: Basic auth whose password is an OAuth access token with
/// a repository scope (the user name is ignored), then `git http-backend` as a CGI program.
pub(super) async fn git_over_http(
    state: Shared,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (root, allowed) = {
        let state = state.lock().unwrap();
        let password = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|pair| {
                pair.split_once(':')
                    .map(|(_, password)| password.to_owned())
            });
        let allowed = password.is_some_and(|token| {
            state.tokens.find(&token).is_some_and(|t| {
                t.access == token
                    && t.is_live()
                    && t.scopes.iter().any(|s| {
                        ["api", "read_repository", "write_repository"].contains(&s.as_str())
                    })
            })
        });
        (state.git_root.clone(), allowed)
    };
    let Some(root) = root else {
        return HttpResponse::NotFound().finish();
    };
    if !allowed {
        return HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Basic realm=\"GitLab\""))
            .finish();
    }
    let path_info = req.path().trim_start_matches(SUB_PATH).to_owned();
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
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        child.stdin.take().unwrap().write_all(&body)?;
        child.wait_with_output()
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
