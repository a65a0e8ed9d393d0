//! A fake GitLab on real TLS, installed under the sub-path `/gitlab`, behaving as GitLab's
//! provider (Doorkeeper + doorkeeper-openid_connect) does per ../shared/docs/GITLAB.md, not as
//! a friendlier one. This file is the server and its state; the endpoints live beside it:
//! - `discovery`: the OpenID configuration, and the ways it can be wrong;
//! - `oauth`: authorize, token (exact redirect URIs, `api` when no scope is sent, PKCE checked,
//!   64-hex tokens that expire, refresh that revokes the old pair at once, `invalid_grant` on
//!   reuse), revoke and token info;
//! - `id_token`: RS256 ID tokens (120 s) signed with one of two keys published in the JWKS;
//! - `ci_token`: CI/CD job ID tokens (workload identity), signed with the CI key, which rotates;
//! - `user`: who the person is, for userinfo and `/api/v4/user`;
//! - `api`: a slice of the REST API under `/api/v4` (Grape's routing of `/projects/:id` by numeric
//!   id or URL-encoded path, issues with GitLab's pagination headers, raw files, members, `/user`,
//!   and the cross-project lists), strict about OAuth scopes, recording every request it gets;
//! - `git`: git over HTTPS with an OAuth or access token, through `git http-backend`: clone and
//!   push (protocol v0 and v2), push only with `api` or `write_repository`, every request recorded;
//! - `repos`: the projects this GitLab knows, and bare repositories made for them;
//! - `access_tokens`: personal, project and group access tokens (`glpat-…`), accepted by the API
//!   and git as GitLab accepts them; `access_token_api`: `personal_access_tokens/self` and its
//!   rotation (old token revoked at once, family revoked on reuse), with the faults it can meet.

mod access_token_api;
mod access_tokens;
mod api;
mod ci_token;
mod discovery;
mod git;
mod id_token;
mod oauth;
mod repos;
mod user;

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{App, HttpRequest, HttpServer, web};
use rand::RngCore;

use super::certs::ServerCert;
use super::jwt::KeySet;

pub(crate) use access_token_api::RotationFault;
#[allow(unused_imports)] // the types of what helpers return: named by the tests that need them
pub(crate) use access_tokens::{
    AccessTokenInfo, AccessTokenRequest, AccessTokenSeen, AccessTokenSpec, TokenOwner,
};
pub(crate) use api::{ApiRequest, Hold};
pub(crate) use discovery::Discovery;
pub(crate) use git::GitRequest;
pub(crate) use id_token::IdTokenFault;
pub(crate) use oauth::RefreshFault;
pub(crate) use repos::RUNNERS_TOKEN;
pub(crate) use user::{USER_ID, USERNAME};

pub(crate) const SUB_PATH: &str = "/gitlab";

/// The OAuth application the administrator created in this GitLab.
#[derive(Clone)]
pub(crate) struct Application {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
}

/// What the fake does that a test may change while it runs.
#[derive(Clone)]
pub(crate) struct Behaviour {
    pub token_lifetime: Duration,
    pub id_token_fault: IdTokenFault,
    /// The person at the keyboard clicks "Deny".
    pub deny: bool,
    /// The `iss` authorization-response parameter (RFC 9207). GITLAB.md does not say GitLab
    /// sends it, so by default it does not.
    pub iss_parameter: Option<String>,
    /// Leave `expires_in` out of token responses, as some GitLab 14.10/15.0 versions did.
    pub omit_expires_in: bool,
    pub refresh_fault: RefreshFault,
    /// How long the token endpoint takes to answer a refresh, after committing the rotation.
    pub refresh_delay: Duration,
    /// How long GitLab works on a refresh before it commits the rotation: a client that dies in
    /// this time loses nothing.
    pub commit_delay: Duration,
    /// A scope GitLab grants beyond what was asked (an application misconfigured in GitLab).
    pub extra_granted_scope: Option<String>,
    /// ID tokens without `preferred_username` and `nickname`, both optional in OpenID Connect;
    /// userinfo still names the person.
    pub id_token_without_username: bool,
    /// Who signs in at the authorize page: `preferred_username` and `nickname` in ID tokens.
    pub username: String,
    /// The ID token's `groups_direct`: full paths of the person's groups.
    pub groups_direct: Vec<String>,
    /// How an access token's self-rotation fails (until set back to `None`).
    pub rotation_fault: RotationFault,
    /// How long a self-rotation takes to answer, after committing: a client gone meanwhile
    /// never learns the new token, and the old one is dead.
    pub rotation_delay: Duration,
    /// How long GitLab works on a self-rotation before it commits (it commits even if the
    /// client has gone meanwhile; `AccessTokenSeen::rotations_in_progress` counts these).
    pub rotation_commit_delay: Duration,
}

/// Every pair issued, found by either of its tokens: a refresh storm looks tokens up by the
/// ten thousand.
#[derive(Default)]
struct Tokens {
    records: Vec<TokenRecord>,
    by_token: HashMap<String, usize>,
}

impl Seen {
    /// Discovery and JWKS requests together: every fetch of key material.
    pub(crate) fn key_fetches(&self) -> usize {
        self.discovery_requests + self.jwks_requests
    }
}

