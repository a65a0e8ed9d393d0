//! A fake GitLab on real TLS, installed under the sub-path `/gitlab`, behaving as GitLab's
//! provider (Doorkeeper + doorkeeper-openid_connect) does per ../shared/docs/GITLAB.md, not as
//! a friendlier one: exact redirect URIs, `api` when no scope is sent, PKCE checked, 64-hex
//! tokens that expire, refresh that revokes the old pair at once, `invalid_grant` on reuse,
//! RS256 ID tokens (120 s) signed with one of two keys published in the JWKS.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::certs::ServerCert;

pub const SUB_PATH: &str = "/gitlab";

/// How the discovery document deviates from a well-configured GitLab, for the failure tests.
#[derive(Clone, Default)]
pub enum Discovery {
    #[default]
    Correct,
    /// GitLab's `external_url` names another issuer than the URL it is reached at.
    Issuer(String),
    /// A reverse proxy answers an HTML page instead.
    Html,
    /// Discovery redirects elsewhere, as a moved installation would.
    Redirect(String),
    /// An old or crippled provider without PKCE S256.
    WithoutS256,
    /// A discovery document that sends the token endpoint to another host.
    ForeignTokenEndpoint(String),
}

/// The OAuth application the administrator created in this GitLab.
#[derive(Clone)]
pub struct Application {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
}

/// How an issued ID token is spoiled, for the attack tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IdTokenFault {
    #[default]
    None,
    WrongAudience,
    WrongIssuer,
    WrongNonce,
    Expired,
    AlgNone,
    BadSignature,
    /// The issuer without GitLab's sub-path: what a client that drops the path would expect.
    IssuerWithoutSubPath,
    IssuerWithTrailingSlash,
}

/// How the token endpoint fails a refresh, as GitLab or a proxy in front of it can.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RefreshFault {
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

/// What the fake does that a test may change while it runs.
#[derive(Clone)]
pub struct Behaviour {
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
}

/// One authorization code, as the authorize endpoint recorded it.
struct CodeGrant {
    redirect_uri: String,
    scopes: Vec<String>,
    challenge: Option<(String, String)>,
    nonce: Option<String>,
}

/// Every pair issued, found by either of its tokens: a refresh storm looks tokens up by the
/// ten thousand.
#[derive(Default)]
struct Tokens {
    records: Vec<TokenRecord>,
    by_token: HashMap<String, usize>,
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
pub struct Seen {
    pub authorize_queries: Vec<HashMap<String, String>>,
    pub code_exchanges: usize,
    pub refreshes: usize,
    pub revoked_tokens: Vec<String>,
    /// Refresh tokens presented again after a refresh had rotated them.
    pub rotated_reuses: usize,
    /// Per grant (family), when its last rotation committed (unix milliseconds).
    pub last_rotation_ms: HashMap<usize, u128>,
    /// Refreshes received and not yet decided (GitLab still working on them).
    pub refreshes_in_progress: usize,
}

struct State {
    issuer: String,
    discovery: Discovery,
    app: Application,
    behaviour: Behaviour,
    codes: HashMap<String, CodeGrant>,
    tokens: Tokens,
    seen: Seen,
    /// Where `serve_git` keeps bare repositories, as `group/project.git`.
    git_root: Option<std::path::PathBuf>,
}

pub struct FakeGitLab {
    pub port: u16,
    handle: ServerHandle,
    state: Arc<Mutex<State>>,
}

pub const USER_ID: u64 = 4242;
pub const USERNAME: &str = "alice";

impl FakeGitLab {
    pub async fn start(cert: &ServerCert, discovery: Discovery) -> Self {
        Self::start_with(cert, discovery, default_application()).await
    }

