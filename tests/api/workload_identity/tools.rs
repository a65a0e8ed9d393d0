//! The tools in a CI job that holds no client secret: `labgate credentials` and
//! `labgate git-credential get` exchange the job's ID token (`LABGATE_ID_TOKEN`, or
//! `LABGATE_ID_TOKEN_FILE`) at a labgate served over TLS from a private CA (`LABGATE_CA_FILE`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use labgate::config::TlsFiles;
use labgate::startup::Application;

use super::{AUDIENCE, PROJECT, ci_world};
use crate::helpers::{ConnectWorld, StopOnDrop};
use crate::support::certs::{TestCa, Validity};
use crate::support::database::Backend;
use crate::tools::{run, run_with_input};

on_both_backends!(
    labgate_credentials_exchanges_the_jobs_id_token,
    git_credential_exchanges_the_jobs_id_token,
);

/// A second labgate process on `cw`'s database, served over TLS with a certificate from a CA
/// of its own; returns its URL, the CA's PEM file, and what stops it.
async fn labgate_over_tls(cw: &ConnectWorld, dir: &Path) -> (String, PathBuf, StopOnDrop) {
    let ca = TestCa::new("Labgate Test CA");
    let cert = ca.issue(&["localhost"], Validity::Current);
    let files = TlsFiles {
        cert: dir.join("labgate.pem"),
        key: dir.join("labgate-key.pem"),
    };
    let ca_file = dir.join("labgate-ca.pem");
    std::fs::write(&files.cert, &cert.chain_pem).unwrap();
    std::fs::write(&files.key, &cert.key_pem).unwrap();
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let mut settings = cw.app.settings.clone();
    settings.server.tls = Some(files);
    let app = Application::build(settings).await.unwrap();
    let url = format!("https://localhost:{}", app.port());
    let stop = StopOnDrop(app.handle());
    actix_web::rt::spawn(app.run());
    (url, ca_file, stop)
}

/// The `labgate` binary as a CI job runs it: labgate's URL, the service's client ID, the
/// subject, `extra`, and no client secret; nothing else of labgate's.
fn in_the_job(cw: &ConnectWorld, url: &str, home: &Path, extra: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_labgate"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("LABGATE")) {
        command.env_remove(name);
    }
    command
        .env("HOME", home)
        .env("LABGATE_URL", url)
        .env("LABGATE_CLIENT_ID", &cw.service_client_id)
        .env("LABGATE_SUBJECT", super::SUBJECT);
    for (name, value) in extra {
        command.env(name, value);
    }
    command
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// The one line a failing tool prints.
fn failure(output: &Output) -> String {
    assert!(!output.status.success(), "the tool failed");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
    stderr
}

async fn labgate_credentials_exchanges_the_jobs_id_token(backend: Backend) {
    let cw = ci_world(backend).await;
    let home = tempfile::tempdir().unwrap();
    let (url, ca_file, _stop) = labgate_over_tls(&cw, home.path()).await;
    let id_token = cw.world.gitlab.ci_token(AUDIENCE, PROJECT).sign();
    let token_file = home.path().join("id_token");
    std::fs::write(&token_file, format!("{id_token}\n")).unwrap();
    let credentials = |extra: &[(&str, &str)]| {
        let mut command = in_the_job(&cw, &url, home.path(), extra);
        command.args(["credentials", "--instance", "corp"]);
        command
    };
    let ca = ("LABGATE_CA_FILE", ca_file.to_str().unwrap());
    let given = ("LABGATE_ID_TOKEN", id_token.as_str());
    let from_file = ("LABGATE_ID_TOKEN_FILE", token_file.to_str().unwrap());

    for (how, extra) in [
        ("LABGATE_ID_TOKEN", given),
        ("LABGATE_ID_TOKEN_FILE", from_file),
    ] {
        let printed = stdout(&run(credentials(&[ca, extra])).await);
        assert!(
            cw.world.gitlab.access_token_works(printed.trim()),
            "{how}: {printed}"
        );
    }

    failure(&run(credentials(&[given])).await);
    let mut for_bob = credentials(&[ca, given]);
    for_bob.env("LABGATE_SUBJECT", "bob");
    let refused = failure(&run(for_bob).await);
    assert!(refused.contains("403 subject_not_allowed"), "{refused}");
    let elsewhere = cw
        .world
        .gitlab
        .ci_token("https://elsewhere.example", PROJECT)
        .sign();
    failure(&run(credentials(&[ca, ("LABGATE_ID_TOKEN", &elsewhere)])).await);
}

async fn git_credential_exchanges_the_jobs_id_token(backend: Backend) {
    let cw = ci_world(backend).await;
    let home = tempfile::tempdir().unwrap();
    let (url, ca_file, _stop) = labgate_over_tls(&cw, home.path()).await;
    let id_token = cw.world.gitlab.ci_token(AUDIENCE, PROJECT).sign();
    let mut command = in_the_job(
        &cw,
        &url,
        home.path(),
        &[
            ("LABGATE_CA_FILE", ca_file.to_str().unwrap()),
            ("LABGATE_ID_TOKEN", &id_token),
        ],
    );
    command.args(["git-credential", "get"]);
    let request = format!(
        "protocol=https\nhost=localhost:{}\npath=gitlab/{PROJECT}.git\n\n",
        cw.world.gitlab.port
    );

    let answer = stdout(&run_with_input(command, request).await);
    let lines: Vec<&str> = answer.lines().collect();
    assert!(lines.contains(&"username=oauth2"), "{answer}");
    let password = lines
        .iter()
        .find_map(|line| line.strip_prefix("password="))
        .unwrap_or_else(|| panic!("a password: {answer}"));
    assert!(cw.world.gitlab.access_token_works(password), "{answer}");
}