impl Tokens {
    fn push(&mut self, record: TokenRecord) {
        let index = self.records.len();
        self.by_token.insert(record.access.clone(), index);
        self.by_token.insert(record.refresh.clone(), index);
        self.records.push(record);
    }

    /// The pair holding `token`, as its access or its refresh token.
    fn find(&self, token: &str) -> Option<&TokenRecord> {
        self.by_token.get(token).map(|&i| &self.records[i])
    }

    fn find_mut(&mut self, token: &str) -> Option<&mut TokenRecord> {
        self.by_token.get(token).map(|&i| &mut self.records[i])
    }

    fn iter(&self) -> impl Iterator<Item = &TokenRecord> {
        self.records.iter()
    }
}

/// One Doorkeeper access-token record: an access token and its refresh token, alive together.
#[derive(Clone)]
struct TokenRecord {
    access: String,
    refresh: String,
    scopes: Vec<String>,
    created_at: u64,
    lifetime: Duration,
    revoked: bool,
    /// Revoked by a refresh that replaced it (not by the revocation endpoint).
    rotated: bool,
    /// The grant this pair belongs to: kept across rotations.
    family: usize,
}

/// What the fake saw, for tests to assert on.
#[derive(Clone, Default)]
pub(crate) struct Seen {
    pub authorize_queries: Vec<HashMap<String, String>>,
    /// Code exchanges carrying a PKCE verifier: labgate redeeming a code it was sent.
    pub code_exchanges: usize,
    /// Token requests for a code without a verifier: the instance check trying the client.
    pub client_checks: usize,
    pub refreshes: usize,
    pub revoked_tokens: Vec<String>,
    /// Refresh tokens presented again after a refresh had rotated them.
    pub rotated_reuses: usize,
    /// Per grant (family), when its last rotation committed (unix milliseconds).
    pub last_rotation_ms: HashMap<usize, u128>,
    /// Refreshes received and not yet decided (GitLab still working on them).
    pub refreshes_in_progress: usize,
    /// Every request under `/api`, in order of arrival.
    pub api_requests: Vec<ApiRequest>,
    /// Every git request over HTTPS, in order of arrival.
    pub git_requests: Vec<GitRequest>,
    /// Requests for the OpenID configuration.
    pub discovery_requests: usize,
    /// Requests for the JWKS.
    pub jwks_requests: usize,
}

struct State {
    issuer: String,
    discovery: Discovery,
    app: Application,
    behaviour: Behaviour,
    codes: HashMap<String, oauth::CodeGrant>,
    tokens: Tokens,
    /// Personal, project and group access tokens, and what happened to them.
    access_tokens: access_tokens::AccessTokens,
    seen: Seen,
    /// Where `serve_git` keeps bare repositories, as `group/project.git`.
    git_root: Option<std::path::PathBuf>,
    /// The directory made for repositories when `serve_git` named none.
    git_dir: Option<tempfile::TempDir>,
    /// The projects this GitLab knows, by id.
    projects: repos::Projects,
    /// Large API bodies stop after their first part until released.
    hold: Option<Hold>,
    /// Large API bodies break off after their first part.
    break_large_bodies: bool,
    /// The CI/CD job keys: the one new ID tokens are signed with, and those published.
    ci_keys: KeySet,
}

pub(crate) struct FakeGitLab {
    pub port: u16,
    handle: ServerHandle,
    state: Arc<Mutex<State>>,
}

impl FakeGitLab {
    pub(crate) async fn start(cert: &ServerCert, discovery: Discovery) -> Self {
        Self::start_with(cert, discovery, default_application()).await
    }

