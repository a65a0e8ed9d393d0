//! The fake GitLab's access tokens (personal, project, group), used directly without labgate:
//! `personal_access_tokens/self`, its rotation and the family revocation on reuse, the API and
//! git as the token's own user. What labgate's access-token connections are proven against.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::{Client, RequestBuilder, Response};
use serde_json::{Value, json};

use crate::helpers::GitLabWorld;
use crate::proxy::{git_with, printed};
use crate::support::fake_gitlab::{AccessTokenSpec, RotationFault, TokenOwner, USER_ID, USERNAME};

fn client(world: &GitLabWorld) -> Client {
    Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(world.ca.pem().as_bytes()).unwrap())
        .build()
        .unwrap()
}

fn url(world: &GitLabWorld, path: &str) -> String {
    format!("{}/api/v4{path}", world.gitlab.base_url())
}

/// Today (UTC) and `days` days, as GitLab writes dates.
fn date(days: i64) -> String {
    (Utc::now().date_naive() + TimeDelta::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

async fn answer(request: RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn revoked() -> Value {
    json!({"error": "invalid_token",
        "error_description": "Token was revoked. You have to re-authorize from the user."})
}

#[actix_web::test]
async fn self_describes_a_live_token_and_refuses_unknown_expired_and_revoked_ones() {
    let world = GitLabWorld::start().await;
    let gitlab = &world.gitlab;
    let client = client(&world);
    let me = url(&world, "/personal_access_tokens/self");
    let created = Utc::now() - TimeDelta::days(358);
    let token =
        gitlab.issue_access_token(AccessTokenSpec::days(&["read_api"], 7).created_at(created));
    assert!(token.starts_with("glpat-") && token.len() == 26, "{token}");
    let id = gitlab.access_token_info(&token).unwrap().id;

    for request in [
        client.get(&me).header("PRIVATE-TOKEN", &token),
        client.get(&me).bearer_auth(&token),
    ] {
        let (status, body) = answer(request).await;
        assert_eq!(status, 200, "{body}");
        let used = body["last_used_at"].as_str().unwrap().to_owned();
        assert!(used.ends_with('Z') && DateTime::parse_from_rfc3339(&used).is_ok());
        assert_eq!(
            body,
            json!({"id": id, "name": "labgate", "revoked": false,
                "created_at": created.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                "description": null, "scopes": ["read_api"], "user_id": USER_ID,
                "last_used_at": used, "active": true, "expires_at": date(7), "last_used_ips": []})
        );
    }
    let unknown = client
        .get(&me)
        .header("PRIVATE-TOKEN", "glpat-unknownunknown0000");
    assert_eq!(
        answer(unknown).await,
        (401, json!({"message": "401 Unauthorized"}))
    );
    assert_eq!(answer(client.get(&me)).await.0, 401);
    let (oauth, _) = gitlab.seed_grant(&["api"], Duration::from_secs(600));
    let (status, body) = answer(client.get(&me).bearer_auth(&oauth)).await;
    assert_eq!(status, 400, "an OAuth token is no access token: {body}");

    // Dead from 00:00 UTC on its expiry date.
    let last_day = gitlab.issue_access_token(AccessTokenSpec::days(&["api"], 1));
    let expired = gitlab.issue_access_token(AccessTokenSpec::days(&["api"], 0));
    assert_eq!(answer(client.get(&me).bearer_auth(&last_day)).await.0, 200);
    let (status, body) = answer(client.get(&me).bearer_auth(&expired)).await;
    assert_eq!((status, &body["error"]), (401, &json!("invalid_token")));
    assert!(!gitlab.access_token_alive(&expired) && gitlab.access_token_alive(&last_day));
    gitlab.set_access_token_expiry(&last_day, Utc::now().date_naive());
    assert!(!gitlab.access_token_alive(&last_day));

    gitlab.revoke_access_token(&token);
    let revoked_answer = answer(client.get(&me).header("PRIVATE-TOKEN", &token)).await;
    assert_eq!(revoked_answer, (401, revoked()));

    let doomed = gitlab.issue_access_token(AccessTokenSpec::days(&["read_user"], 30));
    let delete = || client.delete(&me).header("PRIVATE-TOKEN", &doomed).send();
    assert_eq!(delete().await.unwrap().status(), 204);
    assert!(gitlab.access_token_info(&doomed).unwrap().revoked);
    assert_eq!(delete().await.unwrap().status(), 401);
    let seen = gitlab.access_token_seen().requests;
    let last = seen.last().unwrap();
    let doomed_id = gitlab.access_token_info(&doomed).unwrap().id;
    assert_eq!(
        (last.method.as_str(), last.path.as_str()),
        ("DELETE", "/api/v4/personal_access_tokens/self")
    );
    assert_eq!(
        (last.token_id, last.new_token_id, last.status),
        (Some(doomed_id), None, 401)
    );
    assert_eq!(gitlab.access_token_rotations(), 0);
}

#[actix_web::test]
async fn rotation_revokes_the_old_token_at_once_and_reuse_revokes_the_whole_family() {
    let world = GitLabWorld::start().await;
    let gitlab = &world.gitlab;
    let client = client(&world);
    let (me, rotate) = (
        url(&world, "/personal_access_tokens/self"),
        url(&world, "/personal_access_tokens/self/rotate"),
    );
    let year_ago = Utc::now() - TimeDelta::days(360);
    let spec = AccessTokenSpec::days(&["api", "read_repository"], 5).created_at(year_ago);
    let first = gitlab.issue_access_token(spec);
    let old = gitlab.access_token_info(&first).unwrap();

    let asked = json!({"expires_at": date(365)});
    let post = client
        .post(&rotate)
        .header("PRIVATE-TOKEN", &first)
        .json(&asked);
    let (status, body) = answer(post).await;
    assert_eq!(status, 200, "{body}");
    let second = body["token"].as_str().unwrap().to_owned();
    assert!(second.starts_with("glpat-") && second != first);
    assert_ne!(body["id"], old.id);
    assert_eq!(
        (&body["name"], &body["scopes"], &body["user_id"]),
        (
            &json!("labgate"),
            &json!(["api", "read_repository"]),
            &json!(USER_ID)
        )
    );
    assert_eq!(
        (&body["expires_at"], &body["active"]),
        (&json!(date(365)), &json!(true))
    );
    assert_eq!(body["last_used_at"], Value::Null);
    let made = DateTime::parse_from_rfc3339(body["created_at"].as_str().unwrap()).unwrap();
    assert!((Utc::now() - made.to_utc()).num_seconds().abs() < 30);
    assert!(!gitlab.access_token_alive(&first) && gitlab.access_token_alive(&second));
    let (status, body) = answer(client.get(&me).header("PRIVATE-TOKEN", &first)).await;
    assert_eq!((status, body), (401, revoked()));

    // A form without `expires_at`: a week. The query works too.
    let post = client
        .post(&rotate)
        .bearer_auth(&second)
        .form(&[("name", "ignored")]);
    let (status, body) = answer(post).await;
    assert_eq!((status, &body["expires_at"]), (200, &json!(date(7))));
    let third = body["token"].as_str().unwrap().to_owned();
    let post = client
        .post(format!("{rotate}?expires_at={}", date(30)))
        .header("PRIVATE-TOKEN", &third);
    let (status, body) = answer(post).await;
    assert_eq!((status, &body["expires_at"]), (200, &json!(date(30))));
    let fourth = body["token"].as_str().unwrap().to_owned();
    let seen = gitlab.access_token_seen();
    assert_eq!((seen.rotations, seen.rotations_by_family[&old.id]), (3, 3));
    assert_eq!(
        gitlab.live_access_tokens_of_family(&first),
        vec![fourth.clone()]
    );
    let newest = gitlab.access_token_info(&fourth).unwrap();
    assert_eq!(
        (newest.family, newest.user_id, &newest.name),
        (old.id, USER_ID, &old.name)
    );
    assert_eq!(
        (&newest.scopes, newest.expires_at.to_string()),
        (&old.scopes, date(30))
    );
    assert!(gitlab.access_token_info(&first).unwrap().rotated && !newest.rotated);

    // A rotated token used anywhere but rotate is refused, and nothing more.
    assert_eq!(answer(client.get(&me).bearer_auth(&second)).await.0, 401);
    assert!(gitlab.access_token_alive(&fourth));
    assert_eq!(gitlab.family_revocations(), 0);
    // Presented to rotate again: token reuse, the whole family dies, the newest included.
    let (status, body) = answer(client.post(&rotate).header("PRIVATE-TOKEN", &first)).await;
    assert_eq!((status, body), (401, revoked()));
    assert!(!gitlab.access_token_alive(&fourth));
    assert!(gitlab.live_access_tokens_of_family(&fourth).is_empty());
    assert_eq!(
        (gitlab.family_revocations(), gitlab.access_token_rotations()),
        (1, 3)
    );
    let last = gitlab.access_token_seen().requests.pop().unwrap();
    assert_eq!(
        (last.token_id, last.new_token_id, last.status),
        (Some(old.id), None, 401)
    );
}

#[actix_web::test]
async fn rotation_needs_api_or_self_rotate_and_an_expiry_within_a_year() {
    let world = GitLabWorld::start().await;
    let gitlab = &world.gitlab;
    let client = client(&world);
    let rotate = url(&world, "/personal_access_tokens/self/rotate");

    let reader = gitlab.issue_access_token(AccessTokenSpec::days(&["read_api", "read_user"], 9));
    let (status, body) = answer(client.post(&rotate).header("PRIVATE-TOKEN", &reader)).await;
    assert_eq!(
        (status, &body["error"]),
        (403, &json!("insufficient_scope"))
    );
    assert_eq!(body["scope"], "api self_rotate");
    assert!(gitlab.access_token_alive(&reader));

    let rotating = gitlab.issue_access_token(AccessTokenSpec::days(&["self_rotate"], 9));
    let with = |expires_at: String| {
        client
            .post(&rotate)
            .header("PRIVATE-TOKEN", &rotating)
            .json(&json!({"expires_at": expires_at}))
    };
    for (expires_at, bad) in [
        (date(0), "today"),
        (date(-3), "in the past"),
        (date(366), "beyond a year"),
    ] {
        let (status, body) = answer(with(expires_at)).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("400 Bad request - "),
            "{body}"
        );
    }
    for garbage in ["2026-13-01", "in a week"] {
        let (status, body) = answer(with(garbage.to_owned())).await;
        assert_eq!(
            (status, body),
            (400, json!({"error": "expires_at is invalid"}))
        );
    }
    assert!(gitlab.access_token_alive(&rotating));
    assert_eq!(gitlab.access_token_rotations(), 0);
    let (status, body) = answer(with(date(365))).await;
    assert_eq!((status, &body["scopes"]), (200, &json!(["self_rotate"])));

    // OAuth tokens are no access tokens: with `api`, 405; without, 403.
    let (api, _) = gitlab.seed_grant(&["api"], Duration::from_secs(600));
    let (read, _) = gitlab.seed_grant(&["read_api"], Duration::from_secs(600));
    assert_eq!(answer(client.post(&rotate).bearer_auth(&api)).await.0, 405);
    assert_eq!(answer(client.post(&rotate).bearer_auth(&read)).await.0, 403);
    assert!(gitlab.access_token_works(&api));
    assert_eq!(gitlab.access_token_rotations(), 1);
}

#[actix_web::test]
async fn rotation_faults_and_delays_decide_what_the_client_learns() {
    let world = GitLabWorld::start().await;
    let gitlab = &world.gitlab;
    let client = client(&world);
    let rotate = url(&world, "/personal_access_tokens/self/rotate");
    let send = |token: &str| client.post(&rotate).header("PRIVATE-TOKEN", token).send();
    let issue = || gitlab.issue_access_token(AccessTokenSpec::days(&["api"], 20));

    for (fault, status) in [
        (RotationFault::ServerError, 500),
        (RotationFault::Throttled, 429),
    ] {
        gitlab.behave(|b| b.rotation_fault = fault);
        let token = issue();
        let response = send(&token).await.unwrap();
        assert_eq!(response.status(), status, "{fault:?}");
        if fault == RotationFault::Throttled {
            assert_eq!(response.headers()["retry-after"], "7");
        }
        assert!(gitlab.access_token_alive(&token), "{fault:?} rotated");
    }
    assert_eq!(gitlab.access_token_rotations(), 0);

    // Committed, and the answer lost: the old token is dead, its successor unknown to the client.
    let lost = |response: Result<Response, reqwest::Error>| async move {
        match response {
            Ok(response) if response.status() == 502 => true,
            Ok(response) => response.json::<Value>().await.is_err(),
            Err(_) => true,
        }
    };
    for fault in [
        RotationFault::BadGatewayAfterCommit,
        RotationFault::ResetAfterCommit,
    ] {
        gitlab.behave(|b| b.rotation_fault = fault);
        let token = issue();
        assert!(lost(send(&token).await).await, "{fault:?}");
        assert!(!gitlab.access_token_alive(&token), "{fault:?}");
        assert_eq!(gitlab.live_access_tokens_of_family(&token).len(), 1);
    }
    gitlab.behave(|b| b.rotation_fault = RotationFault::None);
    assert_eq!(gitlab.access_token_rotations(), 2);

    // The client gives up while GitLab answers: committed already.
    gitlab.behave(|b| b.rotation_delay = Duration::from_secs(2));
    let token = issue();
    let request = client.post(&rotate).header("PRIVATE-TOKEN", &token);
    let given_up = request.timeout(Duration::from_millis(500)).send().await;
    assert!(given_up.is_err());
    assert!(!gitlab.access_token_alive(&token));
    // The client gives up while GitLab works: GitLab commits all the same.
    gitlab.behave(|b| {
        b.rotation_delay = Duration::ZERO;
        b.rotation_commit_delay = Duration::from_secs(2);
    });
    let token = issue();
    let request = client.post(&rotate).header("PRIVATE-TOKEN", &token);
    let given_up = request.timeout(Duration::from_millis(500)).send().await;
    assert!(given_up.is_err());
    assert_eq!(gitlab.access_token_seen().rotations_in_progress, 1);
    assert!(gitlab.access_token_alive(&token), "not committed yet");
    while gitlab.access_token_seen().rotations_in_progress > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!gitlab.access_token_alive(&token));
    assert_eq!(gitlab.live_access_tokens_of_family(&token).len(), 1);
    assert_eq!(gitlab.access_token_rotations(), 4);
}

#[actix_web::test]
async fn access_tokens_act_as_their_own_user_on_the_api_and_git() {
    let world = GitLabWorld::start().await;
    let gitlab = &world.gitlab;
    let client = client(&world);
    gitlab.create_repository("group/app");
    gitlab.create_repository("other/lib");
    let alice =
        gitlab.issue_access_token(AccessTokenSpec::days(&["read_user", "read_repository"], 30));
    let bot = TokenOwner::bot(7001, "project_101_bot_3f2a", "group/app");
    let bot_spec = AccessTokenSpec::days(&["read_api", "read_repository"], 30).owner(bot);
    let bot = gitlab.issue_access_token(bot_spec);

    let user = url(&world, "/user");
    for request in [
        client.get(&user).header("PRIVATE-TOKEN", &alice),
        client.get(&user).bearer_auth(&alice),
    ] {
        let (status, body) = answer(request).await;
        assert_eq!(
            (status, &body["id"], &body["username"]),
            (200, &json!(USER_ID), &json!(USERNAME))
        );
    }
    let (status, body) = answer(client.get(&user).header("PRIVATE-TOKEN", &bot)).await;
    assert_eq!(status, 200);
    assert_eq!(
        (&body["id"], &body["username"], &body["bot"]),
        (&json!(7001), &json!("project_101_bot_3f2a"), &json!(true))
    );
    let (_, projects) = answer(client.get(url(&world, "/projects")).bearer_auth(&bot)).await;
    assert_eq!(projects.as_array().unwrap().len(), 1, "{projects}");
    let other = client
        .get(url(&world, "/projects/other%2Flib"))
        .header("PRIVATE-TOKEN", &bot);
    assert_eq!(answer(other).await.0, 404);
    // Scopes as for OAuth tokens: `read_user` reads `/user` only.
    let issues = client.get(url(&world, "/projects/group%2Fapp/issues"));
    assert_eq!(answer(issues.header("PRIVATE-TOKEN", &alice)).await.0, 403);

    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, world.ca.pem()).unwrap();
    let ca = ca.display().to_string();
    let trusting = [("GIT_SSL_CAINFO", ca.as_str())];
    let repo = |user: &str, token: &str, project: &str| {
        format!(
            "https://{user}:{token}@localhost:{}/gitlab/{project}.git",
            gitlab.port
        )
    };
    let clone = |url: String, into: &'static str| {
        let dir = dir.path().to_owned();
        async move { git_with(&dir, &["clone", "--quiet", &url, into], &trusting).await }
    };
    for (user, into) in [("anyname", "any"), ("oauth2", "oauth2")] {
        let cloned = clone(repo(user, &alice, "group/app"), into).await;
        assert!(cloned.status.success(), "{user}: {}", printed(&cloned));
    }
    let cloned = clone(repo("bot", &bot, "group/app"), "bot").await;
    assert!(cloned.status.success(), "{}", printed(&cloned));
    let refused = clone(repo("bot", &bot, "other/lib"), "not-its-own").await;
    assert!(!refused.status.success(), "a bot cloned another project");

    let work = dir.path().join("any");
    std::fs::write(work.join("NEW.md"), "pushed\n").unwrap();
    git_with(&work, &["add", "NEW.md"], &[]).await;
    git_with(&work, &["commit", "--quiet", "-m", "pushed"], &[]).await;
    let push = |token: &str| {
        let (work, url) = (work.clone(), repo("someone", token, "group/app"));
        async move {
            git_with(
                &work,
                &["push", "--quiet", &url, "HEAD:refs/heads/topic"],
                &trusting,
            )
            .await
        }
    };
    let refused = push(&alice).await;
    assert!(
        printed(&refused).contains("not allowed to push"),
        "{}",
        printed(&refused)
    );
    let writer = gitlab.issue_access_token(AccessTokenSpec::days(&["write_repository"], 30));
    let pushed = push(&writer).await;
    assert!(pushed.status.success(), "{}", printed(&pushed));
    assert!(gitlab.head("group/app", "topic").is_some());
    gitlab.revoke_access_token(&alice);
    let dead = clone(repo("anyname", &alice, "group/app"), "dead").await;
    assert!(!dead.status.success(), "a revoked token cloned");
    let seen = gitlab.seen().git_requests;
    assert!(
        seen.iter()
            .any(|r| r.user.as_deref() == Some("anyname") && r.accepted)
    );
    assert!(
        seen.iter()
            .any(|r| r.status == 404 && r.path.starts_with("/other/lib.git"))
    );
}
