//! The REST API through labgate (`/gitlab/{instance}/api/v4/…`) with a grant's token: what is
//! allowed works, with the person's OAuth token and nothing of the caller's reaching GitLab,
//! `Link` headers pointing back at labgate, bodies streamed, and one retry after a rotation
//! elsewhere.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::ProxyWorld;
use crate::helpers::expect_problem;
use crate::support::PUBLIC_URL;
use crate::support::database::Backend;

on_both_backends!(
    the_api_answers_the_user_and_the_granted_project_by_path_and_by_id,
    a_grant_for_several_projects_reaches_each_and_no_other,
    a_read_grant_cannot_write_and_gitlab_sees_nothing,
    a_write_grant_creates_an_issue,
    a_large_request_body_reaches_gitlab_whole_or_not_at_all,
    caller_credentials_and_cookies_never_reach_gitlab_and_no_cookie_comes_back,
    link_headers_point_back_at_labgate,
    a_large_file_streams_through_the_proxy,
    a_file_path_with_encoded_slashes_reaches_gitlab_as_sent,
    a_token_rotated_elsewhere_is_retried_once_for_get_only,
);

async fn the_api_answers_the_user_and_the_granted_project_by_path_and_by_id(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "read").await;
    let mark = pw.gitlab_mark();

    let user = pw.api_call(Method::GET, "/user", &grant.token).await;
    assert_eq!(user.status(), 200);
    assert_eq!(user.json::<Value>().await.unwrap()["username"], "alice");
    for path in [
        "/projects/group%2Fapp".to_owned(),
        format!("/projects/{}", pw.app_id),
    ] {
        let project = pw.api_call(Method::GET, &path, &grant.token).await;
        assert_eq!(project.status(), 200, "{path}");
        let project: Value = project.json().await.unwrap();
        assert_eq!(project["id"], pw.app_id, "{path}");
        assert_eq!(project["path_with_namespace"], "group/app");
        let issues = pw
            .api_call(Method::GET, &format!("{path}/issues/2"), &grant.token)
            .await;
        assert_eq!(issues.status(), 200, "{path}/issues/2");
    }
    let head = pw
        .api_call(Method::HEAD, "/projects/group%2Fapp", &grant.token)
        .await;
    assert_eq!(head.status(), 200);
    let private_token = pw
        .app
        .client
        .get(pw.api("/projects/group%2Fapp/issues"))
        .header("PRIVATE-TOKEN", &grant.token)
        .send()
        .await
        .unwrap();
    assert_eq!(private_token.status(), 200, "PRIVATE-TOKEN: lgp_…");
    assert_eq!(private_token.json::<Vec<Value>>().await.unwrap().len(), 5);

    let seen = pw.gitlab().api_requests_since(mark.0);
    assert!(seen.len() >= 6, "{seen:?}");
    for request in &seen {
        let token = request.token.as_deref().unwrap_or_default();
        assert!(
            !token.starts_with("lgp_") && pw.gitlab().access_token_works(token),
            "GitLab got the person's OAuth token: {request:?}"
        );
        assert!(
            request.path_and_query.starts_with("/gitlab/api/v4/"),
            "{request:?}"
        );
    }
}

async fn a_grant_for_several_projects_reaches_each_and_no_other(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    pw.gitlab().create_repository("group/third");
    let grant = pw.grant(&["group/app", "group/other"], "read").await;
    for (path, id) in [
        ("/projects/group%2Fapp", pw.app_id),
        ("/projects/group%2Fother", pw.other_id),
    ] {
        let project = pw.api_call(Method::GET, path, &grant.token).await;
        assert_eq!(project.status(), 200, "{path}");
        assert_eq!(project.json::<Value>().await.unwrap()["id"], id);
    }
    let third = pw
        .api_call(Method::GET, "/projects/group%2Fthird", &grant.token)
        .await;
    expect_problem(third, 403, "outside_grant").await;
}

async fn a_read_grant_cannot_write_and_gitlab_sees_nothing(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "read").await;
    let mark = pw.gitlab_mark();
    for (method, path) in [
        (Method::POST, "/projects/group%2Fapp/issues".to_owned()),
        (Method::POST, format!("/projects/{}/issues", pw.app_id)),
        (Method::PUT, "/projects/group%2Fapp/issues/1".to_owned()),
        (Method::PATCH, "/projects/group%2Fapp/issues/1".to_owned()),
        (Method::DELETE, "/projects/group%2Fapp/issues/1".to_owned()),
    ] {
        let response = pw
            .app
            .client
            .request(method.clone(), pw.api(&path))
            .bearer_auth(&grant.token)
            .json(&json!({"title": "From the bot"}))
            .send()
            .await
            .unwrap();
        expect_problem(response, 403, "outside_grant").await;
    }
    let seen: Vec<_> = pw
        .gitlab()
        .api_requests_since(mark.0)
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    assert!(seen.is_empty(), "GitLab was asked to write: {seen:?}");
    assert_eq!(pw.gitlab().issues("group/app").len(), 5);
}