    pub async fn start_with(cert: &ServerCert, discovery: Discovery, app: Application) -> Self {
        // Made before serving: no request should wait on RSA key generation.
        signing_keys();
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
            },
            issuer,
            discovery,
            app,
            codes: HashMap::new(),
            tokens: Tokens::default(),
            seen: Seen::default(),
            git_root: None,
        }));
        let shared = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new().app_data(shared.clone()).service(
                web::scope(SUB_PATH)
                    .route(
                        "/.well-known/openid-configuration",
                        web::get().to(openid_configuration),
                    )
                    .route("/oauth/authorize", web::get().to(authorize))
                    .route("/oauth/token", web::post().to(token))
                    .route("/oauth/revoke", web::post().to(revoke))
                    .route("/oauth/token/info", web::get().to(token_info))
                    .route("/oauth/discovery/keys", web::get().to(keys))
                    .route("/oauth/userinfo", web::get().to(userinfo))
                    .route("/api/v4/user", web::get().to(api_user))
                    .route(
                        "/{repository:.+\\.git}/{rest:.*}",
                        web::route().to(git_over_http),
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
    pub fn base_url(&self) -> String {
        format!("https://localhost:{}{SUB_PATH}", self.port)
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }

    pub fn behave(&self, change: impl FnOnce(&mut Behaviour)) {
        change(&mut self.state.lock().unwrap().behaviour);
    }

    pub fn seen(&self) -> Seen {
        self.state.lock().unwrap().seen.clone()
    }

    /// Serves the bare repositories under `root` over git's smart HTTP protocol.
    pub fn serve_git(&self, root: &std::path::Path) {
        self.state.lock().unwrap().git_root = Some(root.to_owned());
    }

    /// Revokes a token as the person would by removing the application in GitLab.
    pub fn revoke_token(&self, token: &str) {
        let mut state = self.state.lock().unwrap();
        if let Some(record) = state.tokens.find_mut(token) {
            record.revoked = true;
        }
    }

    /// Every access and refresh token this GitLab has issued, live or not.
    pub fn issued_tokens(&self) -> Vec<String> {
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
    pub fn seed_grant(&self, scopes: &[&str], lifetime: Duration) -> (String, String) {
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

    /// Whether GitLab would accept this access token now (not revoked, not expired).
    /// The grant (family) a token belongs to, kept across rotations.
    pub fn family_of(&self, token: &str) -> Option<usize> {
        let state = self.state.lock().unwrap();
        state
            .tokens
            .by_token
            .get(token)
            .map(|&i| state.tokens.records[i].family)
    }

    pub fn access_token_works(&self, access_token: &str) -> bool {
        let state = self.state.lock().unwrap();
        state
            .tokens
            .find(access_token)
            .is_some_and(|t| t.access == access_token && t.is_live())
    }
}

pub fn default_application() -> Application {
    Application {
        client_id: "3b8a1c2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9".into(),
        client_secret: crate::helpers::CLIENT_SECRET.into(),
        redirect_uri: format!("{}/oauth/corp/callback", crate::helpers::PUBLIC_URL),
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

async fn openid_configuration(state: Shared) -> HttpResponse {
    let state = state.lock().unwrap();
    let base = &state.issuer;
    let mode = &state.discovery;
    let issuer = match mode {
        Discovery::Issuer(other) => other.clone(),
        _ => base.clone(),
    };
    let pkce = match mode {
        Discovery::WithoutS256 => json!(["plain"]),
        _ => json!(["plain", "S256"]),
    };
    match mode {
        Discovery::Html => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body("<!DOCTYPE html><html><body>Sign in</body></html>"),
        Discovery::Redirect(to) => HttpResponse::Found().insert_header(("Location", to.as_str())).finish(),
        _ => HttpResponse::Ok().json(json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{base}/oauth/authorize"),
            "token_endpoint": match mode {
                Discovery::ForeignTokenEndpoint(url) => url.clone(),
                _ => format!("{base}/oauth/token"),
            },
            "revocation_endpoint": format!("{base}/oauth/revoke"),
            "introspection_endpoint": format!("{base}/oauth/introspect"),
            "userinfo_endpoint": format!("{base}/oauth/userinfo"),
            "jwks_uri": format!("{base}/oauth/discovery/keys"),
            "scopes_supported": ["api", "read_api", "read_user", "read_repository", "write_repository",
                                 "openid", "profile", "email"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query", "fragment"],
            "grant_types_supported": ["authorization_code", "password", "client_credentials",
                                      "device_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claim_types_supported": ["normal"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "sub_legacy", "name", "nickname",
                                 "preferred_username", "email", "email_verified", "website", "profile",
                                 "picture", "groups", "groups_direct"],
            "code_challenge_methods_supported": pkce,
        })),
    }
}

/// Auto-consent, as for a trusted instance-wide application.
async fn authorize(state: Shared, query: web::Query<HashMap<String, String>>) -> HttpResponse {
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
struct TokenForm {
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

async fn token(shared: Shared, req: HttpRequest, form: web::Form<TokenForm>) -> HttpResponse {
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
        actix_web::rt::time::sleep(working).await;
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
            state.seen.code_exchanges += 1;
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
struct RevokeForm {
    token: String,
    client_id: Option<String>,
    client_secret: Option<String>,
}

async fn revoke(state: Shared, req: HttpRequest, form: web::Form<RevokeForm>) -> HttpResponse {
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
async fn token_info(state: Shared, req: HttpRequest) -> HttpResponse {
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

async fn keys() -> HttpResponse {
    let keys = signing_keys();
    // GitLab publishes the CI job JWT key beside the OIDC key: clients must pick by `kid`.
    HttpResponse::Ok().json(json!({"keys": [keys.ci.jwk(), keys.oidc.jwk()]}))
}

async fn userinfo(state: Shared, req: HttpRequest) -> HttpResponse {
    let state = state.lock().unwrap();
    match bearer_record(&state, &req) {
        Some(record) if record.scopes.iter().any(|s| s == "openid") => {
            HttpResponse::Ok().json(user_claims())
        }
        _ => HttpResponse::Unauthorized().json(json!({"error": "invalid_token"})),
    }
}

async fn api_user(state: Shared, req: HttpRequest) -> HttpResponse {
    let state = state.lock().unwrap();
    match bearer_record(&state, &req) {
        Some(record) if record.scopes.iter().any(|s| ["api", "read_api", "read_user"].contains(&s.as_str())) => {
            HttpResponse::Ok().json(json!({"id": USER_ID, "username": USERNAME, "name": "Alice Liddell", "state": "active"}))
        }
        Some(_) => HttpResponse::Forbidden().json(json!({"error": "insufficient_scope"})),
        None => HttpResponse::Unauthorized().json(json!({"message": "401 Unauthorized"})),
    }
}

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

fn id_token(state: &State, nonce: Option<&str>) -> String {
    let fault = state.behaviour.id_token_fault;
    let issued = if fault == IdTokenFault::Expired {
        now() - 600
    } else {
        now()
    };
    let mut claims = user_claims();
    claims["iss"] = json!(match fault {
        IdTokenFault::WrongIssuer => "https://gitlab.evil.example".to_owned(),
        IdTokenFault::IssuerWithoutSubPath => state.issuer.trim_end_matches(SUB_PATH).to_owned(),
        IdTokenFault::IssuerWithTrailingSlash => format!("{}/", state.issuer),
        _ => state.issuer.clone(),
    });
    claims["aud"] = json!(if fault == IdTokenFault::WrongAudience {
        "another-application".to_owned()
    } else {
        state.app.client_id.clone()
    });
    claims["iat"] = json!(issued);
    claims["auth_time"] = json!(issued);
    claims["exp"] = json!(issued + 120);
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(if fault == IdTokenFault::WrongNonce {
            "another-nonce"
        } else {
            nonce
        });
    }
    let keys = signing_keys();
    match fault {
        IdTokenFault::AlgNone => {
            let header = URL_SAFE_NO_PAD
                .encode(json!({"alg": "none", "typ": "JWT", "kid": keys.oidc.kid}).to_string());
            format!("{header}.{}.", URL_SAFE_NO_PAD.encode(claims.to_string()))
        }
        IdTokenFault::BadSignature => {
            // Signed by the CI key but claiming the OIDC key's kid.
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some(keys.oidc.kid.clone());
            jsonwebtoken::encode(&header, &claims, &keys.ci.encoding).unwrap()
        }
        _ => {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some(keys.oidc.kid.clone());
            jsonwebtoken::encode(&header, &claims, &keys.oidc.encoding).unwrap()
        }
    }
}

fn user_claims() -> Value {
    json!({
        "sub": USER_ID.to_string(),
        "sub_legacy": "2ecb3bc6bdf0c2d6f4b1a1e8c5e5a2f1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5",
        "name": "Alice Liddell",
        "nickname": USERNAME,
        "preferred_username": USERNAME,
        "email": "alice@corp.example",
        "email_verified": true,
        "groups_direct": ["platform"],
    })
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    n: String,
    e: String,
}

impl SigningKey {
    fn generate(kid: &str) -> Self {
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let pem = key.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).unwrap();
        Self {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
            n: URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
            e: URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
        }
    }

    fn jwk(&self) -> Value {
        json!({"kty": "RSA", "kid": self.kid, "e": self.e, "n": self.n, "use": "sig", "alg": "RS256"})
    }
}

struct SigningKeys {
    oidc: SigningKey,
    ci: SigningKey,
}

/// Made once per test run: RSA key generation is the slowest thing the fake does.
fn signing_keys() -> &'static SigningKeys {
    static KEYS: OnceLock<SigningKeys> = OnceLock::new();
    KEYS.get_or_init(|| SigningKeys {
        oidc: SigningKey::generate("oidc-key-1"),
        ci: SigningKey::generate("ci-jwt-key-1"),
    })
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

/// Git over HTTPS as GitLab does it: Basic auth whose password is an OAuth access token with
/// a repository scope (the user name is ignored), then `git http-backend` as a CGI program.
async fn git_over_http(state: Shared, req: HttpRequest, body: web::Bytes) -> HttpResponse {
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
