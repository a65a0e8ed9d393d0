//! The commands an operator runs beside `serve`: `healthcheck` (the image's HEALTHCHECK),
//! `config check`, `version` and `completions`.

use std::process::Output;

use tokio::process::Command;

use crate::helpers::TestApp;
use crate::support::database::Backend;

/// The `labgate` binary in a folder of its own, with no LABGATE variables but the given ones.
async fn labgate(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_labgate"));
    command.current_dir(dir.path()).args(args);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("LABGATE")) {
        command.env_remove(name);
    }
    command.envs(vars.iter().copied()).output().await.unwrap()
}

#[actix_web::test]
async fn healthcheck_passes_while_labgate_serves_and_fails_once_it_stops() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    // The image listens on 0.0.0.0: the check asks loopback.
    for listen in [format!("127.0.0.1:{port}"), format!("0.0.0.0:{port}")] {
        let checked = labgate(&["healthcheck"], &[("LABGATE__SERVER__LISTEN", &listen)]).await;
        assert!(
            checked.status.success(),
            "{listen}: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
    }

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nobody = closed.local_addr().unwrap().to_string();
    drop(closed);
    let checked = labgate(&["healthcheck"], &[("LABGATE__SERVER__LISTEN", &nobody)]).await;
    let stderr = String::from_utf8_lossy(&checked.stderr);
    assert!(!checked.status.success());
    assert!(stderr.contains("does not answer"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[actix_web::test]
async fn config_check_prints_the_settings_in_effect_with_secrets_masked() {
    let admin_token = "an-admin-token-of-forty-characters-000000";
    let checked = labgate(
        &["config", "check"],
        &[
            ("LABGATE__SERVER__LISTEN", "127.0.0.1:9090"),
            (
                "LABGATE__DATABASE__URL",
                "postgres://labgate:pg-s3cret@db.corp:5432/labgate?sslmode=require",
            ),
            ("LABGATE__ADMIN__TOKEN", admin_token),
            ("LABGATE__REFRESHER__CONCURRENCY", "4"),
        ],
    )
    .await;
    let stdout = String::from_utf8(checked.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&checked.stderr);
    assert!(checked.status.success(), "{stderr}");
    for expected in [
        "[server]\nlisten = \"127.0.0.1:9090\"",
        "url = \"postgres://labgate:********@db.corp:5432/labgate?sslmode=require\"",
        "[admin]\ntoken = \"********\"",
        "[refresher]\nenabled = true\ninterval_seconds = 30\nconcurrency = 4",
    ] {
        assert!(stdout.contains(expected), "{expected}:\n{stdout}");
    }
    for secret in ["pg-s3cret", admin_token] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }
    // The default public URL left behind on port 8080 while labgate listens on 9090.
    assert!(
        stderr.contains(
            "server.public_url is http://127.0.0.1:8080/ but server.listen is 127.0.0.1:9090"
        ),
        "{stderr}"
    );

    let refused = labgate(
        &["config", "check"],
        &[("LABGATE__DATABASE__POOL_SIZE", "0")],
    )
    .await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("database.pool_size (LABGATE__DATABASE__POOL_SIZE): must be at least 1"),
        "{stderr}"
    );
}

#[actix_web::test]
async fn version_names_the_release() {
    let printed = labgate(&["version"], &[]).await;
    assert!(printed.status.success());
    let text = String::from_utf8(printed.stdout).unwrap();
    assert!(
        text.starts_with(&format!("labgate {}\n", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
}

#[actix_web::test]
async fn completions_are_scripts_each_shell_accepts() {
    let bash = labgate(&["completions", "bash"], &[]).await;
    assert!(bash.status.success());
    let script = String::from_utf8(bash.stdout).unwrap();
    assert!(script.contains("git-credential") && script.contains("healthcheck"));
    // bash loads it and then completes `labgate he` to the subcommand.
    let completed = Command::new("bash")
        .args([
            "-c",
            &format!(
                "{script}\nCOMP_WORDS=(labgate hea); COMP_CWORD=1; COMP_LINE='labgate hea'; \
                 COMP_POINT=11; _labgate labgate hea labgate; echo \"${{COMPREPLY[@]}}\""
            ),
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&completed.stdout).trim(),
        "healthcheck",
        "{}",
        String::from_utf8_lossy(&completed.stderr)
    );
    for shell in ["zsh", "fish"] {
        let printed = labgate(&["completions", shell], &[]).await;
        assert!(printed.status.success(), "{shell}");
        assert!(String::from_utf8_lossy(&printed.stdout).contains("healthcheck"));
    }
    let unknown = labgate(&["completions", "cmd"], &[]).await;
    assert!(!unknown.status.success());
}
