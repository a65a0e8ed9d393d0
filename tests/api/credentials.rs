//! Services fetch GitLab tokens: never broader than their policy, fresh enough, and refreshed
//! without ever losing a grant to GitLab's no-grace rotation, whatever GitLab does meanwhile.

use std::time::Duration;

use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection, sql_query};
use futures_util::future::join_all;
use labgate::config::DatabaseUrl;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::helpers::{ConnectWorld, StopOnDrop, expect_problem};
use crate::support::database::Backend;
use crate::support::fake_gitlab::{RefreshFault, USER_ID, USERNAME};

on_both_backends!(
    a_fresh_token_is_handed_out_without_a_refresh,
    a_body_is_refused_for_what_is_wrong_with_it,
    min_valid_for_forces_a_refresh_and_the_new_pair_is_kept,
    fifty_concurrent_fetches_share_one_refresh,
    gitlab_failures_leave_the_stored_tokens_untouched,
    a_lost_refresh_answer_is_detected_and_never_retried_blindly,
    a_timeout_before_gitlab_commits_is_resolved_and_refreshed,
    invalid_grant_requires_reauthorization_and_is_kept,
    deleting_a_connection_or_instance_revokes_at_gitlab,
    the_narrowest_connection_within_policy_is_used,
    a_grant_broader_than_the_policy_is_never_handed_out,
    requests_outside_the_policy_are_refused,
    the_background_refresher_keeps_connections_fresh,
    metrics_count_handouts_and_refreshes,
    an_outage_longer_than_the_token_leaves_the_grant_alive,
    handed_out_validity_ends_before_the_background_refresh,
    short_token_lifetimes_are_honoured_exactly,
    a_database_outage_mid_store_keeps_the_new_pair,
    a_token_dead_near_its_expiry_is_not_taken_for_a_rotation,
    the_rotation_ledger_keeps_the_newest_attempts,
    a_broader_scope_covers_what_it_implies,
    a_renewed_client_secret_keeps_every_grant_and_is_shown_until_updated,
);

/// Short GitLab timeouts, so that unknown outcomes settle in seconds.
async fn world(backend: Backend) -> ConnectWorld {
    ConnectWorld::start_with(backend, |settings| {
        settings.outbound.request_timeout = Duration::from_secs(1);
    })
    .await
}

/// Connects `subject` with GitLab issuing tokens that last `seconds`; returns the connection's
/// id. Tokens issued afterwards last GitLab's default two hours.
async fn connect_expiring_in(cw: &ConnectWorld, subject: &str, seconds: u64) -> String {
    cw.world
        .gitlab
        .behave(|b| b.token_lifetime = Duration::from_secs(seconds));
    let id = cw.connect(subject, json!({})).await;
    cw.world
        .gitlab
        .behave(|b| b.token_lifetime = Duration::from_secs(7200));
    id
}

/// Makes labgate believe the connection's token was issued `seconds` earlier than it was (GitLab
/// still honours it as issued): a token well into its life, without waiting for it.
async fn age(cw: &ConnectWorld, id: &str, seconds: i64) {
    use diesel::{ExpressionMethods, QueryDsl};
    use labgate::db::schema::connections::dsl as c;
    let (row_id, shift) = (id.to_owned(), chrono::TimeDelta::seconds(seconds));
    cw.app
        .context
        .db_write(move |conn| {
            let row = labgate::db::connections::find(conn, &row_id)?.expect("the connection");
            let life = labgate::domain::TokenLife {
                issued_at: row.token_issued_at - shift,
                expires_at: row.expires_at - shift,
            };
            diesel::update(c::connections.find(&row_id))
                .set((
                    c::token_issued_at.eq(life.issued_at),
                    c::expires_at.eq(life.expires_at),
                    c::refresh_due_at.eq(life.refresh_due_at(&row_id)),
                ))
                .execute(conn)
        })
        .await
        .unwrap();
}

fn request(subject: &str) -> Value {
    json!({"instance": "corp", "subject": subject})
}

