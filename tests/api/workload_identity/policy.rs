//! The `identities` policy field: echoed as given, replaced whole by `PATCH`, refused with the
//! offending identity and field named; an identity removed retires the tokens it minted.

use reqwest::Method;
use serde_json::{Value, json};

use super::{AUDIENCE, PROJECT, ci_identity, ci_world, exchanged_token, trust};
use crate::helpers::{ConnectWorld, TestApp, expect_problem};
use crate::support::certs::TestCa;
use crate::support::database::Backend;

on_both_backends!(
    identities_are_echoed_and_replaced_whole,
    bad_identities_are_named,
    removing_an_identity_retires_the_tokens_it_minted,
);

const CLUSTER: &str = "https://kubernetes.default.svc";

fn cluster_identity(ca_pem: &str) -> Value {
    json!({
        "issuer": CLUSTER, "ca_pem": ca_pem, "audience": "labgate",
        "claims": {"sub": "system:serviceaccount:ci:*"}, "subject_claim": "sub",
    })
}

/// The service's identities as labgate answers them, `ca_pem` trimmed of trailing whitespace.
async fn identities_of(app: &TestApp, service: &str) -> Value {
    let mut service = app.get_json(&format!("/api/v1/services/{service}")).await;
    trimmed(service["identities"].take())
}

fn trimmed(mut identities: Value) -> Value {
    for identity in identities.as_array_mut().into_iter().flatten() {
        if let Some(pem) = identity.get_mut("ca_pem") {
            *pem = json!(pem.as_str().unwrap().trim_end());
        }
    }
    identities
}

async fn identities_are_echoed_and_replaced_whole(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    assert_eq!(
        identities_of(&cw.app, "ci-bot").await,
        json!([]),
        "none by default"
    );
    let ca_pem = TestCa::new("Cluster Test Root CA").pem();
    let ci = ci_identity(json!({"project_path": "group/*", "ref_protected": "true"}));
    let both = json!([ci, cluster_identity(&ca_pem)]);
    let response = cw
        .app
        .admin(Method::POST, "/api/v1/services")
        .json(
            &json!({"name": "wi-bot", "instances": ["corp"], "scopes": ["read_api"],
                      "identities": both}),
        )
        .send()
        .await
        .unwrap();
    let status = response.status();
    let created: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        trimmed(created["identities"].clone()),
        trimmed(both.clone())
    );
    assert_eq!(identities_of(&cw.app, "wi-bot").await, trimmed(both));

    let patch = |body: Value| {
        cw.app
            .admin(Method::PATCH, "/api/v1/services/wi-bot")
            .json(&body)
            .send()
    };
    let replaced = patch(json!({"identities": [ci]})).await.unwrap();
    assert_eq!(replaced.status(), 200);
    let replaced: Value = replaced.json().await.unwrap();
    assert_eq!(
        replaced["identities"],
        json!([ci]),
        "the whole list replaced"
    );
    let other = patch(json!({"scopes": ["read_api", "read_repository"]}))
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    assert_eq!(
        identities_of(&cw.app, "wi-bot").await,
        json!([ci]),
        "left alone by a PATCH without them"
    );
    assert_eq!(
        patch(json!({"identities": []})).await.unwrap().status(),
        200
    );
    assert_eq!(identities_of(&cw.app, "wi-bot").await, json!([]));
}

async fn bad_identities_are_named(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    let ca_pem = TestCa::new("Cluster Test Root CA").pem();
    let good = ci_identity(json!({"project_path": PROJECT}));
    let with = |field: &str, value: Value| {
        let mut identity = good.clone();
        identity[field] = value;
        identity
    };
    let cases = [
        (json!([with("claims", json!({}))]), "identities[0].claims"),
        (
            json!([with("claims", json!({"project_path": "group/*/app"}))]),
            "identities[0].claims",
        ),
        (
            json!([with("claims", json!({"project_path": "*"}))]),
            "identities[0].claims",
        ),
        (
            json!([with("claims", json!({"ref_protected": true}))]),
            "identities[0].claims",
        ),
        (
            json!([with("issuer", json!("nowhere"))]),
            "identities[0].issuer",
        ),
        (
            json!([with("issuer", json!("http://kubernetes.default.svc"))]),
            "identities[0].issuer",
        ),
        (
            json!([with("ca_pem", json!(ca_pem))]),
            "identities[0].ca_pem",
        ),
        (
            json!([cluster_identity(
                "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
            )]),
            "identities[0].ca_pem",
        ),
        (
            json!([with("audience", json!(""))]),
            "identities[0].audience",
        ),
        (
            json!([good, with("claims", json!({}))]),
            "identities[1].claims",
        ),
    ];
    let mut wrong = Vec::new();
    for (identities, field) in cases {
        let post = cw
            .app
            .admin(Method::POST, "/api/v1/services")
            .json(
                &json!({"name": "wi-bot", "instances": ["corp"], "scopes": ["read_api"],
                          "identities": identities}),
            )
            .send()
            .await
            .unwrap();
        let patch = cw
            .app
            .admin(Method::PATCH, "/api/v1/services/ci-bot")
            .json(&json!({"identities": identities}))
            .send()
            .await
            .unwrap();
        for (method, response) in [("POST", post), ("PATCH", patch)] {
            let problem = expect_problem(response, 422, "validation_failed").await;
            let named = problem["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["field"].as_str().is_some_and(|f| f.starts_with(field)));
            if !named {
                wrong.push(format!(
                    "{method} {identities}: {field} not named in {problem}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(identities_of(&cw.app, "ci-bot").await, json!([]));
    expect_problem(
        cw.app.call(Method::GET, "/api/v1/services/wi-bot").await,
        404,
        "not_found",
    )
    .await;
}

/// `ci-bot` trusts jobs of `group/app` (bound) and of `group/other`; the second identity is
/// removed: the token it minted stops at its next request, the first identity's token and the
/// client secret's token go on working.
async fn removing_an_identity_retires_the_tokens_it_minted(backend: Backend) {
    let cw = ci_world(backend).await;
    let kept = identities_of(&cw.app, "ci-bot").await[0].clone();
    let removed = ci_identity(json!({"project_path": "group/other"}));
    trust(&cw.app, "ci-bot", json!([kept, removed])).await;
    let gitlab = &cw.world.gitlab;
    let from_kept = exchanged_token(
        &cw.app,
        &cw.service_client_id,
        &gitlab.ci_token(AUDIENCE, PROJECT).sign(),
    )
    .await;
    let from_removed = exchanged_token(
        &cw.app,
        &cw.service_client_id,
        &gitlab.ci_token(AUDIENCE, "group/other").sign(),
    )
    .await;
    let request = json!({"instance": "corp", "subject": super::SUBJECT});
    for token in [&from_kept, &from_removed, &cw.service_token] {
        assert_eq!(cw.fetch_as(token, request.clone()).await.status(), 200);
    }

    trust(&cw.app, "ci-bot", json!([kept])).await;
    expect_problem(
        cw.fetch_as(&from_removed, request.clone()).await,
        401,
        "invalid_service_token",
    )
    .await;
    assert_eq!(
        cw.fetch_as(&from_kept, request.clone()).await.status(),
        200,
        "the identity kept keeps its tokens"
    );
    assert_eq!(
        cw.fetch(request).await.status(),
        200,
        "the client secret's token is no identity's"
    );
}
