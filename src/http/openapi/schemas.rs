//! Shapes of bodies the handlers read field by field (so that each bad field is named) or build
//! as JSON in place. The shapes handlers serialise from a type are that type's own schema.
//! These types are described, never built (Serialize only lets serde attributes shape them).
#![allow(dead_code)]

use serde::Serialize;
use utoipa::ToSchema;

use crate::http::bodies::{
    DeliveryBody, GitLabUser, IdentityBody, InstanceBody, InstanceRef, ServiceBody,
};

/// `POST /api/v1/instances`; `PATCH` takes any subset (`ca_pem: null` removes the CA).
#[derive(ToSchema, Serialize)]
pub(crate) struct InstanceRequest {
    /// Lowercase letters, digits and dashes; part of the redirect URL.
    name: String,
    /// GitLab's external URL, sub-path included.
    base_url: String,
    client_id: String,
    /// Write-only: never shown again.
    client_secret: String,
    /// PEM bundle of the private CA that signs GitLab's certificate.
    ca_pem: Option<String>,
    /// A list, or one space-separated string; `openid` is required.
    scopes: Vec<String>,
}

/// `GET /api/v1/instances`: in full for an administrator, `{name, base_url}` for a service.
#[derive(ToSchema, Serialize)]
pub(crate) struct InstanceList {
    instances: Vec<InstanceListed>,
}

