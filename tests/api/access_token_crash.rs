//! An access token's rotation cut off by SIGKILL: a real `labgate serve` process (the built
//! binary, on PostgreSQL) is killed while GitLab works on its rotation, and started again.
//! The lease of the dead process runs out, and the one that takes over settles the outcome by
//! asking GitLab about the old token: alive, so it rotates once; or dead before its expiry, so
//! the rotation happened and its answer is lost (`refresh_response_lost`, recorded). Either way
//! no rotated token is presented to rotate again, which would revoke the whole family.

use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use labgate::domain::ConnectionStatus;
use labgate::service::connection_tokens::{TokenKind, open_token};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::access_token_rotation::row;
use crate::fleet::Fleet;
use crate::helpers::ConnectWorld;
use crate::support::database::Backend;
use crate::support::fake_gitlab::{AccessTokenRequest, AccessTokenSpec, RotationFault};

/// How long the whole kill-and-recover may take: the dead process's lease (24 s with the
/// fleet's 1 s timeouts) and a sweep or two.
const RECOVERY: Duration = Duration::from_secs(45);

/// A world on PostgreSQL whose `release-bot` holds an access token near expiry (it may rotate
/// itself), with labgate's timeouts matching the fleet's.
async fn world() -> Option<(ConnectWorld, String, String)> {
    let Some(backend) = Backend::postgres() else {
        eprintln!("LABGATE_TEST_POSTGRES_URL is not set: the crash tests need PostgreSQL");
        return None;
    };
    let cw = ConnectWorld::start_with(backend, |settings| {
        settings.outbound.request_timeout = Duration::from_secs(1);
        settings.outbound.connect_timeout = Duration::from_secs(1);
    })
    .await;
    let spec = AccessTokenSpec::days(&["read_api", "read_repository", "self_rotate"], 2)
        .created_at(Utc::now() - TimeDelta::days(300));
    let token = cw.world.gitlab.issue_access_token(spec);
    let response = cw
        .app
        .admin(reqwest::Method::POST, "/api/v1/connections")
        .json(
            &json!({"service": "ci-bot", "instance": "corp", "subject": "release-bot",
            "access_token": token}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    Some((cw, id, token))
}

/// Waits until `done` holds, for at most `limit`.
async fn wait_until(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn rotations_sent(cw: &ConnectWorld) -> Vec<AccessTokenRequest> {
    let seen = cw.world.gitlab.access_token_seen();
    seen.requests
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/self/rotate"))
        .collect()
}

/// Whatever happened, GitLab never saw a rotated token presented to rotate again.
fn assert_no_rotated_token_rotated_again(cw: &ConnectWorld, original: &str) {
    let gitlab = &cw.world.gitlab;
    let original_id = gitlab.access_token_info(original).unwrap().id;
    for request in rotations_sent(cw) {
        assert_eq!(request.token_id, Some(original_id), "{request:?}");
    }
    assert_eq!(
        gitlab.family_revocations(),
        0,
        "the token family was revoked"
    );
    assert_eq!(gitlab.access_token_rotations(), 1);
}

/// The rotation ledger once an attempt with `outcome` is in it (written in batches).
async fn ledger_with(cw: &ConnectWorld, id: &str, outcome: &str) -> Vec<Value> {
    let path = format!("/api/v1/connections/{id}/refreshes");
    let mut listed = Vec::new();
    wait_until(
        &format!("a {outcome} attempt"),
        Duration::from_secs(10),
        async || {
            listed = cw.app.get_json(&path).await["refreshes"]
                .as_array()
                .unwrap()
                .clone();
            listed.iter().any(|r| r["outcome"] == outcome)
        },
    )
    .await;
    listed
}

#[actix_web::test]
async fn killed_before_gitlab_commits_the_rotation_is_settled_and_done_once() {
    let Some((cw, id, old)) = world().await else {
        return;
    };
    let gitlab = &cw.world.gitlab;
    // GitLab works a second on the rotation, then fails it without committing: the process
    // that asked is dead by then, and nothing rotated.
    gitlab.behave(|b| {
        b.rotation_commit_delay = Duration::from_secs(1);
        b.rotation_fault = RotationFault::ServerError;
    });
    let mut fleet = Fleet::start(&cw, 1).await;
    wait_until(
        "a rotation under way",
        Duration::from_secs(10),
        async || gitlab.access_token_seen().rotations_in_progress == 1,
    )
    .await;
    fleet.kill_and_restart(0).await;
    wait_until("GitLab's decision", Duration::from_secs(5), async || {
        rotations_sent(&cw).iter().any(|r| r.status == 500)
    })
    .await;
    // GitLab works normally again (a commit later than labgate's timeout would be another
    // lost answer).
    gitlab.behave(|b| {
        b.rotation_commit_delay = Duration::ZERO;
        b.rotation_fault = RotationFault::None;
    });
    assert!(gitlab.access_token_alive(&old), "nothing was committed");
    let marked = row(&cw, &id).await;
    assert!(marked.refresh_in_flight_since.is_some() && marked.refresh_lease_owner.is_some());

    wait_until("the rotation settled", RECOVERY, async || {
        let row = row(&cw, &id).await;
        row.refresh_in_flight_since.is_none() && gitlab.access_token_rotations() == 1
    })
    .await;

    let row = row(&cw, &id).await;
    assert_eq!(row.status, ConnectionStatus::Active);
    let stored = open_token(&cw.app.context.sealer, &row, TokenKind::Access).unwrap();
    let stored = stored.expose_secret().to_owned();
    assert_ne!(stored, old);
    assert!(gitlab.access_token_alive(&stored), "the stored token works");
    assert!(!gitlab.access_token_alive(&old));
    assert_eq!(gitlab.live_access_tokens_of_family(&old), [stored.as_str()]);
    assert_no_rotated_token_rotated_again(&cw, &old);
    let sent = rotations_sent(&cw);
    assert_eq!(sent.len(), 2, "{sent:?}");
    // Before sending again, the process that took over asked GitLab about the old token.
    let requests = gitlab.access_token_seen().requests;
    let failed = requests.iter().position(|r| r.status == 500).unwrap();
    let committed = requests
        .iter()
        .position(|r| r.new_token_id.is_some())
        .unwrap();
    assert!(
        requests[failed..committed]
            .iter()
            .any(|r| r.method == "GET" && r.token_id == sent[0].token_id && r.status == 200),
        "{requests:?}"
    );
    let handed = cw
        .token_from(
            &fleet.address(0),
            json!({"instance": "corp", "subject": "release-bot"}),
        )
        .await;
    assert_eq!(handed, stored);
    ledger_with(&cw, &id, "ok").await;
}

#[actix_web::test]
async fn killed_after_gitlab_committed_the_rotation_is_recorded_as_lost_never_retried() {
    let Some((cw, id, old)) = world().await else {
        return;
    };
    let gitlab = &cw.world.gitlab;
    // GitLab commits at once and answers five seconds later: the kill lands in between.
    gitlab.behave(|b| b.rotation_delay = Duration::from_secs(5));
    let mut fleet = Fleet::start(&cw, 1).await;
    wait_until(
        "a rotation committed",
        Duration::from_secs(10),
        async || gitlab.access_token_rotations() == 1,
    )
    .await;
    fleet.kill_and_restart(0).await;
    assert!(!gitlab.access_token_alive(&old));

    wait_until("the rotation settled", RECOVERY, async || {
        row(&cw, &id).await.status != ConnectionStatus::Active
    })
    .await;

    let row = row(&cw, &id).await;
    assert_eq!(row.status, ConnectionStatus::ReauthorizationRequired);
    assert_eq!(row.status_reason.as_deref(), Some("refresh_response_lost"));
    assert!(row.refresh_in_flight_since.is_none());
    assert_no_rotated_token_rotated_again(&cw, &old);
    assert_eq!(rotations_sent(&cw).len(), 1);
    let fetched = cw
        .fetch_from(
            &fleet.address(0),
            &cw.service_token,
            json!({"instance": "corp", "subject": "release-bot"}),
        )
        .await;
    assert_eq!(fetched.status(), 409);
    let ledger = ledger_with(&cw, &id, "response_lost").await;
    assert!(ledger.iter().all(|r| r["outcome"] != "ok"), "{ledger:#?}");
}
