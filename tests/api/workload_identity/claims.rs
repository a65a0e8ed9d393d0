//! What an identity's claims admit: a trailing `*` matches below a path and nothing beside it;
//! a subject claim binds the service token to one subject; one service's identity buys nothing
//! at another service.

use serde_json::json;

use super::{
    AUDIENCE, PROJECT, SUBJECT, ci_identity, ci_world, exchange, exchanged_token, expect_refusal,
    not_refused, trust,
};
use crate::helpers::{ConnectWorld, expect_problem};
use crate::support::database::Backend;

on_both_backends!(
    a_prefix_glob_admits_only_paths_below_it,
    a_bound_token_serves_its_own_subject_only,
    one_services_identity_buys_nothing_at_another,
);

async fn a_prefix_glob_admits_only_paths_below_it(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    trust(
        &cw.app,
        "ci-bot",
        json!([ci_identity(json!({"project_path": "group/*"}))]),
    )
    .await;
    let token = |path: &str| cw.world.gitlab.ci_token(AUDIENCE, path).sign();

    for path in ["group/app", "group/sub/app"] {
        let answer = exchange(&cw.app, &cw.service_client_id, &token(path)).await;
        assert_eq!(answer.status(), 200, "{path} is below group/");
    }
    let mut wrong = Vec::new();
    for path in ["group", "group-evil/app", "Group/app", "groupx/app"] {
        let answer = exchange(&cw.app, &cw.service_client_id, &token(path)).await;
        if let Some(why) = not_refused(answer, "claim project_path").await {
            wrong.push(format!("{path}: {why}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Bound to alice by `user_login`: credentials, access grants and connect links for alice, and
/// for nobody else, whatever the service's own policy allows.
async fn a_bound_token_serves_its_own_subject_only(backend: Backend) {
    let cw = ci_world(backend).await;
    let alice_job = cw.world.gitlab.ci_token(AUDIENCE, PROJECT).sign();
    let token = exchanged_token(&cw.app, &cw.service_client_id, &alice_job).await;
    let call = |path: &str, subject: &str| {
        let mut body = json!({"instance": "corp", "subject": subject});
        if path == "/api/v1/access-grants" {
            body["projects"] = json!([PROJECT]);
            body["access"] = json!("read");
        }
        cw.app
            .client
            .post(format!("{}{path}", cw.app.address))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };

    for path in [
        "/api/v1/credentials",
        "/api/v1/access-grants",
        "/api/v1/connect-sessions",
    ] {
        expect_problem(call(path, "bob").await.unwrap(), 403, "subject_not_allowed").await;
        let own = call(path, SUBJECT).await.unwrap();
        let status = own.status();
        let body = own.text().await.unwrap();
        assert!(status.is_success(), "{path} for {SUBJECT}: {status} {body}");
    }

    // The client secret's own tokens are bound to nobody.
    let unbound = cw
        .fetch(json!({"instance": "corp", "subject": "bob"}))
        .await;
    expect_problem(unbound, 404, "not_connected").await;

    // Bob starts the job: his token is bound to him, not to alice.
    let bob_job = cw
        .world
        .gitlab
        .ci_token(AUDIENCE, PROJECT)
        .claim("user_login", "bob")
        .sign();
    let bobs = exchanged_token(&cw.app, &cw.service_client_id, &bob_job).await;
    let for_alice = cw
        .fetch_as(&bobs, json!({"instance": "corp", "subject": SUBJECT}))
        .await;
    expect_problem(for_alice, 403, "subject_not_allowed").await;
}

/// `other-bot` trusts another project of the same GitLab; `plain-bot` trusts no identity.
async fn one_services_identity_buys_nothing_at_another(backend: Backend) {
    let cw = ci_world(backend).await;
    let (other_id, _) = cw
        .app
        .create_service(&json!({
            "name": "other-bot", "instances": ["corp"], "scopes": ["read_api"],
            "identities": [ci_identity(json!({"project_path": "group/other"}))],
        }))
        .await;
    let (plain_id, _) = cw
        .app
        .create_service(
            &json!({"name": "plain-bot", "instances": ["corp"], "scopes": ["read_api"]}),
        )
        .await;
    let ci_bots_job = cw.world.gitlab.ci_token(AUDIENCE, PROJECT).sign();

    expect_refusal(
        exchange(&cw.app, &other_id, &ci_bots_job).await,
        "claim project_path",
    )
    .await;
    expect_refusal(exchange(&cw.app, &plain_id, &ci_bots_job).await, "issuer").await;
    let others_job = cw.world.gitlab.ci_token(AUDIENCE, "group/other").sign();
    exchanged_token(&cw.app, &other_id, &others_job).await;
    expect_refusal(
        exchange(&cw.app, &cw.service_client_id, &others_job).await,
        "claim project_path",
    )
    .await;
}
