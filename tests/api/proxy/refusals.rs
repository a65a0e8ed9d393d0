//! What the REST proxy refuses, whatever the grant: other projects (by path or numeric id),
//! lists and searches across projects, GraphQL, a project's settings and secrets, path tricks
//! that GitLab would route elsewhere, tokens that are not live grants, and a grant used on
//! another instance. Each refusal is labgate's own: GitLab sees nothing.

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ProxyWorld, expect_refused};
use crate::helpers::{GitLabWorld, expect_problem};
use crate::support::database::Backend;

on_both_backends!(
    other_projects_are_refused_by_path_and_by_numeric_id,
    cross_project_lists_searches_and_graphql_are_refused,
    project_settings_and_secrets_are_refused_even_with_a_write_grant,
    path_tricks_are_refused_and_never_normalised_into_another_project,
    api_calls_without_a_live_grant_get_401,
    credentials_and_acting_as_others_in_the_query_are_refused,
    a_grant_is_refused_on_another_instance,
);

/// Asserts that, since `mark`, GitLab saw at most lookups of a project by numeric id (how
/// labgate may resolve an id), and nothing that reads or changes anything else.
fn assert_only_id_lookups_since(pw: &ProxyWorld, mark: (usize, usize), what: &str) {
    let seen = pw.gitlab().api_requests_since(mark.0);
    let others: Vec<_> = seen
        .iter()
        .filter(|r| {
            let id = r.path_and_query.strip_prefix("/gitlab/api/v4/projects/");
            !(r.method == "GET" && id.is_some_and(|id| id.parse::<u64>().is_ok()))
        })
        .map(|r| format!("{} {}", r.method, r.path_and_query))
        .collect();
    assert!(others.is_empty(), "{what}: GitLab received {others:?}");
}

async fn other_projects_are_refused_by_path_and_by_numeric_id(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "write").await;
    let mark = pw.gitlab_mark();
    for path in [
        "/projects/group%2Fother".to_owned(),
        "/projects/group%2Fother/issues".to_owned(),
        "/projects/elsewhere%2Fsecret/repository/files/README.md/raw".to_owned(),
        "/projects/group%2Fapp2".to_owned(),
        "/projects/group".to_owned(),
    ] {
        let response = pw.api_call(Method::GET, &path, &grant.token).await;
        expect_refused(response).await;
    }
    pw.assert_gitlab_saw_nothing_since(mark, "another project by path");

    let mark = pw.gitlab_mark();
    for id in [pw.other_id, pw.secret_id, 99_999] {
        for path in [format!("/projects/{id}"), format!("/projects/{id}/issues")] {
            let response = pw.api_call(Method::GET, &path, &grant.token).await;
            let status = response.status().as_u16();
            assert!(status == 403 || status == 404, "{path}: {status}");
        }
        let posted = pw
            .app
            .client
            .post(pw.api(&format!("/projects/{id}/issues")))
            .bearer_auth(&grant.token)
            .json(&json!({"title": "elsewhere"}))
            .send()
            .await
            .unwrap();
        assert!(
            [403, 404].contains(&posted.status().as_u16()),
            "POST to {id}"
        );
    }
    assert_only_id_lookups_since(&pw, mark, "another project by numeric id");
    assert_eq!(pw.gitlab().issues("group/other").len(), 5);
}

