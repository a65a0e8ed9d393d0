//! Projects move (rename, transfer) and GitLab keeps answering at their old paths. A grant
//! names paths; the project an old path leads to is judged, not the path: a grant for a path
//! that now leads outside it (and outside the service's policy) reaches nothing.

use reqwest::Method;

use super::{ProxyWorld, git, printed};
use crate::support::database::Backend;

on_both_backends!(an_old_path_that_leads_outside_the_grant_reaches_nothing);

async fn an_old_path_that_leads_outside_the_grant_reaches_nothing(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    pw.gitlab().create_repository("group/legacy");
    pw.gitlab().move_project("group/legacy", "elsewhere/moved");
    // Within the policy (`group/*`) by its name; GitLab serves `elsewhere/moved` there.
    let grant = pw.grant(&["group/legacy"], "write").await;
    let mark = pw.gitlab_mark();

    for path in [
        "/projects/group%2Flegacy/issues",
        "/projects/group%2Flegacy/repository/files/README.md/raw?ref=main",
    ] {
        let response = pw.api_call(Method::GET, path, &grant.token).await;
        let status = response.status().as_u16();
        assert!(status == 403 || status == 404, "{path}: {status}");
    }
    let posted = pw
        .app
        .client
        .post(pw.api("/projects/group%2Flegacy/issues"))
        .bearer_auth(&grant.token)
        .json(&serde_json::json!({"title": "through an old path"}))
        .send()
        .await
        .unwrap();
    assert!(
        [403, 404].contains(&posted.status().as_u16()),
        "{}",
        posted.status()
    );
    let dir = tempfile::tempdir().unwrap();
    let url = pw.git_url(Some(&grant.token), "group/legacy");
    let listed = git(dir.path(), &["ls-remote", &url]).await;
    assert!(!listed.status.success(), "listed: {}", printed(&listed));

    // At most lookups of the project (`%2F` or `%2f`) reached GitLab: nothing of its content,
    // no git.
    let seen = pw.gitlab().seen();
    let reached: Vec<_> = seen.api_requests[mark.0..]
        .iter()
        .filter(|r| {
            let lookup = r
                .path_and_query
                .eq_ignore_ascii_case("/gitlab/api/v4/projects/group%2Flegacy");
            !(r.method == "GET" && lookup)
        })
        .map(|r| format!("{} {}", r.method, r.path_and_query))
        .collect();
    assert!(reached.is_empty(), "GitLab received {reached:?}");
    let git_seen = &seen.git_requests[mark.1..];
    assert!(
        git_seen.is_empty(),
        "GitLab received git requests: {git_seen:?}"
    );
    assert_eq!(pw.gitlab().issues("elsewhere/moved").len(), 5);
}
