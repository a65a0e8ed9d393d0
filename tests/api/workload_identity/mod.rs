//! Workload identity (SPEC, "Workload identity"): a service trusts GitLab CI/CD ID tokens and
//! Kubernetes service-account tokens, and exchanges them (RFC 8693) for a service token.
//! - `exchange`: tokens of both issuers exchanged, the service token used, the exchange audited;
//! - `refusals`: every check that refuses a subject token, named in `error_description`, counted;
//! - `claims`: prefix globs, subjects bound by a claim, one service's identity at another;
//! - `keys`: the JWKS cache, unknown-kid floods, key rotation, issuers out of reach;
//! - `policy`: the `identities` field validated, echoed and replaced; removal retires tokens;
//! - `tools`: `labgate credentials` and `labgate git-credential` with a CI job's ID token.

mod claims;
mod exchange;
mod keys;
mod policy;
mod refusals;
mod tools;

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{ConnectWorld, TestApp};
use crate::support::database::Backend;

/// The audience CI jobs ask GitLab for: `id_tokens: {LABGATE_ID_TOKEN: {aud: ...}}`.
pub(crate) const AUDIENCE: &str = "https://labgate.corp.example";
/// The project whose jobs `ci-bot` trusts in `ci_world`.
pub(crate) const PROJECT: &str = "group/app";
/// The subject bound by `ci_world`'s identity: the GitLab user who started the job.
pub(crate) const SUBJECT: &str = crate::support::fake_gitlab::USERNAME;
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// An identity trusting CI/CD jobs of instance `corp` whose claims match `claims`.
pub(crate) fn ci_identity(claims: Value) -> Value {
    json!({"issuer": "corp", "audience": AUDIENCE, "claims": claims})
}

/// `ConnectWorld` (instance `corp`, service `ci-bot`) with alice connected as subject `alice`,
/// and `ci-bot` trusting jobs of `group/app` on protected refs, bound to the job's `user_login`.
pub(crate) async fn ci_world(backend: Backend) -> ConnectWorld {
    let cw = ConnectWorld::start(backend).await;
    cw.connect(SUBJECT, json!({})).await;
    let mut identity = ci_identity(json!({"project_path": PROJECT, "ref_protected": "true"}));
    identity["subject_claim"] = json!("user_login");
    trust(&cw.app, "ci-bot", json!([identity])).await;
    cw
}

/// Replaces the identities `service` trusts, as an admin would with `PATCH`.
pub(crate) async fn trust(app: &TestApp, service: &str, identities: Value) {
    let response = app
        .admin(Method::PATCH, &format!("/api/v1/services/{service}"))
        .json(&json!({"identities": identities}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, 200, "trusting {identities}: {body}");
}

/// `POST /api/v1/service-token` with exactly `form`.
pub(crate) async fn exchange_form(app: &TestApp, form: &[(&str, &str)]) -> Response {
    app.client
        .post(format!("{}/api/v1/service-token", app.address))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// The token exchange, as a workload sends it.
pub(crate) async fn exchange(app: &TestApp, client_id: &str, subject_token: &str) -> Response {
    exchange_form(
        app,
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("client_id", client_id),
            ("subject_token", subject_token),
            ("subject_token_type", JWT_TYPE),
        ],
    )
    .await
}

/// The answer of an exchange that must succeed.
pub(crate) async fn exchanged(app: &TestApp, client_id: &str, subject_token: &str) -> Value {
    let response = exchange(app, client_id, subject_token).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "exchange refused: {body}");
    body
}

/// The service token bought with `subject_token`.
pub(crate) async fn exchanged_token(app: &TestApp, client_id: &str, subject_token: &str) -> String {
    exchanged(app, client_id, subject_token).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Asserts RFC 8693's refusal of a subject token, `400 invalid_request`, whose
/// `error_description` names `check`.
pub(crate) async fn expect_refusal(response: Response, check: &str) {
    if let Some(wrong) = not_refused(response, check).await {
        panic!("{wrong}");
    }
}

/// What is wrong with `response` as RFC 8693's refusal naming `check` (`<check>: <why>`), if
/// anything.
pub(crate) async fn not_refused(response: Response, check: &str) -> Option<String> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    let named = body["error_description"]
        .as_str()
        .is_some_and(|d| d.starts_with(&format!("{check}: ")));
    (status != 400 || body["error"] != "invalid_request" || !named)
        .then(|| format!("expected 400 invalid_request `{check}: …`, got {status} {body}"))
}

/// The newest audit event of `kind`; waits up to two seconds for it to be written.
pub(crate) async fn audit_event(app: &TestApp, kind: &str) -> Value {
    for _ in 0..20 {
        let audit = app.get_json("/api/v1/audit?limit=20").await;
        let found = audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == kind)
            .cloned();
        if let Some(event) = found {
            return event;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no {kind} event in the audit log");
}
