//! `labgate git-credential` asked for labgate's own `/git/` URLs: it answers with an access
//! grant for that project (`username=labgate`, `password=lgp_…`, its expiry), read unless
//! `LABGATE_GIT_ACCESS=write`; real `git` clones and pushes with it.

use std::path::Path;
use std::process::{Command, Output};

use chrono::Utc;
use reqwest::Method;
use serde_json::json;

use super::{ProxyWorld, SUBJECT, git_with, printed};
use crate::support::database::Backend;
use crate::tools::run_with_input;

on_both_backends!(
    git_credential_answers_labgate_git_urls_with_a_read_grant,
    git_access_write_gives_a_write_grant_that_pushes,
);

/// The service's environment for the `labgate` tool, and nothing else of labgate's.
fn tool_env(pw: &ProxyWorld) -> Vec<(&'static str, String)> {
    vec![
        ("LABGATE_URL", pw.app.address.clone()),
        ("LABGATE_CLIENT_ID", pw.client_id.clone()),
        ("LABGATE_CLIENT_SECRET", pw.secret.clone()),
        ("LABGATE_SUBJECT", SUBJECT.to_owned()),
    ]
}

/// `labgate git-credential get` with git's request on its standard input.
async fn ask(pw: &ProxyWorld, home: &Path, extra: &[(&str, &str)], request: String) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_labgate"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("LABGATE")) {
        command.env_remove(name);
    }
    command.env("HOME", home).args(["git-credential", "get"]);
    for (name, value) in tool_env(pw) {
        command.env(name, value);
    }
    for (name, value) in extra {
        command.env(name, value);
    }
    run_with_input(command, request).await
}

/// git's request for the repository `project` at labgate.
fn request_for(pw: &ProxyWorld, project: &str) -> String {
    let host = pw.app.address.trim_start_matches("http://");
    format!("protocol=http\nhost={host}\npath=git/corp/{project}.git\n\n")
}

fn answered(output: &Output) -> std::collections::HashMap<String, String> {
    assert!(
        output.status.success(),
        "labgate git-credential: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

/// git configured to ask `labgate git-credential` (with the path) and the tool's environment.
fn helper_env(pw: &ProxyWorld, extra: &[(&'static str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = tool_env(pw)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn helper_args() -> Vec<String> {
    vec![
        "-c".into(),
        format!(
            "credential.helper=!{} git-credential",
            env!("CARGO_BIN_EXE_labgate")
        ),
        "-c".into(),
        "credential.useHttpPath=true".into(),
    ]
}

async fn git_through_helper(
    pw: &ProxyWorld,
    dir: &Path,
    args: &[&str],
    extra: &[(&'static str, &str)],
) -> Output {
    let mut all = helper_args();
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let env = helper_env(pw, extra);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    git_with(dir, &all, &env).await
}

async fn git_credential_answers_labgate_git_urls_with_a_read_grant(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let home = tempfile::tempdir().unwrap();

    let answer = answered(&ask(&pw, home.path(), &[], request_for(&pw, "group/app")).await);

    assert_eq!(answer["username"], "labgate");
    let token = &answer["password"];
    assert!(token.starts_with("lgp_"), "{answer:?}");
    let expiry: i64 = answer["password_expiry_utc"].parse().unwrap();
    let left = expiry - Utc::now().timestamp();
    assert!((60..=3600).contains(&left), "expires in {left} s");
    let read = pw
        .api_call(Method::GET, "/projects/group%2Fapp", token)
        .await;
    assert_eq!(read.status(), 200, "a grant for group/app");
    let write = pw
        .app
        .client
        .post(pw.api("/projects/group%2Fapp/issues"))
        .bearer_auth(token)
        .json(&json!({"title": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 403, "a read grant");
    let other = pw
        .api_call(Method::GET, "/projects/group%2Fother", token)
        .await;
    assert_eq!(other.status(), 403, "only group/app");

    let url = pw.git_url(None, "group/app");
    let cloned =
        git_through_helper(&pw, home.path(), &["clone", "--quiet", &url, "work"], &[]).await;
    assert!(cloned.status.success(), "git clone: {}", printed(&cloned));
    assert_eq!(
        std::fs::read_to_string(home.path().join("work/README.md")).unwrap(),
        "hello from GitLab\n"
    );

    // A GitLab URL still gets the person's OAuth token, as before.
    let gitlab_request = format!(
        "protocol=https\nhost=localhost:{}\npath=gitlab/group/app.git\n\n",
        pw.gitlab().port
    );
    let gitlab_answer = answered(&ask(&pw, home.path(), &[], gitlab_request).await);
    assert_eq!(gitlab_answer["username"], "oauth2");
    assert!(pw.gitlab().access_token_works(&gitlab_answer["password"]));
}

async fn git_access_write_gives_a_write_grant_that_pushes(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let home = tempfile::tempdir().unwrap();
    let write = [("LABGATE_GIT_ACCESS", "write")];

    let answer = answered(&ask(&pw, home.path(), &write, request_for(&pw, "group/app")).await);
    assert_eq!(answer["username"], "labgate");
    let created = pw
        .app
        .client
        .post(pw.api("/projects/group%2Fapp/issues"))
        .bearer_auth(&answer["password"])
        .json(&json!({"title": "written"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "a write grant");

    let url = pw.git_url(None, "group/app");
    let cloned = git_through_helper(
        &pw,
        home.path(),
        &["clone", "--quiet", &url, "work"],
        &write,
    )
    .await;
    assert!(cloned.status.success(), "git clone: {}", printed(&cloned));
    let work = home.path().join("work");
    std::fs::write(work.join("BOT.md"), "pushed through labgate\n").unwrap();
    assert!(
        git_with(&work, &["add", "BOT.md"], &[])
            .await
            .status
            .success()
    );
    let committed = git_with(&work, &["commit", "--quiet", "-m", "bot"], &[]).await;
    assert!(committed.status.success(), "{}", printed(&committed));
    let pushed = git_through_helper(
        &pw,
        &work,
        &["push", "--quiet", "origin", "HEAD:main"],
        &write,
    )
    .await;
    assert!(pushed.status.success(), "git push: {}", printed(&pushed));
    let head = git_with(&work, &["rev-parse", "HEAD"], &[]).await;
    assert_eq!(
        pw.gitlab().head("group/app", "main").unwrap(),
        String::from_utf8_lossy(&head.stdout).trim()
    );

    // Without it, the helper's grant cannot push.
    std::fs::write(work.join("MORE.md"), "more\n").unwrap();
    git_with(&work, &["add", "MORE.md"], &[]).await;
    git_with(&work, &["commit", "--quiet", "-m", "more"], &[]).await;
    let refused =
        git_through_helper(&pw, &work, &["push", "--quiet", "origin", "HEAD:main"], &[]).await;
    assert!(!refused.status.success(), "a read grant pushed");
}