async fn cross_project_lists_searches_and_graphql_are_refused(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "write").await;
    let mark = pw.gitlab_mark();
    for path in [
        "/projects",
        "/projects/",
        "/projects?search=secret",
        "/groups",
        "/groups/group/projects",
        "/groups/group%2Fsub",
        "/users",
        "/users/1",
        "/search?scope=projects&search=a",
        "/snippets",
        "/snippets/public",
        "/namespaces",
        "/personal_access_tokens",
        "/application/settings",
        "/version",
        "/",
        "",
    ] {
        let response = pw.api_call(Method::GET, path, &grant.token).await;
        expect_refused(response).await;
    }
    for path in [
        "/gitlab/corp/api/graphql",
        "/gitlab/corp/api/v3/user",
        "/gitlab/corp/oauth/token/info",
    ] {
        let response = pw
            .app
            .client
            .post(pw.url(path))
            .bearer_auth(&grant.token)
            .json(&json!({"query": "{ projects { nodes { fullPath } } }"}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert!(status == 403 || status == 404, "{path}: {status}");
    }
    pw.assert_gitlab_saw_nothing_since(mark, "lists, searches and GraphQL");
}

async fn project_settings_and_secrets_are_refused_even_with_a_write_grant(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "write").await;
    let mark = pw.gitlab_mark();
    let project = "/projects/group%2Fapp";
    let mut cases = vec![
        (Method::PUT, project.to_owned()),
        (Method::PATCH, project.to_owned()),
        (Method::DELETE, project.to_owned()),
    ];
    for (method, rest) in [
        (Method::GET, "members"),
        (Method::GET, "members/all"),
        (Method::POST, "members"),
        (Method::GET, "access_tokens"),
        (Method::POST, "access_tokens"),
        (Method::GET, "deploy_keys"),
        (Method::POST, "deploy_keys"),
        (Method::GET, "deploy_tokens"),
        (Method::GET, "hooks"),
        (Method::POST, "hooks"),
        (Method::GET, "variables"),
        (Method::POST, "variables"),
        (Method::PUT, "transfer"),
        (Method::POST, "share"),
        (Method::DELETE, "share/1"),
        (Method::POST, "fork"),
        (Method::POST, "fork/102"),
        (Method::DELETE, "fork"),
        (Method::GET, "forks"),
        (Method::GET, "export"),
        (Method::POST, "export"),
        (Method::GET, "export/download"),
        (Method::POST, "import"),
        (Method::POST, "star"),
        (Method::POST, "unstar"),
        (Method::POST, "repository/branches/main/protect"),
        (Method::PUT, "repository/branches/main/unprotect"),
        (Method::POST, "merge_requests/1/approval_rules"),
        (Method::POST, "merge_requests/1/reset_approvals"),
        (Method::POST, "issues/1/move"),
        (Method::POST, "issues/1/clone"),
        (Method::POST, "issues/1/links"),
    ] {
        cases.push((method, format!("{project}/{rest}")));
    }
    cases.push((Method::GET, format!("/projects/{}/members", pw.app_id)));
    cases.push((Method::DELETE, format!("/projects/{}", pw.app_id)));
    for (method, path) in cases {
        let response = pw
            .app
            .client
            .request(method.clone(), pw.api(&path))
            .bearer_auth(&grant.token)
            .json(&json!({"key": "AWS_SECRET", "value": "x", "url": "https://evil.example"}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert_eq!(status, 403, "{method} {path}");
        expect_problem(response, 403, "outside_grant").await;
    }
    assert_only_id_lookups_since(&pw, mark, "a project's settings and secrets");
}

/// GitLab's Rack reads parameters split on `&` or `;`, in any case of encoding and with
/// `name[]` naming `name`: each spelling of a credential or of `sudo` is refused.
async fn credentials_and_acting_as_others_in_the_query_are_refused(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "write").await;
    let mark = pw.gitlab_mark();
    for query in [
        "sudo=root",
        "per_page=5&sudo=root",
        "per_page=5;sudo=root",
        "per_page=5&%20sudo=root",
        "SUDO=1",
        "su%64o=root",
        "sudo%5B%5D=root",
        "sudo[]=root",
        "private_token=glpat-x",
        "access_token=x",
        "job_token=x",
        "_method=DELETE",
    ] {
        let path = format!("/projects/group%2Fapp/issues?{query}");
        let response = pw.api_call(Method::GET, &path, &grant.token).await;
        let problem = expect_problem(response, 400, "refused_parameter").await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("not forwarded"),
            "{query}: {problem}"
        );
    }
    pw.assert_gitlab_saw_nothing_since(mark, "a refused query parameter");

    // Names that merely resemble one pass.
    let response = pw
        .api_call(
            Method::GET,
            "/projects/group%2Fapp/issues?pseudo=1&sudoku=2",
            &grant.token,
        )
        .await;
    assert_eq!(response.status(), 200);
}

/// One request with the path exactly as written, which an HTTP client library would
/// normalise; returns the status.
async fn raw_get(address: &str, path: &str, token: &str) -> u16 {
    let host = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line for {path}: {answer}"))
}

