//! The proxy on an access-token connection (SPEC, "Access-token connections": handouts, access
//! grants and the proxy work on them as on OAuth ones): a project access token (a bot user's,
//! member of one project) held as a connection, an access grant for its project, real `git`
//! and a REST read through labgate; GitLab sees the project access token, the caller never does.

use reqwest::Method;
use serde_json::{Value, json};

use super::{ProxyWorld, git, printed};
use crate::support::database::Backend;
use crate::support::fake_gitlab::{AccessTokenSpec, TokenOwner};

on_both_backends!(git_and_the_api_work_through_a_project_access_token_connection);

const BOT: &str = "project_101_bot_3f2a";

async fn git_and_the_api_work_through_a_project_access_token_connection(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let gitlab = pw.gitlab();
    let owner = TokenOwner::bot(7001, BOT, "group/app");
    let scopes = ["read_repository", "write_repository", "read_api"];
    let token = gitlab.issue_access_token(AccessTokenSpec::days(&scopes, 30).owner(owner));
    let held = pw
        .app
        .client
        .post(pw.url("/api/v1/connections"))
        .bearer_auth(&pw.service_token)
        .json(&json!({"instance": "corp", "subject": "release-bot", "access_token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(held.status(), 201);
    let held: Value = held.json().await.unwrap();
    assert_eq!(held["kind"], "access_token");
    assert_eq!(held["gitlab"]["username"], BOT);

    let granted = pw
        .request_grant(json!({"instance": "corp", "subject": "release-bot",
            "projects": ["group/app"], "access": "write"}))
        .await;
    let status = granted.status();
    let text = granted.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    assert!(
        !text.contains(&token),
        "the grant's answer holds the GitLab token"
    );
    let grant = serde_json::from_str::<Value>(&text).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // git clone and push through /git/corp/…, with the grant.
    let mark = pw.gitlab_mark();
    let dir = tempfile::tempdir().unwrap();
    let url = pw.git_url(Some(&grant), "group/app");
    let cloned = git(dir.path(), &["clone", "--quiet", &url, "work"]).await;
    assert!(cloned.status.success(), "git clone: {}", printed(&cloned));
    let work = dir.path().join("work");
    assert_eq!(
        std::fs::read_to_string(work.join("README.md")).unwrap(),
        "hello from GitLab\n"
    );
    std::fs::write(work.join("BOT.md"), "from the bot\n").unwrap();
    assert!(git(&work, &["add", "BOT.md"]).await.status.success());
    let committed = git(&work, &["commit", "--quiet", "-m", "from the bot"]).await;
    assert!(committed.status.success(), "{}", printed(&committed));
    let pushed = git(&work, &["push", "--quiet", &url, "HEAD:refs/heads/main"]).await;
    assert!(pushed.status.success(), "git push: {}", printed(&pushed));
    let head = git(&work, &["rev-parse", "HEAD"]).await;
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    assert_eq!(gitlab.head("group/app", "main"), Some(head));
    for output in [&cloned, &pushed] {
        assert!(!printed(output).contains(&token));
    }

    // The REST API through /gitlab/corp/api/v4/…, with the grant: the bot's own view.
    let project = pw
        .api_call(Method::GET, "/projects/group%2Fapp", &grant)
        .await;
    assert_eq!(project.status(), 200);
    let project: Value = project.json().await.unwrap();
    assert_eq!(project["path_with_namespace"], "group/app");
    assert_eq!(project["id"], pw.app_id);
    let user = pw.api_call(Method::GET, "/user", &grant).await;
    assert_eq!(user.status(), 200);
    let user = user.text().await.unwrap();
    assert!(!user.contains(&token));
    assert_eq!(
        serde_json::from_str::<Value>(&user).unwrap()["username"],
        BOT
    );

    // GitLab saw the project access token, and nothing else, for all of it.
    let seen = gitlab.seen();
    let git_seen = &seen.git_requests[mark.1..];
    assert!(git_seen.iter().any(|r| r.is_push() && r.status == 200));
    for request in git_seen {
        assert_eq!(
            request.password.as_deref(),
            Some(token.as_str()),
            "{request:?}"
        );
        assert!(request.accepted, "{request:?}");
    }
    let api_seen = gitlab.api_requests_since(mark.0);
    assert!(!api_seen.is_empty());
    for request in &api_seen {
        let presented = request
            .token
            .as_deref()
            .or(request.private_token.as_deref());
        assert_eq!(presented, Some(token.as_str()), "{request:?}");
    }
    assert!(gitlab.access_token_alive(&token));
}
