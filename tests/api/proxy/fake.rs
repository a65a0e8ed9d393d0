//! The fake GitLab itself, used directly: its REST API and git are as strict as GitLab's, so
//! that what the proxy tests prove holds against the real one.

use std::time::Duration;

use reqwest::{Client, Method};
use serde_json::{Value, json};

use super::{git, git_with, printed};
use crate::helpers::GitLabWorld;

fn client(world: &GitLabWorld) -> Client {
    Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(world.ca.pem().as_bytes()).unwrap())
        .build()
        .unwrap()
}

#[actix_web::test]
async fn the_fake_gitlab_api_routes_scopes_and_paginates_like_gitlab() {
    let world = GitLabWorld::start().await;
    let gitlab = &world.gitlab;
    let id = gitlab.add_project("group/app");
    let (token, _) = gitlab.seed_grant(&["read_api"], Duration::from_secs(600));
    let (writer, _) = gitlab.seed_grant(&["api"], Duration::from_secs(600));
    let (git_only, _) = gitlab.seed_grant(&["read_repository"], Duration::from_secs(600));
    let client = client(&world);
    let api = |path: &str| format!("{}/api/v4{path}", gitlab.base_url());
    let call = |method: Method, path: &str, token: &str| {
        client.request(method, api(path)).bearer_auth(token).send()
    };

    let user = call(Method::GET, "/user", &token).await.unwrap();
    assert_eq!(user.status(), 200);
    assert!(user.headers().contains_key("set-cookie"));
    assert_eq!(user.json::<Value>().await.unwrap()["username"], "alice");
    for path in [
        "/projects/group%2Fapp",
        &format!("/projects/{id}"),
        "/projects/GROUP%2FApp",
    ] {
        let project: Value = call(Method::GET, path, &token)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(project["id"], id, "{path}");
        assert_eq!(project["path_with_namespace"], "group/app");
    }
    // Decoded once: a doubly encoded slash names no project; an unencoded one is another route.
    for path in ["/projects/group%252Fapp", "/projects/group/app"] {
        let missing = call(Method::GET, path, &token).await.unwrap();
        assert_eq!(missing.status(), 404, "{path}");
    }

    let page = call(
        Method::GET,
        "/projects/group%2Fapp/issues?per_page=2&page=2",
        &token,
    )
    .await
    .unwrap();
    assert_eq!(page.status(), 200);
    let own = format!(
        "https://localhost:{}/gitlab/api/v4/projects/group%2Fapp/issues",
        gitlab.port
    );
    let link = page.headers()["link"].to_str().unwrap().to_owned();
    assert!(
        link.contains(&format!("<{own}?page=3&per_page=2>; rel=\"next\"")),
        "{link}"
    );
    assert_eq!(page.headers()["x-next-page"], "3");
    assert_eq!(page.headers()["x-total"], "5");
    let issues: Vec<Value> = page.json().await.unwrap();
    assert_eq!(issues.len(), 2);
    assert_eq!(issues[0]["iid"], 3);

    // read_api reads only; api writes; a repository scope is no API scope.
    let post = |token: &str| {
        client
            .post(api("/projects/group%2Fapp/issues"))
            .bearer_auth(token)
            .json(&json!({"title": "Broken build"}))
            .send()
    };
    let refused = post(&token).await.unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "insufficient_scope"
    );
    let created = post(&writer).await.unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(
        created.json::<Value>().await.unwrap()["title"],
        "Broken build"
    );
    assert_eq!(gitlab.issues("group/app").len(), 6);
    assert_eq!(
        call(Method::GET, "/user", &git_only)
            .await
            .unwrap()
            .status(),
        403
    );

    gitlab.revoke_token(&token);
    let revoked = call(Method::GET, "/user", &token).await.unwrap();
    assert_eq!(revoked.status(), 401);
    assert_eq!(
        revoked.json::<Value>().await.unwrap(),
        json!({"message": "401 Unauthorized"})
    );
    gitlab.expire_access_token(&writer);
    assert_eq!(
        call(Method::GET, "/user", &writer).await.unwrap().status(),
        401
    );

    let seen = gitlab.seen().api_requests;
    let last = seen.last().unwrap();
    assert_eq!(
        (last.method.as_str(), last.path_and_query.as_str()),
        ("GET", "/gitlab/api/v4/user")
    );
    assert_eq!(last.token.as_deref(), Some(writer.as_str()));
    assert_eq!(last.status, 401);
    assert!(
        seen.iter()
            .any(|r| r.path_and_query.ends_with("issues?per_page=2&page=2")),
        "the raw query is recorded"
    );
}

