//! Exchanges that succeed: a GitLab CI/CD job's ID token and a Kubernetes service-account token
//! each buy a service token that fetches credentials; the exchange is audited; the service token
//! ends no later than the token it was bought with.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{
    AUDIENCE, PROJECT, SUBJECT, audit_event, ci_world, exchange, exchanged, exchanged_token,
    expect_refusal, trust,
};
use crate::helpers::ConnectWorld;
use crate::support::database::Backend;
use crate::support::fake_issuer::FakeIssuer;
use crate::support::jwt::now;

on_both_backends!(
    a_gitlab_ci_token_buys_a_service_token_that_fetches_credentials,
    the_service_token_never_outlives_the_ci_token,
    a_kubernetes_token_is_trusted_through_the_clusters_own_ca,
);

async fn a_gitlab_ci_token_buys_a_service_token_that_fetches_credentials(backend: Backend) {
    let cw = ci_world(backend).await;
    let job = cw.world.gitlab.ci_token(AUDIENCE, PROJECT);
    let job_exp = job.claims()["exp"].as_i64().unwrap();
    let job_sub = job.claims()["sub"].as_str().unwrap().to_owned();
    let id_token = job.sign();

    let response = exchange(&cw.app, &cw.service_client_id, &id_token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(answer["token_type"], "Bearer");
    let expires_in = answer["expires_in"].as_i64().unwrap();
    assert!(
        0 < expires_in && expires_in <= 900 && expires_in <= job_exp - now() + 1,
        "{answer}"
    );
    let service_token = answer["access_token"].as_str().unwrap();

    let fetched = cw
        .fetch_as(
            service_token,
            json!({"instance": "corp", "subject": SUBJECT}),
        )
        .await;
    let status = fetched.status();
    let fetched: Value = fetched.json().await.unwrap();
    assert_eq!(status, 200, "{fetched}");
    assert!(
        cw.world
            .gitlab
            .access_token_works(fetched["access_token"].as_str().unwrap()),
        "a GitLab token that works: {fetched}"
    );

    let event = audit_event(&cw.app, "service_token_exchanged").await;
    assert_eq!(event["actor"], "service:ci-bot", "{event}");
    assert_eq!(event["subject"], SUBJECT, "the bound subject: {event}");
    let detail = event["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&cw.world.gitlab.base_url()) || detail.contains("corp"),
        "the issuer is named: {detail}"
    );
    for named in [
        job_sub.as_str(),
        "project_path=group/app",
        "ref_protected=true",
    ] {
        assert!(detail.contains(named), "{named} in the detail: {detail}");
    }
    let audit = cw.app.get_json("/api/v1/audit").await.to_string();
    assert!(
        !audit.contains(&id_token) && !audit.contains(service_token),
        "no token in the audit log"
    );
}

/// A job's token that expires in two minutes buys a service token that ends with it, not 15
/// minutes later; an hour-long one buys 15 minutes at most.
async fn the_service_token_never_outlives_the_ci_token(backend: Backend) {
    let cw = ci_world(backend).await;
    let soon = now() + 120;
    let short = cw
        .world
        .gitlab
        .ci_token(AUDIENCE, PROJECT)
        .claim("exp", soon)
        .sign();
    let answer = exchanged(&cw.app, &cw.service_client_id, &short).await;
    let expires_in = answer["expires_in"].as_i64().unwrap();
    assert!(
        (100..=120).contains(&expires_in),
        "ends with the job's token: {answer}"
    );
    let service_token = answer["access_token"].as_str().unwrap();
    let token_exp = payload(service_token)["exp"].as_i64().unwrap();
    assert!(
        token_exp <= soon,
        "the issued token's exp: {token_exp} > {soon}"
    );

    let long = cw.world.gitlab.ci_token(AUDIENCE, PROJECT).sign();
    let answer = exchanged(&cw.app, &cw.service_client_id, &long).await;
    let expires_in = answer["expires_in"].as_i64().unwrap();
    assert!((880..=900).contains(&expires_in), "{answer}");
    let token_exp = payload(answer["access_token"].as_str().unwrap())["exp"]
        .as_i64()
        .unwrap();
    assert!(token_exp <= now() + 900, "{token_exp}");
}

/// A Kubernetes API server as issuer: discovery at its URL, its TLS trusted through the
/// identity's `ca_pem` (a CA GitLab has nothing to do with), ES256 signatures.
async fn a_kubernetes_token_is_trusted_through_the_clusters_own_ca(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    cw.connect(SUBJECT, json!({})).await;
    let cluster = FakeIssuer::start().await;
    trust(
        &cw.app,
        "ci-bot",
        json!([{
            "issuer": cluster.issuer(),
            "ca_pem": cluster.ca.pem(),
            "audience": "labgate",
            "claims": {"sub": "system:serviceaccount:ci:builder"},
        }]),
    )
    .await;

    let pod_token = cluster
        .service_account_token("labgate", "ci", "builder")
        .sign();
    let service_token = exchanged_token(&cw.app, &cw.service_client_id, &pod_token).await;
    let fetched = cw
        .fetch_as(
            &service_token,
            json!({"instance": "corp", "subject": SUBJECT}),
        )
        .await;
    assert_eq!(fetched.status(), 200, "the service token works");
    assert!(cluster.seen().jwks_requests >= 1, "keys from its JWKS");

    let other_namespace = cluster
        .service_account_token("labgate", "ci-evil", "builder")
        .sign();
    expect_refusal(
        exchange(&cw.app, &cw.service_client_id, &other_namespace).await,
        "claim sub",
    )
    .await;
    let other_audience = cluster
        .service_account_token("kubernetes", "ci", "builder")
        .sign();
    expect_refusal(
        exchange(&cw.app, &cw.service_client_id, &other_audience).await,
        "audience",
    )
    .await;
}

/// A JWT's claims, read without checking anything.
fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}
