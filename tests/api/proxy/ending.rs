//! The end of access grants: at expiry, at deletion (in every process at once), with their
//! service, connection or instance; and only their own service (or an admin) may end them.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::grants::{seconds_from_now, works};
use super::{ProxyWorld, SUBJECT};
use crate::helpers::StopOnDrop;
use crate::support::database::Backend;

on_both_backends!(
    an_expired_grant_stops_working_on_git_and_api,
    a_deleted_grant_stops_working_at_once,
    deleting_the_service_ends_its_grants,
    deleting_the_connection_ends_its_grants,
    deleting_the_instance_ends_its_grants,
    another_service_cannot_delete_a_grant,
);

async fn an_expired_grant_stops_working_on_git_and_api(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let mut request = json!({"instance": "corp", "subject": SUBJECT, "projects": ["group/app"], "access": "read"});
    request["ttl"] = json!(60);
    let grant = pw.grant_with(request).await;
    assert_eq!(works(&pw, &grant.token).await, 200);

    let left = seconds_from_now(&grant.body["expires_at"]);
    tokio::time::sleep(Duration::from_secs((left + 2).max(0) as u64)).await;

    let mark = pw.gitlab_mark();
    assert_eq!(
        works(&pw, &grant.token).await,
        401,
        "an expired grant on the API"
    );
    let refs = pw
        .app
        .client
        .get(format!(
            "{}/info/refs?service=git-upload-pack",
            pw.git_url(None, "group/app")
        ))
        .basic_auth("labgate", Some(&grant.token))
        .send()
        .await
        .unwrap();
    assert_eq!(refs.status(), 401, "an expired grant on git");
    assert_eq!(
        refs.headers()["www-authenticate"],
        "Basic realm=\"labgate\""
    );
    pw.assert_gitlab_saw_nothing_since(mark, "an expired grant");
}

async fn a_deleted_grant_stops_working_at_once(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "read").await;
    assert_eq!(works(&pw, &grant.token).await, 200);

    let deleted = pw.delete_grant_as(&pw.service_token, &grant.id).await;
    assert_eq!(deleted.status(), 204);

    assert_eq!(works(&pw, &grant.token).await, 401);
    let again = pw.delete_grant_as(&pw.service_token, &grant.id).await;
    assert_eq!(again.status(), 404, "deleting twice");
    // An admin may delete another service's grant.
    let second = pw.grant(&["group/app"], "read").await;
    let by_admin = pw
        .app
        .call(
            Method::DELETE,
            &format!("/api/v1/access-grants/{}", second.id),
        )
        .await;
    assert_eq!(by_admin.status(), 204);
    assert_eq!(works(&pw, &second.token).await, 401);
}

/// Two labgate processes on one PostgreSQL database: a grant deleted through one is refused
/// by the other at its next request.
#[actix_web::test]
async fn a_grant_deleted_through_one_process_is_refused_by_the_other_at_once() {
    let Some(backend) = Backend::postgres() else {
        eprintln!("LABGATE_TEST_POSTGRES_URL is not set: PostgreSQL not tested");
        return;
    };
    let pw = ProxyWorld::start(backend).await;
    let second = labgate::startup::Application::build(pw.app.settings.clone())
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", second.port());
    let _stop = StopOnDrop(second.handle());
    actix_web::rt::spawn(second.run());
    let grant = pw.grant(&["group/app"], "read").await;
    let through_second = || {
        pw.app
            .client
            .get(format!("{address}/gitlab/corp/api/v4/user"))
            .bearer_auth(&grant.token)
            .send()
    };
    // The second process has seen (and may remember) the grant.
    assert_eq!(through_second().await.unwrap().status(), 200);

    let deleted = pw.delete_grant_as(&pw.service_token, &grant.id).await;
    assert_eq!(deleted.status(), 204);

    let started = std::time::Instant::now();
    loop {
        let status = through_second().await.unwrap().status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the second process still serves a deleted grant"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn deleting_the_service_ends_its_grants(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "read").await;
    assert_eq!(works(&pw, &grant.token).await, 200);
    let deleted = pw.app.call(Method::DELETE, "/api/v1/services/ci-bot").await;
    assert_eq!(deleted.status(), 204);
    let mark = pw.gitlab_mark();
    assert_eq!(works(&pw, &grant.token).await, 401);
    pw.assert_gitlab_saw_nothing_since(mark, "the grant of a deleted service");
}

async fn deleting_the_connection_ends_its_grants(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "read").await;
    assert_eq!(works(&pw, &grant.token).await, 200);
    let path = format!("/api/v1/connections/{}", pw.connection_id);
    assert_eq!(pw.app.call(Method::DELETE, &path).await.status(), 204);
    let mark = pw.gitlab_mark();
    assert_eq!(works(&pw, &grant.token).await, 401);
    pw.assert_gitlab_saw_nothing_since(mark, "the grant of a deleted connection");

    // The person connects again: the old grant stays dead, it does not ride on the new connection.
    pw.connect(SUBJECT, &super::ALL_SCOPES).await;
    assert_eq!(
        works(&pw, &grant.token).await,
        401,
        "a grant of a deleted connection came back with a new one"
    );
}

async fn deleting_the_instance_ends_its_grants(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "read").await;
    assert_eq!(works(&pw, &grant.token).await, 200);
    assert_eq!(
        pw.app
            .call(Method::DELETE, "/api/v1/instances/corp")
            .await
            .status(),
        204
    );
    let mark = pw.gitlab_mark();
    let status = works(&pw, &grant.token).await;
    assert!(
        status == 401 || status == 404,
        "after the instance: {status}"
    );
    pw.assert_gitlab_saw_nothing_since(mark, "the grant of a deleted instance");
}

async fn another_service_cannot_delete_a_grant(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "read").await;
    let (other_id, other_secret) = pw
        .app
        .create_service(&json!({
            "name": "other-bot", "instances": ["corp"], "scopes": ["read_api"],
            "projects": ["**"], "max_access": "write",
        }))
        .await;
    let other_token = pw.app.service_token(&other_id, &other_secret).await;

    let refused = pw.delete_grant_as(&other_token, &grant.id).await;
    assert!(
        [403, 404].contains(&refused.status().as_u16()),
        "another service deleted a grant: {}",
        refused.status()
    );
    assert_eq!(works(&pw, &grant.token).await, 200, "the grant still works");
    let listed = pw
        .app
        .client
        .get(pw.url("/api/v1/access-grants"))
        .bearer_auth(&other_token)
        .send()
        .await
        .unwrap();
    assert!(
        !listed.text().await.unwrap().contains(&grant.id),
        "another service lists the grant"
    );
}
