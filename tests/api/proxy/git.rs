//! Real `git` through labgate's git proxy (`/git/{instance}/{project}.git`): clones with a read
//! grant over protocol v2 and v0, pushes only with a write grant, 401 with a Basic challenge
//! without a live grant, 403 outside it, 404 for anything but smart HTTP; GitLab sees only
//! labgate's requests with the person's OAuth token, and no token leaks.

use reqwest::Method;
use serde_json::json;

use super::{Grant, ProxyWorld, git, git_with, printed};
use crate::support::database::Backend;

on_both_backends!(
    git_clones_through_labgate_with_a_read_grant_over_v2_and_v0,
    a_push_with_a_read_grant_is_refused_before_gitlab,
    a_push_with_a_write_grant_reaches_gitlab,
    a_project_outside_the_grant_is_forbidden_and_gitlab_sees_nothing,
    git_without_a_live_grant_gets_a_basic_challenge,
    git_lfs_and_other_repository_paths_are_not_found,
    a_large_clone_streams_through_labgate,
    a_large_push_streams_through_labgate,
    the_gitlab_token_never_appears_in_git_output_or_labgate_logs,
);

/// A clone of `project` with `grant` into `dir/name`; panics unless it works.
async fn clone(pw: &ProxyWorld, grant: &Grant, project: &str, dir: &std::path::Path, name: &str) {
    let url = pw.git_url(Some(&grant.token), project);
    let output = git(dir, &["clone", "--quiet", &url, name]).await;
    assert!(output.status.success(), "git clone: {}", printed(&output));
}

/// Commits a new file in the clone at `work`; returns the commit's id.
async fn commit(work: &std::path::Path, file: &str) -> String {
    std::fs::write(work.join(file), "from the bot\n").unwrap();
    assert!(git(work, &["add", file]).await.status.success());
    let committed = git(work, &["commit", "--quiet", "-m", "from the bot"]).await;
    assert!(committed.status.success(), "{}", printed(&committed));
    let head = git(work, &["rev-parse", "HEAD"]).await;
    String::from_utf8_lossy(&head.stdout).trim().to_owned()
}

async fn git_clones_through_labgate_with_a_read_grant_over_v2_and_v0(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "read").await;
    let dir = tempfile::tempdir().unwrap();
    let url = pw.git_url(Some(&grant.token), "group/app");

    for (version, name) in [("2", "v2"), ("0", "v0")] {
        let mark = pw.gitlab_mark();
        let protocol = format!("protocol.version={version}");
        let output = git(
            dir.path(),
            &["-c", &protocol, "clone", "--quiet", &url, name],
        )
        .await;
        assert!(
            output.status.success(),
            "{name} clone: {}",
            printed(&output)
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join(name).join("README.md")).unwrap(),
            "hello from GitLab\n"
        );
        let seen = &pw.gitlab().seen().git_requests[mark.1..];
        assert!(!seen.is_empty());
        for request in seen {
            assert!(request.accepted, "GitLab refused {request:?}");
            assert_eq!(request.user.as_deref(), Some("oauth2"), "{request:?}");
            let password = request.password.as_deref().unwrap_or_default();
            assert!(
                !password.starts_with("lgp_") && pw.gitlab().access_token_works(password),
                "GitLab got the person's OAuth token"
            );
            assert!(request.path.starts_with("/group/app.git/"), "{request:?}");
            let expected = (version == "2").then(|| "version=2".to_owned());
            assert_eq!(request.git_protocol, expected, "Git-Protocol passed on");
        }
    }
}

async fn a_push_with_a_read_grant_is_refused_before_gitlab(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "read").await;
    let dir = tempfile::tempdir().unwrap();
    clone(&pw, &grant, "group/app", dir.path(), "work").await;
    let work = dir.path().join("work");
    commit(&work, "BOT.md").await;
    let before = pw.gitlab().head("group/app", "main");

    let mark = pw.gitlab_mark();
    let url = pw.git_url(Some(&grant.token), "group/app");
    let pushed = git(&work, &["push", "--quiet", &url, "HEAD:refs/heads/main"]).await;

    assert!(!pushed.status.success(), "a read grant pushed");
    assert!(printed(&pushed).contains("403"), "{}", printed(&pushed));
    let seen = &pw.gitlab().seen().git_requests[mark.1..];
    assert!(
        !seen.iter().any(|r| r.is_push()),
        "GitLab was asked to receive a pack: {seen:?}"
    );
    assert_eq!(pw.gitlab().head("group/app", "main"), before);

    let refs = pw
        .app
        .client
        .get(format!(
            "{}/info/refs?service=git-receive-pack",
            pw.git_url(None, "group/app")
        ))
        .basic_auth("labgate", Some(&grant.token))
        .send()
        .await
        .unwrap();
    assert_eq!(refs.status(), 403);
}

