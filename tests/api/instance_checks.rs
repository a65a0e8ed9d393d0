//! Every reason registration is refused after talking to GitLab: each answered with 422, a
//! stable code, a message a person can act on, the step-by-step report, and nothing saved.

use serde_json::{Value, json};

use crate::helpers::{GitLabWorld, TestApp, expect_problem};
use crate::support::certs::{TestCa, Validity};
use crate::support::database::Backend;
use crate::support::fake_gitlab::Discovery;

on_both_backends!(
    a_certificate_from_another_ca_is_refused,
    a_private_ca_is_not_trusted_without_ca_pem,
    an_expired_certificate_is_refused,
    a_certificate_for_another_host_is_refused,
    an_issuer_that_differs_from_the_base_url_is_refused,
    a_base_url_without_the_sub_path_is_refused,
    a_page_that_is_not_json_is_refused,
    a_redirect_is_reported_not_followed,
    a_provider_without_pkce_s256_is_refused,
    an_endpoint_outside_the_base_url_is_refused,
    a_closed_port_is_refused,
    a_host_that_does_not_resolve_is_refused,
    a_client_secret_gitlab_does_not_know_is_refused,
);

/// Registers `body`, expects 422 with `code`, and returns the problem's detail.
async fn refused(app: &TestApp, body: &Value, code: &str) -> String {
    let problem = expect_problem(app.register(body).await, 422, code).await;
    let failed: Vec<&Value> = problem["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{problem}");
    assert_eq!(failed[0]["code"], code);
    assert!(app.instance_names().await.is_empty(), "nothing is saved");
    problem["detail"].as_str().unwrap().to_owned()
}

async fn a_certificate_from_another_ca_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = GitLabWorld::start().await;
    let mut body = world.registration("corp");
    body["ca_pem"] = json!(TestCa::new("Another Corp CA").pem());

    let detail = refused(&app, &body, "tls_unknown_ca").await;
    assert!(
        detail.contains("issued by CN=Corp Test Root CA"),
        "{detail}"
    );
    assert!(
        detail.contains("not signed by the configured CA (CN=Another Corp CA)"),
        "{detail}"
    );
}

async fn a_private_ca_is_not_trusted_without_ca_pem(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = GitLabWorld::start().await;
    let mut body = world.registration("corp");
    body.as_object_mut().unwrap().remove("ca_pem");

    let detail = refused(&app, &body, "tls_unknown_ca").await;
    assert!(
        detail.contains("not signed by the platform's trusted CAs"),
        "{detail}"
    );
    assert!(detail.contains("set ca_pem"), "{detail}");
}

async fn an_expired_certificate_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world =
        GitLabWorld::start_with(Validity::Expired, &["localhost"], Discovery::Correct).await;

    let detail = refused(&app, &world.registration("corp"), "tls_certificate_expired").await;
    assert!(
        detail.contains("expired on") && detail.contains("2021"),
        "{detail}"
    );
}

async fn a_certificate_for_another_host_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = GitLabWorld::start_with(
        Validity::Current,
        &["gitlab.other.test"],
        Discovery::Correct,
    )
    .await;

    let detail = refused(&app, &world.registration("corp"), "tls_hostname_mismatch").await;
    assert!(
        detail.contains("valid for [gitlab.other.test], not for localhost"),
        "{detail}"
    );
}

async fn an_issuer_that_differs_from_the_base_url_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let other_issuer = "https://gitlab.corp.example/gitlab".to_owned();
    let world = GitLabWorld::start_with(
        Validity::Current,
        &["localhost"],
        Discovery::Issuer(other_issuer.clone()),
    )
    .await;

    let detail = refused(&app, &world.registration("corp"), "issuer_mismatch").await;
    assert!(detail.contains(&format!("{other_issuer:?}")), "{detail}");
    assert!(
        detail.contains(&format!("{:?}", world.gitlab.base_url())),
        "{detail}"
    );
}

async fn a_base_url_without_the_sub_path_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = GitLabWorld::start().await;
    let mut body = world.registration("corp");
    body["base_url"] = json!(format!("https://localhost:{}", world.gitlab.port));

    let detail = refused(&app, &body, "discovery_http_status").await;
    assert!(detail.contains("HTTP 404"), "{detail}");
    assert!(detail.contains("sub-path included"), "{detail}");
}

async fn a_page_that_is_not_json_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = GitLabWorld::start_with(Validity::Current, &["localhost"], Discovery::Html).await;

    let detail = refused(&app, &world.registration("corp"), "discovery_not_json").await;
    assert!(detail.contains("text/html"), "{detail}");
}

async fn a_redirect_is_reported_not_followed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let target = "https://gitlab.moved.example/gitlab/.well-known/openid-configuration".to_owned();
    let world = GitLabWorld::start_with(
        Validity::Current,
        &["localhost"],
        Discovery::Redirect(target.clone()),
    )
    .await;

    let detail = refused(&app, &world.registration("corp"), "discovery_redirected").await;
    assert!(
        detail.contains(&target) && detail.contains("follows no redirects"),
        "{detail}"
    );
}

async fn a_provider_without_pkce_s256_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world =
        GitLabWorld::start_with(Validity::Current, &["localhost"], Discovery::WithoutS256).await;

    let detail = refused(&app, &world.registration("corp"), "endpoints_unsupported").await;
    assert!(detail.contains("\"S256\""), "{detail}");
}

async fn a_closed_port_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = GitLabWorld::start().await;
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut body = world.registration("corp");
    body["base_url"] = json!(format!("https://127.0.0.1:{closed_port}/gitlab"));

    let detail = refused(&app, &body, "connection_refused").await;
    assert!(
        detail.contains(&format!("127.0.0.1:{closed_port}")) && detail.contains("nothing listens"),
        "{detail}"
    );
}

async fn a_host_that_does_not_resolve_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = GitLabWorld::start().await;
    let mut body = world.registration("corp");
    body["base_url"] = json!("https://gitlab.does-not-exist.invalid/gitlab");

    let detail = refused(&app, &body, "dns_failed").await;
    assert!(detail.contains("gitlab.does-not-exist.invalid"), "{detail}");
}

async fn an_endpoint_outside_the_base_url_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let elsewhere = "https://collector.attacker.example/oauth/token".to_owned();
    let discovery = Discovery::ForeignTokenEndpoint(elsewhere.clone());
    let world = GitLabWorld::start_with(Validity::Current, &["localhost"], discovery).await;

    let detail = refused(&app, &world.registration("corp"), "endpoints_unsupported").await;
    assert!(
        detail.contains(&elsewhere) && detail.contains("is not under base_url"),
        "{detail}"
    );
}

/// The client is tried without any person (a code GitLab never issued): a wrong secret is
/// found at registration, not when somebody first connects.
async fn a_client_secret_gitlab_does_not_know_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = GitLabWorld::start().await;
    let mut body = world.registration("corp");
    body["client_secret"] = json!("gloas-mistyped-secret");

    let detail = refused(&app, &body, "client_rejected").await;
    assert!(detail.contains("Renew secret"), "{detail}");
    assert!(!detail.contains("gloas-mistyped-secret"), "{detail}");
    assert_eq!(world.gitlab.seen().client_checks, 1);
    assert_eq!(world.gitlab.seen().code_exchanges, 0);

    let good = world.registration("corp");
    assert_eq!(app.register(&good).await.status(), 201);
    assert_eq!(world.gitlab.seen().client_checks, 2);
}
