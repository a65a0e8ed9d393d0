//! Scoped access (SPEC, "Scoped access: the GitLab-aware proxy"): access grants bound to
//! projects and an access level, and git and REST calls made with them through labgate to a fake
//! GitLab that records everything that reached it.
//! - `fake`: the fake GitLab's API and git, used directly (it must be as strict as GitLab);
//! - `grants`: minting, listing and refusing access grants; `ending`: how they end;
//! - `git`: real `git` cloning and pushing through `/git/{instance}/…`;
//! - `rest` and `refusals`: the REST API under `/gitlab/{instance}/api/v4/…`;
//! - `outages`: GitLab dying mid-stream or down; `audit`: each call audited and counted;
//! - `moved`: projects moved since, still answering at their old paths;
//! - `admin`: the admin pages list grants and revoke one;
//! - `tools`: `labgate git-credential` for labgate's own `/git/` URLs;
//! - `access_token`: git and the API on a connection that holds a project access token.

mod access_token;
mod admin;
mod audit;
mod ending;
mod fake;
mod git;
mod grants;
mod moved;
mod outages;
mod refusals;
mod rest;
mod slow;
mod tools;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use labgate::config::Settings;
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{GitLabWorld, TestApp, person_browser};
use crate::support::browser::Browser;
use crate::support::certs::{TestCa, Validity};
use crate::support::database::Backend;
use crate::support::fake_gitlab::{Discovery, FakeGitLab, default_application};

pub(crate) const SUBJECT: &str = "user-17";
/// Every scope that reaches repositories or the API.
pub(crate) const ALL_SCOPES: [&str; 4] = ["api", "read_api", "read_repository", "write_repository"];

/// labgate with instance `corp` on a fake GitLab (whose application may also grant `api` and
/// `sudo`, which the service may ask for too),
/// service `ci-bot` with a policy, user-17 connected with every scope, and three projects:
/// `group/app` and `group/other` with repositories, `elsewhere/secret` without.
pub(crate) struct ProxyWorld {
    pub app: TestApp,
    pub world: GitLabWorld,
    pub client_id: String,
    pub secret: String,
    pub service_token: String,
    pub browser: Browser,
    pub connection_id: String,
    pub app_id: u64,
    pub other_id: u64,
    pub secret_id: u64,
}

impl ProxyWorld {
    /// Policy `group/*`, `write`.
    pub(crate) async fn start(backend: Backend) -> Self {
        Self::start_with(
            backend,
            json!({"projects": ["group/*"], "max_access": "write"}),
            |_| {},
        )
        .await
    }

    pub(crate) async fn start_with(
        backend: Backend,
        policy: Value,
        change: impl FnOnce(&mut Settings),
    ) -> Self {
        let mut app = TestApp::spawn_with(backend, change).await;
        // labgate closes connections idle for 5 s; a pooled one reused just then breaks.
        app.client = reqwest::Client::builder()
            .pool_idle_timeout(std::time::Duration::from_secs(2))
            .build()
            .unwrap();
        let world = gitlab_granting_api().await;
        let mut registration = world.registration("corp");
        registration["scopes"] = json!(application_scopes());
        assert_eq!(app.register(&registration).await.status(), 201);
        let mut service = json!({
            "name": "ci-bot",
            "instances": ["corp"],
            "scopes": ([ALL_SCOPES.as_slice(), &["sudo"]].concat()),
            "return_origins": [crate::helpers::RETURN_ORIGIN],
        });
        service
            .as_object_mut()
            .unwrap()
            .extend(policy.as_object().unwrap().clone());
        let (client_id, secret) = app.create_service(&service).await;
        let service_token = app.service_token(&client_id, &secret).await;
        let browser = person_browser(&app, &world);
        let app_id = world.gitlab.create_repository("group/app");
        let other_id = world.gitlab.create_repository("group/other");
        let secret_id = world.gitlab.add_project("elsewhere/secret");
        let mut pw = Self {
            app,
            world,
            client_id,
            secret,
            service_token,
            browser,
            connection_id: String::new(),
            app_id,
            other_id,
            secret_id,
        };
        pw.connection_id = pw.connect(SUBJECT, &ALL_SCOPES).await;
        pw
    }

    pub(crate) fn gitlab(&self) -> &FakeGitLab {
        &self.world.gitlab
    }

    /// Connects `subject` with exactly `scopes` (and `openid`); returns the connection's id.
    pub(crate) async fn connect(&self, subject: &str, scopes: &[&str]) -> String {
        let before = self.connection_ids(subject).await;
        let body = json!({"instance": "corp", "subject": subject, "scopes": scopes});
        let response = self
            .app
            .create_connect_link(&self.service_token, &body)
            .await;
        let status = response.status();
        let created: Value = response.json().await.unwrap();
        assert_eq!(status, 201, "{created}");
        let done = self.browser.connect(created["url"].as_str().unwrap()).await;
        assert_eq!(done.status(), 200, "connecting {subject}");
        let after = self.connection_ids(subject).await;
        // A new connection, or one connected again (labgate may keep a revoked row's id).
        let active: Vec<&String> = after
            .iter()
            .filter(|(_, active)| *active)
            .map(|(id, _)| id)
            .collect();
        after
            .iter()
            .find(|(id, active)| *active && !before.iter().any(|(old, _)| old == id))
            .map(|(id, _)| id.clone())
            .or_else(|| (active.len() == 1).then(|| active[0].clone()))
            .expect("a connection made or made active")
    }