async fn a_push_with_a_write_grant_reaches_gitlab(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "write").await;
    let dir = tempfile::tempdir().unwrap();
    clone(&pw, &grant, "group/app", dir.path(), "work").await;
    let work = dir.path().join("work");
    let head = commit(&work, "BOT.md").await;

    let url = pw.git_url(Some(&grant.token), "group/app");
    let pushed = git(&work, &["push", "--quiet", &url, "HEAD:refs/heads/main"]).await;
    assert!(pushed.status.success(), "git push: {}", printed(&pushed));
    assert_eq!(pw.gitlab().head("group/app", "main"), Some(head.clone()));

    let branch = git(&work, &["push", "--quiet", &url, "HEAD:refs/heads/topic"]).await;
    assert!(branch.status.success(), "{}", printed(&branch));
    assert_eq!(pw.gitlab().head("group/app", "topic"), Some(head));
    let seen = pw.gitlab().seen().git_requests;
    assert!(
        seen.iter()
            .any(|r| r.is_push() && r.method == "POST" && r.status == 200)
    );
}

async fn a_project_outside_the_grant_is_forbidden_and_gitlab_sees_nothing(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "write").await;
    let dir = tempfile::tempdir().unwrap();

    let mark = pw.gitlab_mark();
    let url = pw.git_url(Some(&grant.token), "group/other");
    let listed = git(dir.path(), &["ls-remote", &url]).await;
    assert!(!listed.status.success(), "another project was listed");
    assert!(printed(&listed).contains("403"), "{}", printed(&listed));
    for project in [
        "group/other",
        "elsewhere/secret",
        "group/app/../other",
        "GROUP/OTHER",
    ] {
        for (method, rest) in [
            (Method::GET, "info/refs?service=git-upload-pack"),
            (Method::GET, "info/refs?service=git-receive-pack"),
            (Method::POST, "git-upload-pack"),
            (Method::POST, "git-receive-pack"),
        ] {
            let url = format!("{}/{rest}", pw.git_url(None, project));
            let response = pw
                .app
                .client
                .request(method.clone(), &url)
                .basic_auth("labgate", Some(&grant.token))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            assert!(status == 403 || status == 404, "{method} {url}: {status}");
        }
    }
    pw.assert_gitlab_saw_nothing_since(mark, "another project over git");
}