async fn a_write_grant_creates_an_issue(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "write").await;
    for path in [
        "/projects/group%2Fapp/issues".to_owned(),
        format!("/projects/{}/issues", pw.app_id),
    ] {
        let created = pw
            .app
            .client
            .post(pw.api(&path))
            .bearer_auth(&grant.token)
            .json(&json!({"title": "From the bot", "description": "via labgate"}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201, "{path}");
        let created: Value = created.json().await.unwrap();
        assert_eq!(created["title"], "From the bot");
        assert_eq!(created["description"], "via labgate");
    }
    let issues = pw.gitlab().issues("group/app");
    assert_eq!(issues.len(), 7);
    assert_eq!(issues[6]["title"], "From the bot");
}

/// A large request body either reaches GitLab whole or is refused (413) before anything is sent.
async fn a_large_request_body_reaches_gitlab_whole_or_not_at_all(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "write").await;
    let mark = pw.gitlab_mark();
    let description = "x".repeat(8 << 20);

    let response = pw
        .app
        .client
        .post(pw.api("/projects/group%2Fapp/issues"))
        .bearer_auth(&grant.token)
        .json(&json!({"title": "Large", "description": description}))
        .send()
        .await
        .unwrap();

    let status = response.status().as_u16();
    let issues = pw.gitlab().issues("group/app");
    match status {
        201 => assert_eq!(
            issues[5]["description"].as_str().map(str::len),
            Some(8 << 20)
        ),
        413 => pw.assert_gitlab_saw_nothing_since(mark, "a refused large body"),
        _ => panic!("a large body: {status} {}", response.text().await.unwrap()),
    }
}

async fn caller_credentials_and_cookies_never_reach_gitlab_and_no_cookie_comes_back(
    backend: Backend,
) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "read").await;
    let mark = pw.gitlab_mark();

    let with_bearer = pw
        .app
        .client
        .get(pw.api("/projects/group%2Fapp"))
        .bearer_auth(&grant.token)
        .header("Cookie", "_gitlab_session=stolen; known_sign_in=x")
        .header("Job-Token", "glcbt-64_jobtokenofsomeoneelse")
        .send()
        .await
        .unwrap();
    assert_eq!(with_bearer.status(), 200);
    assert!(
        !with_bearer.headers().contains_key("set-cookie"),
        "GitLab's Set-Cookie came back"
    );
    let with_private_token = pw
        .app
        .client
        .get(pw.api("/user"))
        .header("PRIVATE-TOKEN", &grant.token)
        .header("Cookie", "_gitlab_session=stolen")
        .send()
        .await
        .unwrap();
    assert_eq!(with_private_token.status(), 200);
    assert!(!with_private_token.headers().contains_key("set-cookie"));

    let seen = pw.gitlab().api_requests_since(mark.0);
    assert!(seen.len() >= 2);
    for request in seen {
        assert_eq!(request.cookie, None, "a cookie reached GitLab");
        assert_eq!(request.job_token, None, "a job token reached GitLab");
        assert_eq!(request.private_token, None, "PRIVATE-TOKEN reached GitLab");
        let authorization = request.authorization.unwrap_or_default();
        assert!(
            !authorization.contains("lgp_"),
            "the grant's token reached GitLab"
        );
        let token = authorization.strip_prefix("Bearer ").unwrap_or_default();
        assert!(
            pw.gitlab().access_token_works(token),
            "the person's OAuth token"
        );
    }
}

async fn link_headers_point_back_at_labgate(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "read").await;
    let first = pw
        .api_call(
            Method::GET,
            "/projects/group%2Fapp/issues?per_page=2",
            &grant.token,
        )
        .await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-next-page"], "2");
    assert_eq!(first.headers()["x-total"], "5");
    let link = first.headers()["link"].to_str().unwrap().to_owned();
    let ours = format!("{PUBLIC_URL}/gitlab/corp/api/v4/projects/group%2Fapp/issues");
    assert!(
        link.contains(&format!("<{ours}?page=2&per_page=2>; rel=\"next\"")),
        "{link}"
    );
    assert!(
        !link.contains("localhost") && !link.contains("/gitlab/api/v4"),
        "GitLab's own URL in {link}"
    );
    let next = link
        .split(", ")
        .find(|l| l.ends_with("rel=\"next\""))
        .unwrap();
    let next = next[1..next.find('>').unwrap()].replacen(PUBLIC_URL, &pw.app.address, 1);
    let second = pw
        .app
        .client
        .get(next)
        .bearer_auth(&grant.token)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 200);
    let issues: Vec<Value> = second.json().await.unwrap();
    assert_eq!(issues[0]["iid"], 3, "the second page");
}