    /// The subject's connections: id, and whether it is active.
    async fn connection_ids(&self, subject: &str) -> Vec<(String, bool)> {
        let listed = self
            .app
            .get_json(&format!("/api/v1/connections?subject={subject}"))
            .await;
        listed["connections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["id"].as_str().unwrap().to_owned(),
                    c["status"] == "active",
                )
            })
            .collect()
    }

    /// `POST /api/v1/access-grants` with the service's token.
    pub(crate) async fn request_grant(&self, body: Value) -> Response {
        self.request_grant_as(&self.service_token, body).await
    }

    pub(crate) async fn request_grant_as(&self, service_token: &str, body: Value) -> Response {
        self.app
            .client
            .post(self.url("/api/v1/access-grants"))
            .bearer_auth(service_token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A grant for user-17 on `projects` with `access`, which must be made.
    pub(crate) async fn grant(&self, projects: &[&str], access: &str) -> Grant {
        self.grant_with(
            json!({"instance": "corp", "subject": SUBJECT, "projects": projects, "access": access}),
        )
        .await
    }

    pub(crate) async fn grant_with(&self, body: Value) -> Grant {
        let response = self.request_grant(body).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 201, "making an access grant: {body}");
        Grant {
            id: body["id"].as_str().unwrap().to_owned(),
            token: body["token"].as_str().unwrap().to_owned(),
            body,
        }
    }

    /// `DELETE /api/v1/access-grants/{id}` with a service token.
    pub(crate) async fn delete_grant_as(&self, service_token: &str, id: &str) -> Response {
        self.app
            .client
            .delete(self.url(&format!("/api/v1/access-grants/{id}")))
            .bearer_auth(service_token)
            .send()
            .await
            .unwrap()
    }

    /// A URL at the test server.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.app.address)
    }

    /// A REST API URL through labgate: `path` starts after `/api/v4`.
    pub(crate) fn api(&self, path: &str) -> String {
        self.url(&format!("/gitlab/corp/api/v4{path}"))
    }

    /// A REST API request through labgate with `Authorization: Bearer <token>`.
    pub(crate) async fn api_call(&self, method: Method, path: &str, token: &str) -> Response {
        self.app
            .client
            .request(method, self.api(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// The repository URL through labgate, with `labgate:<token>` in it when given.
    pub(crate) fn git_url(&self, token: Option<&str>, project: &str) -> String {
        let host = self.app.address.trim_start_matches("http://");
        match token {
            Some(token) => format!("http://labgate:{token}@{host}/git/corp/{project}.git"),
            None => format!("http://{host}/git/corp/{project}.git"),
        }
    }

    /// How many API and git requests the fake GitLab has received so far.
    pub(crate) fn gitlab_mark(&self) -> (usize, usize) {
        let seen = self.gitlab().seen();
        (seen.api_requests.len(), seen.git_requests.len())
    }

    /// Asserts that GitLab received nothing since `mark`.
    pub(crate) fn assert_gitlab_saw_nothing_since(&self, mark: (usize, usize), what: &str) {
        let seen = self.gitlab().seen();
        let api: Vec<_> = seen.api_requests[mark.0..]
            .iter()
            .map(|r| format!("{} {}", r.method, r.path_and_query))
            .collect();
        let git: Vec<_> = seen.git_requests[mark.1..]
            .iter()
            .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
            .collect();
        assert!(
            api.is_empty() && git.is_empty(),
            "{what}: GitLab received {api:?} {git:?}"
        );
    }
}

/// One access grant as made: its id, its token and the whole answer.
pub(crate) struct Grant {
    pub id: String,
    pub token: String,
    pub body: Value,
}

/// The OAuth application's scopes at the fake GitLab: the default ones and `api`.
fn application_scopes() -> Vec<String> {
    let mut scopes = default_application().scopes;
    scopes.extend(["api".into(), "sudo".into()]);
    scopes
}

async fn gitlab_granting_api() -> GitLabWorld {
    let ca = TestCa::new("Corp Test Root CA");
    let mut application = default_application();
    application.scopes = application_scopes();
    let gitlab = FakeGitLab::start_with(
        &ca.issue(&["localhost", "127.0.0.1"], Validity::Current),
        Discovery::Correct,
        application,
    )
    .await;
    GitLabWorld { ca, gitlab }
}

/// Runs real `git` in `dir` with nothing of the machine's configuration: no credential
/// helper, no prompt, and a low-speed limit so that a stalled transfer fails instead of hanging.
pub(crate) async fn git(dir: &Path, args: &[&str]) -> Output {
    git_with(dir, args, &[]).await
}

pub(crate) async fn git_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_ASKPASS")
        .env_remove("SSH_ASKPASS")
        .args(["-c", "credential.helper="])
        .args([
            "-c",
            "http.lowSpeedLimit=1000",
            "-c",
            "http.lowSpeedTime=30",
        ])
        .args(["-c", "user.name=Bot", "-c", "user.email=bot@corp.example"])
        .args(args)
        .stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// Everything git printed, for messages and for looking for secrets.
pub(crate) fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Asserts labgate's own refusal of a path it does not allow: `403 outside_grant`, or `400` for
/// a path that is not even well formed.
pub(crate) async fn expect_refused(response: Response) {
    let status = response.status().as_u16();
    let url = response.url().to_string();
    let content_type = response.headers().get("content-type").cloned();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    assert!(
        (status == 403 && body["code"] == "outside_grant") || status == 400,
        "{url}: {status} {body}"
    );
    assert_eq!(
        content_type.as_ref().and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "{url}"
    );
}

/// Asserts a problem naming `field` (labgate answers bad fields with 400 or 422).
pub(crate) async fn expect_bad_field(response: Response, field: &str) {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert!(
        status == 400 || status == 422,
        "bad {field}: status {status}: {body}"
    );
    assert!(body.contains(field), "the answer names {field}: {body}");
}
