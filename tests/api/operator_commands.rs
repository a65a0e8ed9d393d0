//! The commands an operator runs beside `serve`: `healthcheck` (the image's HEALTHCHECK),
//! `version` and `completions`.

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