#[derive(ToSchema, Serialize)]
#[serde(untagged)]
pub(crate) enum InstanceListed {
    Full(Box<InstanceBody<'static>>),
    /// What a service sees of the instances it may use.
    Service(InstanceRef<'static>),
}

#[derive(ToSchema, Serialize)]
pub(crate) struct ServiceRequest {
    name: String,
    /// Instance names the service may use (`["*"]`: all).
    instances: Vec<String>,
    /// The widest GitLab scopes its handouts may carry.
    scopes: Vec<String>,
    /// Origins its connect links may return to.
    return_origins: Option<Vec<String>>,
    /// Project patterns its access grants may name (default `["**"]`).
    projects: Option<Vec<String>>,
    /// `read` (default) or `write`.
    max_access: Option<String>,
    /// Workload identities whose tokens it may exchange for service tokens (default none).
    identities: Option<Vec<IdentityBody<'static>>>,
    /// Where its connection events go (default none); `PATCH` replaces the list.
    webhooks: Option<Vec<WebhookRequest>>,
}

/// A webhook: https, or plain http only to 127.0.0.1, ::1 or localhost.
#[derive(ToSchema, Serialize)]
pub(crate) struct WebhookRequest {
    url: String,
    /// At least 16 characters; signs every delivery (`Labgate-Signature`). Write-only.
    secret: String,
}

/// `GET /api/v1/services/{name}/deliveries`.
#[derive(ToSchema, Serialize)]
pub(crate) struct DeliveryList {
    deliveries: Vec<DeliveryBody<'static>>,
    /// Pass it back as `cursor` for the next page; null on the last one.
    next_cursor: Option<String>,
}

/// A service with its client secret, shown once: on creation and on rotation.
#[derive(ToSchema, Serialize)]
pub(crate) struct ServiceWithSecret {
    #[serde(flatten)]
    service: ServiceBody<'static>,
    client_secret: String,
}

#[derive(ToSchema, Serialize)]
pub(crate) struct ServiceList {
    services: Vec<ServiceBody<'static>>,
    /// Pass it back as `cursor` for the next page; null on the last one.
    next_cursor: Option<String>,
}

#[derive(ToSchema, Serialize)]
pub(crate) struct ConnectSessionRequest {
    instance: String,
    /// The service's own name for the person (its user id, say).
    subject: String,
    /// Defaults to the instance's registered scopes within the service's policy.
    scopes: Option<Vec<String>>,
    /// Where the browser returns with `status=connected|denied|error`.
    return_to: Option<String>,
}

#[derive(ToSchema, Serialize)]
pub(crate) struct ConnectLink {
    id: String,
    /// Single use, for 10 minutes: send the person there.
    url: String,
    expires_at: String,
}

#[derive(ToSchema, Serialize)]
pub(crate) struct Connection {
    id: String,
    service: String,
    instance: String,
    subject: String,
    /// `oauth` (a connect flow's grant) or `access_token` (a personal, project or group token).
    kind: String,
    scopes: Vec<String>,
    /// `active`, `reauthorization_required` or `revoked`.
    status: String,
    status_reason: Option<String>,
    gitlab: GitLabUser<'static>,
    /// When the token held now expires.
    expires_at: String,
    /// An access token without `api` or `self_rotate`: labgate cannot rotate it, and announces
    /// its expiry (`connection.expiring`) 7 days ahead instead.
    rotation_impossible: bool,
    created_at: String,
    updated_at: String,
    refreshed_at: Option<String>,
}

/// A GitLab access token to hold as a connection. Write-only: no answer shows it again.
#[derive(ToSchema, Serialize)]
pub(crate) struct AccessTokenConnectionRequest {
    /// The service the connection is for: required from the administrator, left out by a
    /// service (its own).
    service: Option<String>,
    instance: String,
    subject: String,
    /// A personal, project or group access token.
    access_token: String,
}

#[derive(ToSchema, Serialize)]
pub(crate) struct ConnectionList {
    connections: Vec<Connection>,
    /// Pass it back as `cursor` for the next page; null on the last one.
    next_cursor: Option<String>,
}

/// One refresh attempt, as the rotation ledger recorded it.
#[derive(ToSchema, Serialize)]
pub(crate) struct RefreshAttempt {
    started_at: String,
    finished_at: String,
    /// `ok`, `invalid_grant`, `invalid_client`, `unavailable`, `unknown` or `response_lost`.
    outcome: String,
    gitlab_request_id: Option<String>,
    process: String,
    detail: Option<String>,
}

#[derive(ToSchema, Serialize)]
pub(crate) struct RefreshList {
    refreshes: Vec<RefreshAttempt>,
}

#[derive(ToSchema, Serialize)]
pub(crate) struct CredentialsRequest {
    instance: String,
    subject: String,
    /// Scopes the token must carry (within the service's policy).
    scopes: Option<Vec<String>>,
    /// Seconds the token must stay valid (at least 60, at most 3600).
    min_valid_for: Option<i64>,
}

#[derive(ToSchema, Serialize)]
pub(crate) struct AccessGrantRequest {
    instance: String,
    subject: String,
    /// Project paths or patterns within the service's `projects`.
    projects: Vec<String>,
    /// `read` or `write`.
    access: String,
    /// Seconds, 60 to 3600.
    ttl: Option<i64>,
}

#[derive(ToSchema, Serialize)]
pub(crate) struct AccessGrant {
    id: String,
    service: String,
    instance: String,
    subject: String,
    projects: Vec<String>,
    access: String,
    created_at: String,
    expires_at: String,
}

#[derive(ToSchema, Serialize)]
pub(crate) struct GitAccess {
    url_prefix: String,
    username: String,
}

#[derive(ToSchema, Serialize)]
pub(crate) struct ApiAccess {
    url: String,
}

/// A new grant with its `lgp_` token, shown once.
#[derive(ToSchema, Serialize)]
pub(crate) struct AccessGrantCreated {
    #[serde(flatten)]
    grant: AccessGrant,
    token: String,
    git: GitAccess,
    api: ApiAccess,
}

#[derive(ToSchema, Serialize)]
pub(crate) struct AccessGrantList {
    access_grants: Vec<AccessGrant>,
    /// Pass it back as `cursor` for the next page; null on the last one.
    next_cursor: Option<String>,
}

#[derive(ToSchema, Serialize)]
pub(crate) struct AuditEvent {
    id: i64,
    at: String,
    kind: String,
    /// `admin:token`, `service:{name}`, `labgate`, or `unknown` (a refused sign-in).
    actor: String,
    instance: Option<String>,
    subject: Option<String>,
    connection_id: Option<String>,
    scopes: Option<Vec<String>>,
    detail: Option<String>,
}

#[derive(ToSchema, Serialize)]
pub(crate) struct AuditList {
    events: Vec<AuditEvent>,
    /// Pass it back as `cursor` for the next page; null on the last one.
    next_cursor: Option<String>,
}

/// `application/x-www-form-urlencoded`, with the client in HTTP Basic.
#[derive(ToSchema, Serialize)]
pub(crate) struct ServiceTokenRequest {
    /// `client_credentials` (with HTTP Basic), or
    /// `urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693, no secret).
    grant_type: String,
    /// Token exchange: the service whose identities to trust.
    client_id: Option<String>,
    /// Token exchange: the workload's JWT (a GitLab CI/CD ID token, a Kubernetes
    /// service-account token).
    subject_token: Option<String>,
    /// Token exchange: `urn:ietf:params:oauth:token-type:jwt`.
    subject_token_type: Option<String>,
}

#[derive(ToSchema, Serialize)]
pub(crate) struct ServiceToken {
    /// An HS256 JWT for `Authorization: Bearer`.
    access_token: String,
    /// Token exchange only: `urn:ietf:params:oauth:token-type:access_token`.
    issued_token_type: Option<String>,
    token_type: String,
    expires_in: i64,
}

/// RFC 6749's error body, which the token endpoint answers with.
#[derive(ToSchema, Serialize)]
pub(crate) struct OAuthError {
    error: String,
    error_description: String,
}

/// `POST /api/v1/keys/rotate`: the rotation started, by key ids.
#[derive(ToSchema, Serialize)]
pub(crate) struct RotationStarted {
    /// The id of the key values are re-sealed from.
    from: String,
    /// The id of the key they are re-sealed under.
    to: String,
    /// Whether it continues a rotation left unfinished.
    resumed: bool,
}