async fn path_tricks_are_refused_and_never_normalised_into_another_project(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "read").await;
    let base = "/gitlab/corp/api/v4";
    // The same request without a trick works: the tricks below are what is refused.
    assert_eq!(
        raw_get(
            &pw.app.address,
            &format!("{base}/projects/group%2Fapp"),
            &grant.token
        )
        .await,
        200
    );
    let mark = pw.gitlab_mark();
    for trick in [
        "/projects/group%2Fapp/../group%2Fother",
        "/projects/group%2Fapp/../../projects/group%2Fother/issues",
        "/projects/group%2Fapp/%2e%2e/group%2Fother",
        "/projects/group%2Fapp/%2E%2E/%2E%2E/users",
        "/projects/group%2Fapp%2F..%2F..%2Felsewhere%2Fsecret",
        "/projects/group%2Fapp%2F%2e%2e%2Fother",
        "/projects/group%2F..%2Fgroup%2Fother",
        "/projects/group%252Fother",
        "/projects/group%252Fapp",
        "/projects/group%25252Fapp",
        "//projects/group%2Fother",
        "/projects//group%2Fother",
        "/projects/group%2F%2Fapp",
        "/projects/group%2Fapp;/../group%2Fother",
        "/projects/group%2Fother;x",
        "/projects/group%2Fapp%3B/issues",
        "/projects/group%2Fapp\\..\\group%2Fother",
        "/projects/group%2Fapp%5C..%5Cgroup%2Fother",
        "/projects/group%5Capp",
        "/projects/group/app",
        "/projects/group%2Fapp%00",
        "/projects/group%2Fapp%2F",
        "/projects/.%2Fgroup%2Fapp",
    ] {
        let status = raw_get(&pw.app.address, &format!("{base}{trick}"), &grant.token).await;
        assert!(status == 400 || status == 403, "{trick}: {status}");
    }
    for trick in [
        "/git/corp/group/app.git/../other.git/info/refs?service=git-upload-pack",
        "/git/corp/group/app.git/%2e%2e/other.git/info/refs?service=git-upload-pack",
        "/git/corp/group%2Fother.git/info/refs?service=git-upload-pack",
        "/git/corp/group/app.git/..%2F..%2Fother.git/info/refs?service=git-upload-pack",
        "/git/corp//group/other.git/info/refs?service=git-upload-pack",
        "/git/corp/group/app;.git/info/refs?service=git-upload-pack",
        "/git/corp/group\\other.git/info/refs?service=git-upload-pack",
    ] {
        let status = raw_get(&pw.app.address, trick, &grant.token).await;
        assert!((400..500).contains(&status), "{trick}: {status}");
    }
    pw.assert_gitlab_saw_nothing_since(mark, "path tricks");
}

async fn api_calls_without_a_live_grant_get_401(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let revoked = pw.grant(&["group/app"], "read").await;
    assert_eq!(
        pw.delete_grant_as(&pw.service_token, &revoked.id)
            .await
            .status(),
        204
    );
    let (person_token, _) = pw
        .gitlab()
        .seed_grant(&["api"], std::time::Duration::from_secs(600));
    let mark = pw.gitlab_mark();
    let user = pw.api("/user");
    let requests = [
        ("no token", pw.app.client.get(&user)),
        (
            "an unknown token",
            pw.app
                .client
                .get(&user)
                .bearer_auth("lgp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ),
        (
            "a revoked grant",
            pw.app.client.get(&user).bearer_auth(&revoked.token),
        ),
        (
            "a GitLab token",
            pw.app.client.get(&user).bearer_auth(&person_token),
        ),
        (
            "a GitLab token as PRIVATE-TOKEN",
            pw.app
                .client
                .get(&user)
                .header("PRIVATE-TOKEN", &person_token),
        ),
        (
            "the service's own token",
            pw.app.client.get(&user).bearer_auth(&pw.service_token),
        ),
        (
            "the admin token",
            pw.app.client.get(&user).bearer_auth(&pw.app.admin_token),
        ),
        (
            "a job token",
            pw.app.client.get(&user).header("Job-Token", &revoked.token),
        ),
    ];
    for (what, request) in requests {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{what}");
        let body = response.text().await.unwrap();
        for secret in [
            &person_token,
            &revoked.token,
            &pw.service_token,
            &pw.app.admin_token,
        ] {
            assert!(
                !body.contains(secret.as_str()),
                "{what}: a token echoed in {body}"
            );
        }
    }
    pw.assert_gitlab_saw_nothing_since(mark, "calls without a live grant");
}

async fn a_grant_is_refused_on_another_instance(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let lab2 = GitLabWorld::start().await;
    assert_eq!(
        pw.app.register(&lab2.registration("lab2")).await.status(),
        201
    );
    lab2.gitlab.create_repository("group/app");
    let grant = pw.grant(&["group/app"], "read").await;
    let (corp, before) = (pw.gitlab_mark(), lab2.gitlab.seen());

    let api = pw
        .app
        .client
        .get(pw.url("/gitlab/lab2/api/v4/projects/group%2Fapp"))
        .bearer_auth(&grant.token)
        .send()
        .await
        .unwrap();
    let git = pw
        .app
        .client
        .get(pw.url("/git/lab2/group/app.git/info/refs?service=git-upload-pack"))
        .basic_auth("labgate", Some(&grant.token))
        .send()
        .await
        .unwrap();
    let unknown = pw
        .app
        .client
        .get(pw.url("/gitlab/nowhere/api/v4/user"))
        .bearer_auth(&grant.token)
        .send()
        .await
        .unwrap();

    for (what, status) in [
        ("api", api.status()),
        ("git", git.status()),
        ("unknown", unknown.status()),
    ] {
        assert!(
            [401, 403, 404].contains(&status.as_u16()),
            "a corp grant on another instance ({what}): {status}"
        );
    }
    let after = lab2.gitlab.seen();
    assert_eq!(after.api_requests.len(), before.api_requests.len());
    assert_eq!(after.git_requests.len(), before.git_requests.len());
    pw.assert_gitlab_saw_nothing_since(corp, "a grant on another instance");
}