async fn a_large_file_streams_through_the_proxy(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let mut content = vec![0u8; 12 << 20];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut content);
    pw.gitlab()
        .add_file("group/app", "big.bin", content.clone());
    let grant = pw.grant(&["group/app"], "read").await;
    let hold = pw.gitlab().hold_large_bodies();

    let path = "/projects/group%2Fapp/repository/files/big.bin/raw?ref=main";
    let mut response = pw.api_call(Method::GET, path, &grant.token).await;
    if response.status() != 200 {
        hold.release();
        panic!(
            "GET {path}: {} {}",
            response.status(),
            response.text().await.unwrap()
        );
    }
    let mut received = Vec::new();
    // GitLab holds the rest of the body: it arrives only if labgate passes bytes on as they come.
    let first_part = tokio::time::timeout(Duration::from_secs(10), async {
        while received.len() < 256 << 10 {
            match response.chunk().await.unwrap() {
                Some(chunk) => received.extend(chunk),
                None => break,
            }
        }
    })
    .await;
    hold.release();
    assert!(
        first_part.is_ok(),
        "labgate waited for the whole body before answering ({} bytes passed on)",
        received.len()
    );
    while let Some(chunk) = response.chunk().await.unwrap() {
        received.extend(chunk);
    }
    assert_eq!(received.len(), content.len());
    assert!(received == content, "the file arrived intact");
}

/// GitLab's `repository/files/:file_path` (and branch or tag names) take a URL-encoded path:
/// `%2F` after the project id is how GitLab is meant to be called.
async fn a_file_path_with_encoded_slashes_reaches_gitlab_as_sent(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    pw.gitlab()
        .add_file("group/app", "docs/guide.md", b"# Guide\n".to_vec());
    let grant = pw.grant(&["group/app"], "read").await;
    let mark = pw.gitlab_mark();

    let path = "/projects/group%2Fapp/repository/files/docs%2Fguide.md/raw?ref=main";
    let response = pw.api_call(Method::GET, path, &grant.token).await;

    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "# Guide\n");
    let seen = pw.gitlab().api_requests_since(mark.0);
    assert_eq!(
        seen.last().unwrap().path_and_query,
        format!("/gitlab/api/v4{path}")
    );
}

async fn a_token_rotated_elsewhere_is_retried_once_for_get_only(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "write").await;
    let first = pw.api_call(Method::GET, "/user", &grant.token).await;
    assert_eq!(first.status(), 200);
    let used = pw
        .gitlab()
        .seen()
        .api_requests
        .last()
        .unwrap()
        .token
        .clone()
        .unwrap();

    // The token labgate holds dies at GitLab, as after a refresh elsewhere (the fake expires it,
    // its refresh token still works): one reload/refresh, and the GET is retried once.
    pw.gitlab().expire_access_token(&used);
    let mark = pw.gitlab_mark();
    let retried = pw
        .api_call(Method::GET, "/projects/group%2Fapp", &grant.token)
        .await;
    let status = retried.status();
    let seen = pw.gitlab().api_requests_since(mark.0);
    let (refreshes, answer) = (pw.gitlab().seen().refreshes, retried.text().await.unwrap());
    assert_eq!(
        status, 200,
        "{answer}; GitLab saw {seen:?}, {refreshes} refreshes"
    );
    // The dead token was tried once; everything after it carried one new token.
    assert_eq!(seen[0].token.as_deref(), Some(used.as_str()), "{seen:?}");
    assert_eq!(seen[0].status, 401);
    let with_dead = seen
        .iter()
        .filter(|r| r.token.as_deref() == Some(used.as_str()));
    assert_eq!(
        with_dead.count(),
        1,
        "the dead token is not tried again: {seen:?}"
    );
    let fresh = seen.last().unwrap().token.clone().unwrap();
    assert!(
        seen[1..]
            .iter()
            .all(|r| r.token.as_deref() == Some(fresh.as_str()) && r.status == 200),
        "one retry with a fresh token: {seen:?}"
    );
    assert!(refreshes <= 1, "{refreshes} refreshes");

    // A POST is sent at most once, whatever its token meets at GitLab.
    pw.gitlab().expire_access_token(&fresh);
    let mark = pw.gitlab_mark();
    let posted = pw
        .app
        .client
        .post(pw.api("/projects/group%2Fapp/issues"))
        .bearer_auth(&grant.token)
        .json(&json!({"title": "once"}))
        .send()
        .await
        .unwrap();
    let status = posted.status();
    let posts = pw
        .gitlab()
        .api_requests_since(mark.0)
        .into_iter()
        .filter(|r| r.method == "POST")
        .count();
    assert!(posts <= 1, "a POST was sent {posts} times");
    let created = pw
        .gitlab()
        .issues("group/app")
        .iter()
        .filter(|i| i["title"] == "once")
        .count();
    assert_eq!(created, usize::from(status == 201), "{status}");
}
