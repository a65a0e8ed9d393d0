//! Signing in to the admin pages with GitLab in a real browser (headless Chromium through
//! chromedriver): "Sign in with GitLab", the fake GitLab's authorize endpoint, the instance's
//! callback, and on to the page asked for, signed in as alice. labgate's public URL is the
//! test server's own address here, so that the browser can follow GitLab's redirect back.

use std::net::TcpListener;

use anyhow::{Context as _, ensure};
use fantoccini::{Client, Locator};
use labgate::config::GitLabSignIn;
use serde_json::json;

use crate::admin_browser::{ChromeDriver, WAIT, chromedriver_or_skip, screenshot};
use crate::helpers::{GitLabWorld, TestApp};
use crate::support::certs::{TestCa, Validity};
use crate::support::database::Backend;
use crate::support::fake_gitlab::{Application, Discovery, FakeGitLab, default_application};

#[actix_web::test]
async fn an_administrator_signs_in_with_gitlab_in_the_browser() {
    let Some(chromedriver) = chromedriver_or_skip() else {
        return;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let app = TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.server.listen = format!("127.0.0.1:{port}").parse().unwrap();
        settings.server.public_url = base.parse().unwrap();
        settings.admin.gitlab_sign_in = Some(GitLabSignIn {
            instance: "corp".to_owned(),
            groups: vec!["platform".to_owned()],
            users: vec![],
        });
    })
    .await;
    let ca = TestCa::new("Corp Test Root CA");
    let gitlab = FakeGitLab::start_with(
        &ca.issue(&["localhost", "127.0.0.1"], Validity::Current),
        Discovery::Correct,
        Application {
            redirect_uri: format!("{base}/oauth/corp/callback"),
            ..default_application()
        },
    )
    .await;
    let world = GitLabWorld { ca, gitlab };
    let mut registration = world.registration("corp");
    registration["scopes"] = json!(default_application().scopes);
    assert_eq!(app.register(&registration).await.status(), 201);

    let driver = ChromeDriver::start(&chromedriver).expect("chromedriver starts");
    let browser = driver.browser().await.expect("a Chromium session");
    let outcome = sign_in_with_gitlab(&browser, &app.address).await;
    if outcome.is_err() {
        let _ = screenshot(&browser, "admin-gitlab-sign-in-failure.png").await;
    }
    let _ = browser.close().await;
    drop(driver);
    outcome.unwrap();

    let audit = app.get_json("/api/v1/audit").await;
    let signed_in = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "admin_signed_in")
        .expect("the sign-in is audited");
    assert_eq!(signed_in["actor"], "admin:alice", "{audit}");
}

async fn sign_in_with_gitlab(browser: &Client, base: &str) -> anyhow::Result<()> {
    browser.goto(&format!("{base}/admin/connections")).await?;
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::LinkText("Sign in with GitLab"))
        .await
        .context("the sign-in page offers GitLab")?
        .click()
        .await?;
    // GitLab's authorize endpoint (the fake consents at once), the callback, then the page
    // that was asked for.
    browser
        .wait()
        .at_most(WAIT)
        .for_url(&url::Url::parse(&format!("{base}/admin/connections"))?)
        .await
        .context("back on the page asked for")?;
    let here = browser.current_url().await?;
    ensure!(here.path() == "/admin/connections", "landed on {here}");
    browser
        .find(Locator::Css("form[action='/admin/sign-out']"))
        .await
        .context("signed in: the page offers to sign out")?;
    browser.goto(&format!("{base}/admin/audit")).await?;
    let audit = browser.source().await?;
    ensure!(audit.contains("admin:alice"), "the audit page names alice");
    screenshot(browser, "admin-gitlab-signed-in.png").await?;
    Ok(())
}