#[actix_web::test]
async fn the_fake_gitlab_holds_a_large_body_until_released() {
    let world = GitLabWorld::start().await;
    let gitlab = &world.gitlab;
    gitlab.add_project("group/app");
    let content: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
    gitlab.add_file("group/app", "data/big.bin", content.clone());
    let (token, _) = gitlab.seed_grant(&["read_api"], Duration::from_secs(600));
    let hold = gitlab.hold_large_bodies();

    let mut response = client(&world)
        .get(format!(
            "{}/api/v4/projects/group%2Fapp/repository/files/data%2Fbig.bin/raw?ref=main",
            gitlab.base_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut received = Vec::new();
    while received.len() < 256 << 10 {
        received.extend(response.chunk().await.unwrap().unwrap());
    }
    assert_eq!(received.len(), 256 << 10, "the first part, and no more");
    hold.release();
    while let Some(chunk) = response.chunk().await.unwrap() {
        received.extend(chunk);
    }
    assert!(received == content, "the whole file");
}

#[actix_web::test]
async fn the_fake_gitlab_serves_clone_and_push_by_scope() {
    let world = GitLabWorld::start().await;
    let gitlab = &world.gitlab;
    gitlab.create_repository("group/app");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, world.ca.pem()).unwrap();
    let ca = ca_file.display().to_string();
    let (reader, _) = gitlab.seed_grant(&["read_repository"], Duration::from_secs(600));
    let (writer, _) = gitlab.seed_grant(&["write_repository"], Duration::from_secs(600));
    let url = |token: &str| {
        format!(
            "https://oauth2:{token}@localhost:{}/gitlab/group/app.git",
            gitlab.port
        )
    };
    let trusting = [("GIT_SSL_CAINFO", ca.as_str())];

    for (version, name) in [("2", "v2"), ("0", "v0")] {
        let protocol = format!("protocol.version={version}");
        let args = ["-c", &protocol, "clone", "--quiet", &url(&reader), name];
        let clone = git_with(dir.path(), &args, &trusting).await;
        assert!(clone.status.success(), "{}", printed(&clone));
        let protocol = gitlab
            .seen()
            .git_requests
            .last()
            .unwrap()
            .git_protocol
            .clone();
        let expected = (version == "2").then(|| "version=2".to_owned());
        assert_eq!(protocol, expected, "Git-Protocol header of a {name} clone");
    }
    let work = dir.path().join("v2");
    std::fs::write(work.join("NEW.md"), "pushed\n").unwrap();
    git(&work, &["add", "NEW.md"]).await;
    let committed = git(&work, &["commit", "--quiet", "-m", "pushed"]).await;
    assert!(committed.status.success(), "{}", printed(&committed));

    let args = ["push", "--quiet", &url(&reader), "HEAD:refs/heads/topic"];
    let refused = git_with(&work, &args, &trusting).await;
    assert!(!refused.status.success(), "a read token pushed");
    assert!(
        printed(&refused).contains("not allowed to push"),
        "{}",
        printed(&refused)
    );
    assert_eq!(gitlab.head("group/app", "topic"), None);

    let args = ["push", "--quiet", &url(&writer), "HEAD:refs/heads/topic"];
    let pushed = git_with(&work, &args, &trusting).await;
    assert!(pushed.status.success(), "{}", printed(&pushed));
    let head = git(&work, &["rev-parse", "HEAD"]).await;
    assert_eq!(
        gitlab.head("group/app", "topic").unwrap(),
        String::from_utf8_lossy(&head.stdout).trim()
    );
    let seen = gitlab.seen().git_requests;
    assert!(
        seen.iter()
            .any(|r| r.is_push() && r.accepted && r.status == 200)
    );
    assert!(
        seen.iter()
            .all(|r| r.user.as_deref() == Some("oauth2") || r.user.is_none())
    );

    // Moved, it still answers at its old path, over the API and git.
    gitlab.move_project("group/app", "elsewhere/renamed");
    let (api_token, _) = gitlab.seed_grant(&["read_api"], Duration::from_secs(600));
    let project: Value = client(&world)
        .get(format!("{}/api/v4/projects/group%2Fapp", gitlab.base_url()))
        .bearer_auth(&api_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(project["path_with_namespace"], "elsewhere/renamed");
    let args = ["clone", "--quiet", &url(&reader), "old-path"];
    let cloned = git_with(dir.path(), &args, &trusting).await;
    assert!(cloned.status.success(), "{}", printed(&cloned));
    assert!(gitlab.head("elsewhere/renamed", "topic").is_some());
}

#[actix_web::test]
async fn the_fake_gitlab_breaks_a_large_body_off_when_told() {
    let world = GitLabWorld::start().await;
    let gitlab = &world.gitlab;
    gitlab.add_project("group/app");
    gitlab.add_file("group/app", "big.bin", vec![7u8; 2 << 20]);
    let (token, _) = gitlab.seed_grant(&["read_api"], Duration::from_secs(600));
    gitlab.break_large_bodies();

    let response = client(&world)
        .get(format!(
            "{}/api/v4/projects/101/repository/files/big.bin/raw",
            gitlab.base_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err(), "the body breaks off");
}