async fn a_fresh_token_is_handed_out_without_a_refresh(backend: Backend) {
    let cw = world(backend).await;
    let id = cw.connect("user-17", json!({})).await;

    let response = cw.fetch(request("user-17")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let handed: Value = response.json().await.unwrap();
    let token = handed["access_token"].as_str().unwrap();
    assert!(
        cw.world.gitlab.access_token_works(token),
        "the token works at GitLab"
    );
    assert_eq!(handed["token_type"], "Bearer");
    assert_eq!(handed["connection_id"], id);
    assert_eq!(
        handed["scopes"],
        json!(["openid", "read_api", "read_repository", "write_repository"])
    );
    assert_eq!(
        handed["gitlab"],
        json!({"user_id": USER_ID.to_string(), "username": USERNAME})
    );
    assert_eq!(
        handed["instance"],
        json!({"name": "corp", "base_url": cw.world.gitlab.base_url()})
    );
    assert_eq!(handed["expires_at"], cw.connection(&id).await["expires_at"]);
    assert_eq!(cw.world.gitlab.seen().refreshes, 0);

    let audit = cw.app.get_json("/api/v1/audit?limit=5").await;
    let event = &audit["events"][0];
    assert_eq!(event["kind"], "handout");
    assert_eq!(event["actor"], "service:ci-bot");
    assert_eq!(
        (event["instance"].as_str(), event["subject"].as_str()),
        (Some("corp"), Some("user-17"))
    );
    assert_eq!(event["connection_id"], id);
    assert_eq!(event["scopes"], handed["scopes"]);
    assert!(
        !audit.to_string().contains(token),
        "the audit log holds no token"
    );
}

/// A body the handout cannot read is refused with what is wrong with it, and nothing is handed
/// out; a gzipped body is read as any other.
async fn a_body_is_refused_for_what_is_wrong_with_it(backend: Backend) {
    let cw = world(backend).await;
    cw.connect("user-17", json!({})).await;
    let post = |content_type: &str, body: Vec<u8>| {
        cw.app
            .client
            .post(format!("{}/api/v1/credentials", cw.app.address))
            .bearer_auth(&cw.service_token)
            .header("content-type", content_type)
            .body(body)
    };
    let plain = request("user-17").to_string().into_bytes();
    let detail = |problem: Value| problem["detail"].as_str().unwrap().to_owned();

    let cut = post("application/json", plain[..plain.len() - 3].to_vec());
    let cut = expect_problem(cut.send().await.unwrap(), 400, "invalid_request").await;
    assert!(detail(cut).contains("not valid JSON"));
    let typed = post("text/plain", plain.clone()).send().await.unwrap();
    let typed = expect_problem(typed, 415, "unsupported_media_type").await;
    assert!(detail(typed).contains("application/json"));
    let mut huge = request("user-17");
    huge["padding"] = json!("#".repeat(70 * 1024));
    let huge = post("application/json", huge.to_string().into_bytes());
    let huge = expect_problem(huge.send().await.unwrap(), 413, "payload_too_large").await;
    assert!(detail(huge).contains("64 KiB"));
    let audit = cw.app.get_json("/api/v1/audit").await;
    let events = audit["events"].as_array().unwrap();
    assert!(events.iter().all(|e| e["kind"] != "handout"), "{audit}");

    let mut zipped = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut zipped, &plain).unwrap();
    let zipped = post("application/json; charset=utf-8", zipped.finish().unwrap())
        .header("content-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(zipped.status(), 200);
    let handed: Value = zipped.json().await.unwrap();
    assert!(
        cw.world
            .gitlab
            .access_token_works(handed["access_token"].as_str().unwrap())
    );
}

async fn min_valid_for_forces_a_refresh_and_the_new_pair_is_kept(backend: Backend) {
    let cw = world(backend).await;
    let id = connect_expiring_in(&cw, "user-17", 900).await;
    let first = cw.token(request("user-17")).await;
    assert_eq!(
        cw.world.gitlab.seen().refreshes,
        0,
        "a fresh 900 s token covers the default 60 s"
    );
    // Asking for more than a 900 s token can ever be promised refreshes nothing.
    let beyond = json!({"instance": "corp", "subject": "user-17", "min_valid_for": 1200});
    let refused = expect_problem(cw.fetch(beyond).await, 422, "validation_failed").await;
    assert!(refused.to_string().contains("900 s"), "{refused}");
    assert_eq!(cw.world.gitlab.seen().refreshes, 0);

    // 400 s later, 500 s are left: asking for 600 refreshes first.
    age(&cw, &id, 400).await;
    let second = cw
        .token(json!({"instance": "corp", "subject": "user-17", "min_valid_for": 600}))
        .await;

    assert_eq!(cw.world.gitlab.seen().refreshes, 1);
    let ledger = cw
        .app
        .get_json(&format!("/api/v1/connections/{id}/refreshes"))
        .await;
    let attempts = ledger["refreshes"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{ledger}");
    assert_eq!(attempts[0]["outcome"], "ok");
    assert!(
        attempts[0]["gitlab_request_id"]
            .as_str()
            .is_some_and(|r| r.starts_with("01FAKE")),
        "GitLab's request id is kept: {ledger}"
    );
    assert!(attempts[0]["process"].as_str().unwrap().starts_with("pid "));
    assert_ne!(first, second);
    assert!(
        !cw.world.gitlab.access_token_works(&first),
        "GitLab revoked the old pair"
    );
    assert!(cw.world.gitlab.access_token_works(&second));
    assert_eq!(
        cw.token(json!({"instance": "corp", "subject": "user-17", "min_valid_for": 3600}))
            .await,
        second
    );
    assert_eq!(
        cw.world.gitlab.seen().refreshes,
        1,
        "a fresh token is not refreshed again"
    );
}

async fn fifty_concurrent_fetches_share_one_refresh(backend: Backend) {
    let cw = world(backend).await;
    connect_expiring_in(&cw, "user-17", 30).await;
    cw.world.gitlab.behave(|b| {
        b.token_lifetime = Duration::from_secs(7200);
        b.refresh_delay = Duration::from_millis(300);
    });

    let answers = join_all((0..50).map(|_| cw.fetch(request("user-17")))).await;

    let mut tokens = Vec::new();
    for answer in answers {
        assert_eq!(answer.status(), 200);
        tokens.push(
            answer.json::<Value>().await.unwrap()["access_token"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "every caller got the one new token");
    assert_eq!(
        cw.world.gitlab.seen().refreshes,
        1,
        "exactly one refresh reached GitLab"
    );
    assert!(
        cw.world.gitlab.access_token_works(&tokens[0]),
        "the grant is alive"
    );
}

async fn gitlab_failures_leave_the_stored_tokens_untouched(backend: Backend) {
    for fault in [
        RefreshFault::ServerError,
        RefreshFault::Throttled,
        RefreshFault::Timeout,
        RefreshFault::ConnectionReset,
        RefreshFault::Garbage,
    ] {
        let cw = world(backend.clone()).await;
        // A 300 s token 200 s into its life: due for refresh, 100 s left.
        let id = connect_expiring_in(&cw, "user-17", 300).await;
        age(&cw, &id, 200).await;
        let before = cw.connection(&id).await;
        let token = cw.world.gitlab.issued_tokens()[0].clone();
        cw.world.gitlab.behave(|b| b.refresh_fault = fault);

        let long = json!({"instance": "corp", "subject": "user-17", "min_valid_for": 600});
        let refused = cw.fetch(long).await;
        let retry_after: u64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        expect_problem(refused, 503, "gitlab_unavailable").await;
        assert!(retry_after >= 1, "{fault:?}");
        if fault == RefreshFault::Throttled {
            assert_eq!(retry_after, 7, "GitLab's Retry-After is passed on");
        }
        let after = cw.connection(&id).await;
        assert_eq!(after["status"], "active", "{fault:?}");
        assert_eq!(
            after["expires_at"], before["expires_at"],
            "{fault:?}: stored tokens untouched"
        );
        assert!(
            cw.world.gitlab.access_token_works(&token),
            "{fault:?}: the grant is alive"
        );

        // The current token still satisfies a shorter request: it is handed out, GitLab or not.
        assert_eq!(cw.token(request("user-17")).await, token, "{fault:?}");
        assert_eq!(
            cw.world.gitlab.seen().refreshes,
            1,
            "{fault:?}: one attempt, no retry"
        );
    }
}

async fn a_lost_refresh_answer_is_detected_and_never_retried_blindly(backend: Backend) {
    let cw = world(backend).await;
    // Due for refresh, and far enough from expiry that a dead token means a rotation.
    let id = connect_expiring_in(&cw, "user-17", 300).await;
    age(&cw, &id, 200).await;
    // 100 s are left; asking for 120 needs a refresh.
    let long = || json!({"instance": "corp", "subject": "user-17", "min_valid_for": 120});
    let old = cw.world.gitlab.issued_tokens()[0].clone();
    cw.world
        .gitlab
        .behave(|b| b.refresh_fault = RefreshFault::LostAfterCommit);

    expect_problem(cw.fetch(long()).await, 503, "gitlab_unavailable").await;
    assert!(
        !cw.world.gitlab.access_token_works(&old),
        "GitLab rotated: the old pair is dead"
    );
    let waiting = cw.fetch(long()).await;
    expect_problem(waiting, 503, "gitlab_unavailable").await;

    tokio::time::sleep(Duration::from_millis(2200)).await;
    let lost = expect_problem(cw.fetch(long()).await, 409, "reauthorization_required").await;
    assert!(
        lost["detail"]
            .as_str()
            .unwrap()
            .contains("refresh_response_lost"),
        "{lost}"
    );
    assert_eq!(
        cw.world.gitlab.seen().refreshes,
        1,
        "the possibly revoked refresh token was never sent again"
    );
    let connection = cw.connection(&id).await;
    assert_eq!(connection["status"], "reauthorization_required");
    assert_eq!(connection["status_reason"], "refresh_response_lost");
    let ledger = cw
        .app
        .get_json(&format!("/api/v1/connections/{id}/refreshes"))
        .await;
    let outcomes: Vec<&str> = ledger["refreshes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["response_lost", "unknown"],
        "newest first: {ledger}"
    );
    let audit = cw.app.get_json("/api/v1/audit").await.to_string();
    assert!(
        audit.contains("connection_reauthorization_required") && audit.contains("refresh_failed"),
        "{audit}"
    );
}

async fn a_timeout_before_gitlab_commits_is_resolved_and_refreshed(backend: Backend) {
    let cw = world(backend).await;
    let id = connect_expiring_in(&cw, "user-17", 30).await;
    cw.world.gitlab.behave(|b| {
        b.refresh_fault = RefreshFault::Timeout;
        b.token_lifetime = Duration::from_secs(7200);
    });
    expect_problem(
        cw.fetch(request("user-17")).await,
        503,
        "gitlab_unavailable",
    )
    .await;
    cw.world
        .gitlab
        .behave(|b| b.refresh_fault = RefreshFault::None);

    tokio::time::sleep(Duration::from_millis(2200)).await;
    let token = cw.token(request("user-17")).await;

    assert!(cw.world.gitlab.access_token_works(&token));
    assert_eq!(
        cw.world.gitlab.seen().refreshes,
        2,
        "refreshed again only once GitLab said nothing rotated"
    );
    assert_eq!(cw.connection(&id).await["status"], "active");
}

async fn invalid_grant_requires_reauthorization_and_is_kept(backend: Backend) {
    let cw = world(backend).await;
    let id = connect_expiring_in(&cw, "user-17", 30).await;
    let refresh_token = cw.world.gitlab.issued_tokens()[1].clone();
    cw.world.gitlab.revoke_token(&refresh_token);

    expect_problem(
        cw.fetch(request("user-17")).await,
        409,
        "reauthorization_required",
    )
    .await;
    expect_problem(
        cw.fetch(request("user-17")).await,
        409,
        "reauthorization_required",
    )
    .await;

    assert_eq!(
        cw.world.gitlab.seen().refreshes,
        1,
        "a dead grant is not tried again"
    );
    let connection = cw.connection(&id).await;
    assert_eq!(
        (
            connection["status"].as_str(),
            connection["status_reason"].as_str()
        ),
        (Some("reauthorization_required"), Some("invalid_grant"))
    );
    let ledger = cw
        .app
        .get_json(&format!("/api/v1/connections/{id}/refreshes"))
        .await;
    assert_eq!(
        ledger["refreshes"][0]["outcome"], "invalid_grant",
        "{ledger}"
    );
    let unknown = cw
        .app
        .call(Method::GET, "/api/v1/connections/no-such-id/refreshes")
        .await;
    assert_eq!(unknown.status(), 404);
    let listed = cw
        .app
        .get_json("/api/v1/connections?status=reauthorization_required")
        .await;
    assert_eq!(listed["connections"].as_array().unwrap().len(), 1);

    cw.connect("user-17", json!({})).await;
    assert_eq!(
        cw.fetch(request("user-17")).await.status(),
        200,
        "connecting again heals it"
    );
}

async fn deleting_a_connection_or_instance_revokes_at_gitlab(backend: Backend) {
    let cw = world(backend).await;
    let id = cw.connect("user-17", json!({})).await;
    let token = cw.token(request("user-17")).await;

    assert_eq!(
        cw.app
            .call(Method::DELETE, &format!("/api/v1/connections/{id}"))
            .await
            .status(),
        204
    );

    assert!(
        !cw.world.gitlab.access_token_works(&token),
        "revoked at GitLab (RFC 7009)"
    );
    let revoked = cw.connection(&id).await;
    assert_eq!(
        (
            revoked["status"].as_str(),
            revoked["status_reason"].as_str()
        ),
        (Some("revoked"), Some("revoked"))
    );
    expect_problem(cw.fetch(request("user-17")).await, 404, "not_connected").await;

    cw.connect("user-18", json!({})).await;
    let other = cw.token(request("user-18")).await;
    assert_eq!(
        cw.app
            .call(Method::DELETE, "/api/v1/instances/corp")
            .await
            .status(),
        204
    );
    assert!(
        !cw.world.gitlab.access_token_works(&other),
        "deleting the instance revoked its connections"
    );
    assert!(cw.app.connections().await.is_empty());
    let audit = cw.app.get_json("/api/v1/audit").await.to_string();
    assert_eq!(audit.matches("connection_revoked").count(), 2, "{audit}");
}

async fn the_narrowest_connection_within_policy_is_used(backend: Backend) {
    let cw = world(backend).await;
    cw.connect(
        "user-17",
        json!({"scopes": ["read_api", "read_repository", "write_repository"]}),
    )
    .await;
    let narrow = cw
        .connect("user-17", json!({"scopes": ["read_repository"]}))
        .await;

    let handed: Value = cw
        .fetch(json!({"instance": "corp", "subject": "user-17", "scopes": ["read_repository"]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(handed["connection_id"], narrow);
    assert_eq!(handed["scopes"], json!(["openid", "read_repository"]));

    let wider: Value = cw
        .fetch(json!({"instance": "corp", "subject": "user-17", "scopes": ["write_repository"]}))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(
        wider["connection_id"], narrow,
        "only the wider one covers write_repository"
    );
    let beyond = cw
        .fetch(json!({"instance": "corp", "subject": "user-17", "scopes": ["read_user"]}))
        .await;
    expect_problem(beyond, 403, "scope_not_allowed").await;
}

async fn a_grant_broader_than_the_policy_is_never_handed_out(backend: Backend) {
    let cw = world(backend).await;
    // The application in GitLab grants `api` on top of what labgate asked for.
    cw.world
        .gitlab
        .behave(|b| b.extra_granted_scope = Some("api".into()));
    cw.connect("user-17", json!({"scopes": ["read_api"]})).await;

    let refused =
        expect_problem(cw.fetch(request("user-17")).await, 403, "scope_not_allowed").await;
    assert!(
        refused["detail"].as_str().unwrap().contains("api"),
        "{refused}"
    );
    assert!(
        !refused
            .to_string()
            .contains(&cw.world.gitlab.issued_tokens()[0])
    );
}

async fn requests_outside_the_policy_are_refused(backend: Backend) {
    let cw = world(backend).await;
    cw.connect("user-17", json!({})).await;
    cw.app.register(&cw.world.registration("staging")).await;

    expect_problem(
        cw.fetch(json!({"instance": "staging", "subject": "user-17"}))
            .await,
        403,
        "instance_not_allowed",
    )
    .await;
    expect_problem(
        cw.fetch(json!({"instance": "corp", "subject": "user-17", "scopes": ["api"]}))
            .await,
        403,
        "scope_not_allowed",
    )
    .await;
    expect_problem(
        cw.fetch(request("someone-else")).await,
        404,
        "not_connected",
    )
    .await;
    let too_long = cw
        .fetch(json!({"instance": "corp", "subject": "user-17", "min_valid_for": 4000}))
        .await;
    let problem = expect_problem(too_long, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "min_valid_for");
    let typed = expect_problem(
        cw.fetch(json!({"instance": "corp", "subject": 17})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(typed["errors"][0]["field"], "subject");
    expect_problem(
        cw.fetch_as("forged.token.value", request("user-17")).await,
        401,
        "invalid_service_token",
    )
    .await;
}

async fn the_background_refresher_keeps_connections_fresh(backend: Backend) {
    let cw = world(backend).await;
    let due = connect_expiring_in(&cw, "user-17", 30).await;
    // GitLab 19.1 lets administrators set 300 s tokens: a fresh one is not due.
    let fresh = connect_expiring_in(&cw, "user-18", 300).await;
    let before = cw.connection(&fresh).await;

    let refreshed = labgate::service::refresh::sweep(&cw.app.context)
        .await
        .unwrap();

    assert_eq!(
        refreshed, 1,
        "only the connection in the last third of its token's life"
    );
    assert_eq!(cw.world.gitlab.seen().refreshes, 1);
    let after = cw.connection(&due).await;
    let expires =
        chrono::DateTime::parse_from_rfc3339(after["expires_at"].as_str().unwrap()).unwrap();
    assert!((expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds() > 7000);
    assert!(after["refreshed_at"].is_string());
    assert_eq!(
        cw.connection(&fresh).await["expires_at"],
        before["expires_at"]
    );
    // A sweep that finds nothing due changes nothing handouts read: what they remember stays
    // usable, rather than every subject's next handout reading the database again.
    let remembered = settled_generation(&cw).await;
    assert_eq!(
        labgate::service::refresh::sweep(&cw.app.context)
            .await
            .unwrap(),
        0,
        "nothing is due any more"
    );
    assert_eq!(
        cw.app.context.handouts.generation(),
        remembered,
        "a sweep that refreshed nothing outdated every remembered handout"
    );

    // GitLab throttling: the sweep backs off and leaves the tokens as they are.
    cw.world.gitlab.behave(|b| {
        b.token_lifetime = Duration::from_secs(30);
        b.refresh_fault = RefreshFault::Throttled;
    });
    let third = cw.connect("user-19", json!({})).await;
    let held = cw.connection(&third).await;
    assert_eq!(
        labgate::service::refresh::sweep(&cw.app.context)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        labgate::service::refresh::sweep(&cw.app.context)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        cw.world.gitlab.seen().refreshes,
        2,
        "backing off: the second sweep did not ask GitLab again"
    );
    assert_eq!(
        cw.connection(&third).await["expires_at"],
        held["expires_at"]
    );
}

/// The handout memory's generation once the change feed has heard the writes made so far: on
/// PostgreSQL it hears the refresh's own commit some milliseconds later (its poll is 10 ms), and
/// outdates the memory then. Settled when it holds still for half a second.
async fn settled_generation(cw: &ConnectWorld) -> u64 {
    let handouts = &cw.app.context.handouts;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen = handouts.generation();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = handouts.generation();
        if now == seen || tokio::time::Instant::now() > deadline {
            return now;
        }
        seen = now;
    }
}

async fn metrics_count_handouts_and_refreshes(backend: Backend) {
    let cw = world(backend).await;
    connect_expiring_in(&cw, "user-17", 30).await;
    cw.token(request("user-17")).await;
    expect_problem(cw.fetch(request("nobody")).await, 404, "not_connected").await;
    let elsewhere = json!({"instance": "elsewhere", "subject": "user-17"});
    expect_problem(cw.fetch(elsewhere).await, 403, "instance_not_allowed").await;

    // The connections gauge is recounted in the background, within a second of a change.
    let connected = r#"labgate_connections{instance="corp",status="active"} 1"#;
    assert!(scrape_until(&cw, connected).await);
    let metrics = cw
        .app
        .client
        .get(format!("{}/metrics", cw.app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(
        metrics.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = metrics.text().await.unwrap();
    assert!(
        text.ends_with("# EOF\n"),
        "an OpenMetrics exposition ends so"
    );
    let build_info = format!(
        r#"labgate_build_info{{version="{}"}} 1"#,
        env!("CARGO_PKG_VERSION")
    );
    for line in [
        build_info.as_str(),
        r#"labgate_handouts_total{instance="corp",outcome="ok"} 1"#,
        // A refusal is counted under the instance asked for when it is registered, and under
        // "unknown" otherwise: request text never becomes a label.
        r#"labgate_handouts_total{instance="corp",outcome="not_connected"} 1"#,
        r#"labgate_handouts_total{instance="unknown","#,
        r#"labgate_refreshes_total{instance="corp",outcome="ok"} 1"#,
        r#"labgate_refresh_duration_seconds_count{instance="corp"} 1"#,
        connected,
        r#"labgate_connections{instance="corp",status="reauthorization_required"} 0"#,
        r#"labgate_http_request_duration_seconds_count{method="POST",route="/api/v1/credentials",status="200"} 1"#,
        r#"labgate_http_request_duration_seconds_count{method="POST",route="/api/v1/credentials",status="404"} 1"#,
        r#"labgate_http_request_duration_seconds_count{method="POST",route="/api/v1/credentials",status="403"} 1"#,
        r#"labgate_db_pool_connections{state="idle"} "#,
        r#"labgate_db_pool_connections{state="in_use"} "#,
        "labgate_audit_queue_length ",
    ] {
        assert!(text.contains(line), "missing {line}:\n{text}");
    }
    assert!(
        !text.contains("elsewhere"),
        "an unregistered instance's name is no label:\n{text}"
    );
}

/// GitLab's "Renew secret" kills the old secret at once. Refreshes then answer
/// `invalid_client`: the grant is kept (503, never `reauthorization_required`), the instance
/// shows the rejection on its page, in its API and in `/metrics`, and updating the secret
/// heals every connection.
async fn a_renewed_client_secret_keeps_every_grant_and_is_shown_until_updated(backend: Backend) {
    let cw = world(backend).await;
    let id = connect_expiring_in(&cw, "user-17", 30).await;
    let renewed = cw.world.gitlab.renew_client_secret();

    let refused = expect_problem(
        cw.fetch(request("user-17")).await,
        503,
        "gitlab_unavailable",
    )
    .await;
    let detail = refused["detail"].as_str().unwrap();
    assert!(detail.contains("client_rejected"), "{detail}");
    assert_eq!(cw.connection(&id).await["status"], "active");
    let instance = cw.app.get_json("/api/v1/instances/corp").await;
    assert!(instance["client_rejected_at"].is_string(), "{instance}");
    let pages = crate::admin_pages::Pages::signed_in(&cw.app).await;
    let page = pages.html("/admin/instances/corp").await;
    assert!(
        page.contains("GitLab rejects this instance&#39;s client ID or secret")
            || page.contains("GitLab rejects this instance's client ID or secret"),
        "{page}"
    );
    let list = pages.html("/admin/instances").await;
    assert!(
        list.contains("badge client_rejected"),
        "the list flags it too: {list}"
    );
    assert!(
        scrape_until(
            &cw,
            r#"labgate_instance_client_rejected{instance="corp"} 1"#
        )
        .await
    );

    let updated = cw
        .app
        .admin(Method::PATCH, "/api/v1/instances/corp")
        .json(&json!({"client_secret": renewed}))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), 200);
    assert_eq!(
        cw.app.get_json("/api/v1/instances/corp").await["client_rejected_at"],
        Value::Null
    );
    assert_eq!(cw.fetch(request("user-17")).await.status(), 200, "healed");
    assert_eq!(cw.world.gitlab.seen().rotated_reuses, 0);
    assert!(
        scrape_until(
            &cw,
            r#"labgate_instance_client_rejected{instance="corp"} 0"#
        )
        .await
    );
}

/// Scrapes `/metrics` until it shows `line` (gauges are recounted in the background), for at
/// most five seconds.
async fn scrape_until(cw: &ConnectWorld, line: &str) -> bool {
    for _ in 0..50 {
        let text = cw.app.metrics().await;
        if text.contains(line) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Two labgate processes behind one load balancer, sharing one PostgreSQL database: the row
/// lease keeps them to one refresh between them.
#[actix_web::test]
async fn two_applications_on_one_postgres_database_share_one_refresh() {
    let Some(backend) = Backend::postgres() else {
        eprintln!("LABGATE_TEST_POSTGRES_URL is not set: PostgreSQL not tested");
        return;
    };
    let cw = world(backend).await;
    connect_expiring_in(&cw, "user-17", 30).await;
    cw.world.gitlab.behave(|b| {
        b.token_lifetime = Duration::from_secs(7200);
        b.refresh_delay = Duration::from_millis(300);
    });
    let (second_address, _second) = second_process(&cw).await;

    let calls = (0..50).map(|i| {
        let address = if i % 2 == 0 {
            &cw.app.address
        } else {
            &second_address
        };
        cw.token_from(address, request("user-17"))
    });
    let mut tokens = join_all(calls).await;

    tokens.dedup();
    assert_eq!(tokens.len(), 1, "both processes hand out the one new token");
    assert_eq!(
        cw.world.gitlab.seen().refreshes,
        1,
        "one refresh across both processes"
    );
    assert!(cw.world.gitlab.access_token_works(&tokens[0]));
}

/// Each process remembers what handouts read; a change another process commits must reach it
/// through PostgreSQL's notifications, not wait for anything to expire.
#[actix_web::test]
async fn a_change_made_through_one_process_reaches_the_other_at_once() {
    let Some(two) = TwoProcesses::start().await else {
        return;
    };
    let refreshed = two.refresh_through_the_first().await;
    two.second_hands_out_within(Duration::from_secs(1), &refreshed)
        .await;
    assert_eq!(two.cw.world.gitlab.seen().refreshes, 1);

    // Deleted through the first process: the second one refuses the service's token.
    assert_eq!(
        two.cw
            .app
            .call(Method::DELETE, "/api/v1/services/ci-bot")
            .await
            .status(),
        204
    );
    let started = std::time::Instant::now();
    loop {
        let response = two
            .cw
            .fetch_from(&two.second, &two.cw.service_token, request("user-17"))
            .await;
        if response.status() == 401 {
            break;
        }
        assert_eq!(response.status(), 200);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the second process still serves a deleted service"
        );
    }
}

/// A change committed while a process's change feed is down must not be missed: the process
/// remembers nothing until it listens again, then forgets what it remembered before.
#[actix_web::test]
async fn a_change_made_while_the_change_feed_is_down_is_not_missed() {
    let Some(two) = TwoProcesses::start().await else {
        return;
    };
    // Both processes' listening connections die; the refresh's notification reaches nobody.
    let pool = labgate::db::connect(&two.cw.app.settings.database).unwrap();
    let ended = diesel::sql_query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND query LIKE '%labgate_changes%'",
    )
    .execute(&mut pool.get().unwrap())
    .unwrap();
    assert_eq!(ended, 2, "one listener per process");
    let refreshed = two.refresh_through_the_first().await;

    two.second_hands_out_within(Duration::from_secs(1), &refreshed)
        .await;
    // Listening again (it reconnects after a second): still the new token, from memory or not.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        two.cw.token_from(&two.second, request("user-17")).await,
        refreshed
    );
}

/// Two labgate processes on one PostgreSQL database; the second remembers user-17's token.
struct TwoProcesses {
    cw: ConnectWorld,
    second: String,
    _stop_second: StopOnDrop,
    remembered: String,
}

impl TwoProcesses {
    async fn start() -> Option<Self> {
        let Some(backend) = Backend::postgres() else {
            eprintln!("LABGATE_TEST_POSTGRES_URL is not set: PostgreSQL not tested");
            return None;
        };
        let cw = world(backend).await;
        // Due for refresh, with 100 s left: enough for the default, not for 600 s.
        let id = connect_expiring_in(&cw, "user-17", 300).await;
        age(&cw, &id, 200).await;
        let (second, stop) = second_process(&cw).await;
        let remembered = cw.token_from(&second, request("user-17")).await;
        Some(Self {
            cw,
            second,
            _stop_second: stop,
            remembered,
        })
    }

    /// A refresh through the first process: GitLab kills the token the second one remembers.
    async fn refresh_through_the_first(&self) -> String {
        self.cw
            .world
            .gitlab
            .behave(|b| b.token_lifetime = Duration::from_secs(7200));
        let body = json!({"instance": "corp", "subject": "user-17", "min_valid_for": 600});
        let refreshed = self.cw.token(body).await;
        assert_ne!(refreshed, self.remembered);
        assert!(!self.cw.world.gitlab.access_token_works(&self.remembered));
        refreshed
    }

    /// The second process hands out the dead remembered token for at most `limit`, then
    /// `refreshed`.
    async fn second_hands_out_within(&self, limit: Duration, refreshed: &str) {
        let started = std::time::Instant::now();
        loop {
            let handed = self.cw.token_from(&self.second, request("user-17")).await;
            if handed == refreshed {
                return;
            }
            assert_eq!(handed, self.remembered);
            assert!(
                started.elapsed() < limit,
                "the second process still hands out the dead token after {limit:?}"
            );
        }
    }
}

/// Another labgate process on the first one's database and master key, with its own memory;
/// returns its address, and what stops it.
async fn second_process(cw: &ConnectWorld) -> (String, StopOnDrop) {
    let second = labgate::startup::Application::build(cw.app.settings.clone())
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", second.port());
    let stop = StopOnDrop(second.handle());
    actix_web::rt::spawn(second.run());
    (address, stop)
}

async fn an_outage_longer_than_the_token_leaves_the_grant_alive(backend: Backend) {
    let cw = world(backend).await;
    let id = connect_expiring_in(&cw, "user-17", 3).await;
    cw.world.gitlab.behave(|b| {
        b.refresh_fault = RefreshFault::ServerError;
        b.token_lifetime = Duration::from_secs(7200);
    });
    expect_problem(
        cw.fetch(request("user-17")).await,
        503,
        "gitlab_unavailable",
    )
    .await;

    // GitLab stays down until the access token has expired, so asking it cannot tell whether
    // the failed refresh rotated anything; then it comes back.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    cw.world
        .gitlab
        .behave(|b| b.refresh_fault = RefreshFault::None);
    let token = cw.token(request("user-17")).await;

    assert!(
        cw.world.gitlab.access_token_works(&token),
        "the grant GitLab never rotated is alive"
    );
    assert_eq!(cw.connection(&id).await["status"], "active");
    assert_eq!(cw.world.gitlab.seen().refreshes, 2);
}

/// After an unknown outcome, GitLab says the old access token is dead, but labgate recorded it
/// as living 30 s more (GitLab's clock runs ahead, say). That is no proof of a rotation: labgate
/// refreshes (a rotated refresh token would answer invalid_grant, the same verdict) and here the
/// grant GitLab never rotated lives on.
async fn a_token_dead_near_its_expiry_is_not_taken_for_a_rotation(backend: Backend) {
    let cw = world(backend).await;
    let id = connect_expiring_in(&cw, "user-17", 2).await;
    cw.world
        .gitlab
        .behave(|b| b.refresh_fault = RefreshFault::Timeout);
    expect_problem(
        cw.fetch(request("user-17")).await,
        503,
        "gitlab_unavailable",
    )
    .await;
    // GitLab's clock: the token has expired. labgate's: 30 s are left.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let row_id = id.clone();
    cw.app
        .context
        .db_write(move |conn| {
            use diesel::{ExpressionMethods, QueryDsl};
            use labgate::db::schema::connections::dsl as c;
            let expiry = chrono::Utc::now().naive_utc() + chrono::TimeDelta::seconds(30);
            diesel::update(c::connections.find(&row_id))
                .set(c::expires_at.eq(expiry))
                .execute(conn)
        })
        .await
        .unwrap();
    cw.world
        .gitlab
        .behave(|b| b.refresh_fault = RefreshFault::None);
    let token = cw.token(request("user-17")).await;

    assert!(cw.world.gitlab.access_token_works(&token));
    assert_eq!(cw.connection(&id).await["status"], "active");
    assert_eq!(cw.world.gitlab.seen().refreshes, 2);
}

async fn handed_out_validity_ends_before_the_background_refresh(backend: Backend) {
    let cw = ConnectWorld::start_with(backend, |settings| {
        settings.refresher.enabled = true;
        settings.refresher.interval = Duration::from_secs(3600);
    })
    .await;
    let id = cw.connect("user-17", json!({})).await;

    let handed: Value = cw.fetch(request("user-17")).await.json().await.unwrap();

    let stored = chrono::DateTime::parse_from_rfc3339(
        cw.connection(&id).await["expires_at"].as_str().unwrap(),
    )
    .unwrap();
    let promised =
        chrono::DateTime::parse_from_rfc3339(handed["expires_at"].as_str().unwrap()).unwrap();
    let before_expiry = (stored - promised).num_seconds();
    assert!(
        (2400..=3120).contains(&before_expiry),
        "a 7200 s token is rotated in its last third, spread by up to a tenth: no later \
         promise ({before_expiry} s before expiry)"
    );
}

async fn a_broader_scope_covers_what_it_implies(backend: Backend) {
    let cw = world(backend).await;
    let id = cw
        .connect("user-17", json!({"scopes": ["write_repository"]}))
        .await;

    let handed: Value = cw
        .fetch(json!({"instance": "corp", "subject": "user-17", "scopes": ["read_repository"]}))
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(handed["connection_id"], id, "write_repository can pull");
}

/// GitLab 19.1 lets administrators set 300 s tokens: labgate learns the lifetime, promises no
/// validity it cannot keep, and does not refresh a fresh token at every sweep.
async fn short_token_lifetimes_are_honoured_exactly(backend: Backend) {
    let cw = ConnectWorld::start_with(backend, |settings| {
        settings.refresher.enabled = true;
        settings.refresher.interval = Duration::from_secs(3600);
    })
    .await;
    connect_expiring_in(&cw, "user-17", 300).await;
    let instance = cw.app.get_json("/api/v1/instances/corp").await;
    assert_eq!(instance["token_lifetime_seconds"], 300, "{instance}");

    let handed: Value = cw.fetch(request("user-17")).await.json().await.unwrap();
    let promised = chrono::DateTime::parse_from_rfc3339(handed["expires_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let left = (promised - chrono::Utc::now()).num_seconds();
    assert!(
        (160..=200).contains(&left),
        "a 300 s token is promised until its last third begins, not {left} s"
    );
    for _ in 0..3 {
        let swept = labgate::service::refresh::sweep(&cw.app.context)
            .await
            .unwrap();
        assert_eq!(swept, 0, "a fresh 300 s token is not due");
    }
    let asked = json!({"instance": "corp", "subject": "user-17", "min_valid_for": 600});
    let refused = expect_problem(cw.fetch(asked).await, 422, "validation_failed").await;
    assert!(refused.to_string().contains("300 s"), "{refused}");
    assert_eq!(cw.world.gitlab.seen().refreshes, 0);

    // The administrator sets two hours again: the next token's lifetime is learned.
    connect_expiring_in(&cw, "user-18", 7200).await;
    let instance = cw.app.get_json("/api/v1/instances/corp").await;
    assert_eq!(instance["token_lifetime_seconds"], 7200, "{instance}");
}

/// GitLab has rotated the pair and the database stops answering before labgate stores it: the
/// lease's owner keeps trying (within its lease), stores the only live pair once the database
/// is back, and nothing is refreshed twice.
async fn a_database_outage_mid_store_keeps_the_new_pair(backend: Backend) {
    let cw = world(backend).await;
    let id = connect_expiring_in(&cw, "user-17", 30).await;
    cw.world
        .gitlab
        .behave(|b| b.commit_delay = Duration::from_millis(600));
    let fetching = {
        let (client, address, token) = (
            cw.app.client.clone(),
            cw.app.address.clone(),
            cw.service_token.clone(),
        );
        actix_web::rt::spawn(async move {
            client
                .post(format!("{address}/api/v1/credentials"))
                .bearer_auth(token)
                .json(&request("user-17"))
                .send()
                .await
                .unwrap()
        })
    };
    // GitLab is working on the refresh: the database goes away before its answer arrives.
    while cw.world.gitlab.seen().refreshes_in_progress == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let outage = hold_database(&cw.app.db.url, Duration::from_secs(7));
    let response = fetching.await.unwrap();
    outage.join().unwrap();

    let status = response.status();
    let handed: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{handed}");
    let token = handed["access_token"].as_str().unwrap();
    assert!(
        cw.world.gitlab.access_token_works(token),
        "the new pair was kept"
    );
    let seen = cw.world.gitlab.seen();
    assert_eq!((seen.refreshes, seen.rotated_reuses), (1, 0));
    assert_eq!(cw.connection(&id).await["status"], "active");
    let ledger = cw
        .app
        .get_json(&format!("/api/v1/connections/{id}/refreshes"))
        .await;
    assert_eq!(ledger["refreshes"][0]["outcome"], "ok", "{ledger}");
}

/// Takes the database away from labgate for `hold`, as an outage would: SQLite's write lock in
/// an exclusive transaction, or PostgreSQL's `connections` table locked. Returns once held.
fn hold_database(url: &DatabaseUrl, hold: Duration) -> std::thread::JoinHandle<()> {
    let url = url.clone();
    let (held, holding) = std::sync::mpsc::channel();
    let outage = std::thread::spawn(move || match url {
        DatabaseUrl::Sqlite(path) => {
            let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
            sql_query("BEGIN EXCLUSIVE").execute(&mut conn).unwrap();
            held.send(()).unwrap();
            std::thread::sleep(hold);
            sql_query("COMMIT").execute(&mut conn).unwrap();
        }
        DatabaseUrl::Postgres(url) => {
            let mut conn = PgConnection::establish(url.expose_secret()).unwrap();
            sql_query("BEGIN").execute(&mut conn).unwrap();
            sql_query("LOCK TABLE connections IN ACCESS EXCLUSIVE MODE")
                .execute(&mut conn)
                .unwrap();
            held.send(()).unwrap();
            std::thread::sleep(hold);
            sql_query("COMMIT").execute(&mut conn).unwrap();
        }
    });
    holding.recv().unwrap();
    outage
}

/// Each sweep trims the rotation ledger to every connection's newest 20 attempts.
async fn the_rotation_ledger_keeps_the_newest_attempts(backend: Backend) {
    let cw = world(backend).await;
    let id = connect_expiring_in(&cw, "user-17", 7200).await;
    let row_id = id.clone();
    cw.app
        .context
        .db_write(move |conn| {
            let start = chrono::Utc::now().naive_utc() - chrono::TimeDelta::hours(1);
            let attempts: Vec<_> = (0..25)
                .map(|i| labgate::db::refresh_attempts::NewRefreshAttempt {
                    connection_id: row_id.clone(),
                    started_at: start + chrono::TimeDelta::minutes(i),
                    finished_at: start + chrono::TimeDelta::minutes(i),
                    outcome: "ok".into(),
                    gitlab_request_id: None,
                    process: "test".into(),
                    detail: Some(format!("attempt {i}")),
                })
                .collect();
            labgate::db::refresh_attempts::insert_batch(conn, &attempts)
        })
        .await
        .unwrap();

    labgate::service::refresh::sweep(&cw.app.context)
        .await
        .unwrap();

    let ledger = cw
        .app
        .get_json(&format!("/api/v1/connections/{id}/refreshes"))
        .await;
    let details: Vec<&str> = ledger["refreshes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["detail"].as_str().unwrap())
        .collect();
    assert_eq!(details.len(), 20, "{ledger}");
    assert_eq!((details[0], details[19]), ("attempt 24", "attempt 5"));
}
