//! The tools on a build machine: `labgate credentials` prints a working token, and real `git`
//! clones over HTTPS through `labgate git-credential` from the fake GitLab.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::json;

use crate::helpers::ConnectWorld;
use crate::support::database::Backend;

on_both_backends!(
    labgate_credentials_prints_a_working_token,
    git_clones_through_the_credential_helper
);

/// The `labgate` binary with the service's environment, and nothing else of labgate's.
fn labgate(cw: &ConnectWorld, home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_labgate"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("LABGATE")) {
        command.env_remove(name);
    }
    command
        .env("HOME", home)
        .env("LABGATE_URL", &cw.app.address)
        .env("LABGATE_CLIENT_ID", &cw.service_client_id)
        .env("LABGATE_CLIENT_SECRET", &cw.service_secret)
        .env("LABGATE_SUBJECT", "user-17");
    command
}

pub(crate) async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.stdin(Stdio::null()).output().unwrap())
        .await
        .unwrap()
}

/// Runs `command` with `input` on its standard input, as git runs a credential helper.
pub(crate) async fn run_with_input(mut command: Command, input: String) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

async fn labgate_credentials_prints_a_working_token(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    cw.connect("user-17", json!({})).await;
    let home = tempfile::tempdir().unwrap();

    let mut token = labgate(&cw, home.path());
    token.args([
        "credentials",
        "--instance",
        "corp",
        "--scopes",
        "read_repository",
    ]);
    let output = run(token).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(
        cw.world.gitlab.access_token_works(printed.trim()),
        "{printed}"
    );

    let mut env = labgate(&cw, home.path());
    env.args(["credentials", "--instance", "corp", "--format", "env"]);
    let env = String::from_utf8(run(env).await.stdout).unwrap();
    // `eval` in a shell gives the variables to the programs it starts.
    let seen = tokio::process::Command::new("sh")
        .args([
            "-c",
            &format!("{env}\nsh -c 'echo \"$GITLAB_USER $GITLAB_TOKEN\"'"),
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&seen.stdout).trim(),
        format!("alice {}", printed.trim()),
        "{env}"
    );

    let mut line = labgate(&cw, home.path());
    line.args([
        "credentials",
        "--instance",
        "corp",
        "--format",
        "git-credentials",
    ]);
    let line = String::from_utf8(run(line).await.stdout).unwrap();
    assert_eq!(
        line,
        format!(
            "https://oauth2:{}@localhost:{}/gitlab\n",
            printed.trim(),
            cw.world.gitlab.port
        )
    );

    let mut not_connected = labgate(&cw, home.path());
    not_connected.args(["credentials", "--instance", "corp", "--subject", "nobody"]);
    let output = run(not_connected).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
    assert!(stderr.contains("404 not_connected"), "{stderr}");
}

async fn git_clones_through_the_credential_helper(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    cw.connect("user-17", json!({})).await;
    let root = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    make_repository(root.path());
    cw.world.gitlab.serve_git(root.path());
    let ca_file = home.path().join("gitlab-ca.pem");
    std::fs::write(&ca_file, cw.world.ca.pem()).unwrap();
    let helper = format!("!{} git-credential", env!("CARGO_BIN_EXE_labgate"));
    let url = format!(
        "https://localhost:{}/gitlab/group/project.git",
        cw.world.gitlab.port
    );
    let clone = home.path().join("clone");

    let mut git = Command::new("git");
    for (name, value) in labgate(&cw, home.path()).get_envs() {
        match value {
            Some(value) => git.env(name, value),
            None => git.env_remove(name),
        };
    }
    git.env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_SSL_CAINFO", &ca_file)
        .args(["-c", &format!("credential.helper={helper}")])
        .args(["clone", "--quiet", &url])
        .arg(&clone);
    let output = run(git).await;

    assert!(
        output.status.success(),
        "git clone failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(clone.join("README.md")).unwrap(),
        "hello from GitLab\n"
    );

    // Without a working helper, GitLab refuses: the clone above really used labgate's token.
    let mut anonymous = Command::new("git");
    anonymous
        .env("HOME", home.path())
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_SSL_CAINFO", &ca_file)
        .args(["clone", "--quiet", &url])
        .arg(home.path().join("anonymous"));
    assert!(!run(anonymous).await.status.success());
}

/// A bare repository `group/project.git` with one commit.
fn make_repository(root: &Path) {
    let git = |dir: &Path, args: &[&str]| {
        let status = Command::new("git")
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", root)
            .args([
                "-c",
                "user.name=Alice",
                "-c",
                "user.email=alice@corp.example",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    let work = root.join("work");
    std::fs::create_dir_all(root.join("group")).unwrap();
    git(root, &["init", "--quiet", "--bare", "group/project.git"]);
    git(root, &["init", "--quiet", "work"]);
    std::fs::write(work.join("README.md"), "hello from GitLab\n").unwrap();
    git(&work, &["add", "README.md"]);
    git(&work, &["commit", "--quiet", "-m", "first"]);
    git(
        &work,
        &[
            "push",
            "--quiet",
            "../group/project.git",
            "HEAD:refs/heads/main",
        ],
    );
    git(
        root,
        &[
            "--git-dir=group/project.git",
            "symbolic-ref",
            "HEAD",
            "refs/heads/main",
        ],
    );
}