async fn git_without_a_live_grant_gets_a_basic_challenge(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let revoked = pw.grant(&["group/app"], "read").await;
    let deleted = pw.delete_grant_as(&pw.service_token, &revoked.id).await;
    assert_eq!(deleted.status(), 204);
    let (person_token, _) = pw
        .gitlab()
        .seed_grant(&["read_repository"], std::time::Duration::from_secs(600));
    let refs = format!(
        "{}/info/refs?service=git-upload-pack",
        pw.git_url(None, "group/app")
    );

    let mark = pw.gitlab_mark();
    let cases: [(&str, Option<(&str, &str)>); 6] = [
        ("no credentials", None),
        (
            "an unknown token",
            Some(("labgate", "lgp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")),
        ),
        ("a forged token", Some(("labgate", "lgp_"))),
        ("a revoked grant", Some(("labgate", revoked.token.as_str()))),
        ("a GitLab token", Some(("oauth2", person_token.as_str()))),
        ("an empty password", Some(("labgate", ""))),
    ];
    for (what, credentials) in cases {
        let mut request = pw.app.client.get(&refs);
        if let Some((user, password)) = credentials {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{what}");
        assert_eq!(
            response.headers()["www-authenticate"],
            "Basic realm=\"labgate\"",
            "{what}"
        );
    }
    pw.assert_gitlab_saw_nothing_since(mark, "git without a live grant");

    let dir = tempfile::tempdir().unwrap();
    let url = pw.git_url(Some(&revoked.token), "group/app");
    let listed = git(dir.path(), &["ls-remote", &url]).await;
    assert!(!listed.status.success());
    assert!(
        printed(&listed).contains("Authentication failed"),
        "git tells its user: {}",
        printed(&listed)
    );
}

async fn git_lfs_and_other_repository_paths_are_not_found(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "write").await;
    let base = pw.git_url(None, "group/app");
    let mark = pw.gitlab_mark();
    for (method, rest) in [
        (Method::POST, "info/lfs/objects/batch"),
        (Method::GET, "info/lfs/locks"),
        (Method::GET, "HEAD"),
        (Method::GET, "objects/info/packs"),
        (Method::GET, "info/refs"),
        (Method::GET, "info/refs?service=git-upload-archive"),
        (Method::GET, "config"),
    ] {
        let response = pw
            .app
            .client
            .request(method.clone(), format!("{base}/{rest}"))
            .basic_auth("labgate", Some(&grant.token))
            .header("content-type", "application/vnd.git-lfs+json")
            .json(&json!({"operation": "download", "objects": []}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        // Not a git service labgate forwards: a bad `service` may also be a bad request.
        let allowed: &[u16] = if rest.starts_with("info/refs") {
            &[400, 403, 404]
        } else {
            &[404]
        };
        assert!(allowed.contains(&status), "{method} {rest}: {status}");
    }
    pw.assert_gitlab_saw_nothing_since(mark, "LFS and dumb HTTP");
}

async fn a_large_clone_streams_through_labgate(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    pw.gitlab().create_big_repository("group/big", 24);
    let grant = pw.grant(&["group/big"], "read").await;
    let dir = tempfile::tempdir().unwrap();

    clone(&pw, &grant, "group/big", dir.path(), "big").await;

    let size = std::fs::metadata(dir.path().join("big/big.bin"))
        .unwrap()
        .len();
    assert_eq!(size, 24 << 20);
    let fsck = git(&dir.path().join("big"), &["fsck", "--no-progress"]).await;
    assert!(fsck.status.success(), "{}", printed(&fsck));
}

async fn a_large_push_streams_through_labgate(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "write").await;
    let dir = tempfile::tempdir().unwrap();
    clone(&pw, &grant, "group/app", dir.path(), "work").await;
    let work = dir.path().join("work");
    let mut big = vec![0u8; 24 << 20];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut big);
    std::fs::write(work.join("big.bin"), &big).unwrap();
    assert!(git(&work, &["add", "big.bin"]).await.status.success());
    let committed = git(&work, &["commit", "--quiet", "-m", "big"]).await;
    assert!(committed.status.success(), "{}", printed(&committed));
    let head = git(&work, &["rev-parse", "HEAD"]).await;

    let url = pw.git_url(Some(&grant.token), "group/app");
    let pushed = git(&work, &["push", "--quiet", &url, "HEAD:refs/heads/main"]).await;

    assert!(pushed.status.success(), "git push: {}", printed(&pushed));
    assert_eq!(
        pw.gitlab().head("group/app", "main").as_deref(),
        Some(String::from_utf8_lossy(&head.stdout).trim())
    );
}

async fn the_gitlab_token_never_appears_in_git_output_or_labgate_logs(backend: Backend) {
    let logs = crate::logs::captured();
    let pw = ProxyWorld::start(backend).await;
    let reader = pw.grant(&["group/app"], "read").await;
    let dir = tempfile::tempdir().unwrap();
    let url = pw.git_url(Some(&reader.token), "group/app");
    // Every header labgate answers with, as git's trace shows them.
    let trace = [("GIT_TRACE_CURL", "1"), ("GIT_TRACE_CURL_NO_DATA", "1")];
    let cloned = git_with(dir.path(), &["clone", &url, "work"], &trace).await;
    assert!(cloned.status.success(), "{}", printed(&cloned));
    let work = dir.path().join("work");
    commit(&work, "BOT.md").await;
    let refused = git_with(&work, &["push", &url, "HEAD:refs/heads/main"], &trace).await;
    assert!(!refused.status.success());
    let outside = pw.git_url(Some(&reader.token), "group/other");
    let other = git_with(dir.path(), &["ls-remote", &outside], &trace).await;
    assert!(!other.status.success());

    // And the REST side: a call that works, one refused by labgate, one GitLab refuses.
    for path in [
        "/projects/group%2Fapp",
        "/projects/group%2Fother",
        "/projects/group%2Fapp/hooks",
    ] {
        pw.api_call(Method::GET, path, &reader.token).await;
    }
    let output = [printed(&cloned), printed(&refused), printed(&other)].concat();
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        logged.contains("/git/corp/"),
        "labgate's request lines were captured"
    );
    let issued = pw.gitlab().issued_tokens();
    assert!(!issued.is_empty());
    for token in issued {
        assert!(!output.contains(&token), "a GitLab token in git's output");
        assert!(!logged.contains(&token), "a GitLab token in labgate's log");
    }
    assert!(
        !logged.contains(&reader.token),
        "the grant's token in labgate's log"
    );
}