    pub(crate) async fn start_with(
        cert: &ServerCert,
        discovery: Discovery,
        app: Application,
    ) -> Self {
        // Made before serving: no request should wait on RSA key generation.
        id_token::signing_keys();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let issuer = format!("https://localhost:{port}{SUB_PATH}");
        let state = Arc::new(Mutex::new(State {
            behaviour: Behaviour {
                token_lifetime: Duration::from_secs(7200),
                id_token_fault: IdTokenFault::None,
                deny: false,
                iss_parameter: None,
                omit_expires_in: false,
                refresh_fault: RefreshFault::None,
                refresh_delay: Duration::ZERO,
                commit_delay: Duration::ZERO,
                extra_granted_scope: None,
                id_token_without_username: false,
                username: user::USERNAME.to_owned(),
                groups_direct: vec!["platform".to_owned()],
                rotation_fault: RotationFault::None,
                rotation_delay: Duration::ZERO,
                rotation_commit_delay: Duration::ZERO,
            },
            issuer,
            discovery,
            app,
            codes: HashMap::new(),
            tokens: Tokens::default(),
            access_tokens: access_tokens::AccessTokens::default(),
            seen: Seen::default(),
            git_root: None,
            git_dir: None,
            projects: repos::Projects::default(),
            hold: None,
            break_large_bodies: false,
            ci_keys: KeySet::new(id_token::signing_keys().ci.clone()),
        }));
        let shared = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                // Pushes carry whole packs.
                .app_data(web::PayloadConfig::new(1 << 30))
                .service(
                    web::scope(SUB_PATH)
                        .route(
                            "/.well-known/openid-configuration",
                            web::get().to(discovery::openid_configuration),
                        )
                        .route("/oauth/authorize", web::get().to(oauth::authorize))
                        .route("/oauth/token", web::post().to(oauth::token))
                        .route("/oauth/revoke", web::post().to(oauth::revoke))
                        .route("/oauth/token/info", web::get().to(oauth::token_info))
                        .route("/oauth/discovery/keys", web::get().to(id_token::keys))
                        .route("/oauth/userinfo", web::get().to(user::userinfo))
                        .route(
                            "/api/v4/personal_access_tokens/{rest:.*}",
                            web::route().to(access_token_api::endpoint),
                        )
                        .route("/api/{tail:.*}", web::route().to(api::api))
                        .route(
                            "/{repository:.+\\.git}/{rest:.*}",
                            web::route().to(git::git_over_http),
                        ),
                )
        })
        .workers(1)
        .listen_rustls_0_23(listener, cert.rustls_server_config())
        .unwrap()
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            port,
            handle,
            state,
        }
    }

    /// The URL an administrator registers: host, port and the sub-path, no trailing slash.
    pub(crate) fn base_url(&self) -> String {
        format!("https://localhost:{}{SUB_PATH}", self.port)
    }

    pub(crate) async fn stop(&self) {
        self.handle.stop(false).await;
    }

    pub(crate) fn behave(&self, change: impl FnOnce(&mut Behaviour)) {
        change(&mut self.state.lock().unwrap().behaviour);
    }

    /// "Renew secret" in GitLab's application page: the old secret stops working at once.
    pub(crate) fn renew_client_secret(&self) -> String {
        let secret = format!("gloas-renewed-{}", uuid::Uuid::new_v4().simple());
        self.state.lock().unwrap().app.client_secret = secret.clone();
        secret
    }

    pub(crate) fn seen(&self) -> Seen {
        self.state.lock().unwrap().seen.clone()
    }

    /// Serves the bare repositories under `root` over git's smart HTTP protocol.
    pub(crate) fn serve_git(&self, root: &std::path::Path) {
        self.state.lock().unwrap().git_root = Some(root.to_owned());
    }

    /// Revokes a token as the person would by removing the application in GitLab.
    pub(crate) fn revoke_token(&self, token: &str) {
        let mut state = self.state.lock().unwrap();
        if let Some(record) = state.tokens.find_mut(token) {
            record.revoked = true;
        }
    }

    /// Every access and refresh token this GitLab has issued, live or not.
    pub(crate) fn issued_tokens(&self) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state
            .tokens
            .iter()
            .flat_map(|t| [t.access.clone(), t.refresh.clone()])
            .collect()
    }

    /// A live grant issued without a browser flow, as if the person had connected earlier;
    /// returns its (access, refresh) pair.
    #[allow(dead_code)] // used by benches/broker.rs
    pub(crate) fn seed_grant(&self, scopes: &[&str], lifetime: Duration) -> (String, String) {
        let mut state = self.state.lock().unwrap();
        let record = TokenRecord {
            access: random_hex(),
            refresh: random_hex(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            created_at: now(),
            lifetime,
            revoked: false,
            rotated: false,
            family: state.tokens.records.len(),
        };
        let pair = (record.access.clone(), record.refresh.clone());
        state.tokens.push(record);
        pair
    }

    /// The grant (family) a token belongs to, kept across rotations.
    #[allow(dead_code)] // used by the crash test, not by benches/broker.rs
    pub(crate) fn family_of(&self, token: &str) -> Option<usize> {
        let state = self.state.lock().unwrap();
        state
            .tokens
            .by_token
            .get(token)
            .map(|&i| state.tokens.records[i].family)
    }

    /// Whether GitLab would accept this access token now (not revoked, not expired).
    pub(crate) fn access_token_works(&self, access_token: &str) -> bool {
        let state = self.state.lock().unwrap();
        state
            .tokens
            .find(access_token)
            .is_some_and(|t| t.access == access_token && t.is_live())
    }
}

pub(crate) fn default_application() -> Application {
    Application {
        client_id: "3b8a1c2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9".into(),
        client_secret: super::CLIENT_SECRET.into(),
        redirect_uri: format!("{}/oauth/corp/callback", super::PUBLIC_URL),
        scopes: [
            "openid",
            "profile",
            "email",
            "read_user",
            "read_api",
            "read_repository",
            "write_repository",
        ]
        .map(String::from)
        .to_vec(),
    }
}

impl TokenRecord {
    fn is_live(&self) -> bool {
        !self.revoked && now() < self.created_at + self.lifetime.as_secs()
    }
}

type Shared = web::Data<Mutex<State>>;

fn bearer_record<'a>(state: &'a State, req: &HttpRequest) -> Option<&'a TokenRecord> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    state
        .tokens
        .find(token)
        .filter(|t| t.access == token && t.is_live())
}

/// Doorkeeper's tokens: 64 hex characters, no prefix.
fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
