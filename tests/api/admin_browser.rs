//! The admin pages in a real browser: headless Chromium driven through chromedriver. Sign in,
//! register an instance through the form against the fake GitLab, see the redirect URL, find
//! the instance in the list; a form posted without its CSRF token changes nothing.
//!
//! Needs `chromedriver` (Debian: `apt-get install chromium chromium-driver`). Without it the
//! test says it was skipped, unless LABGATE_TEST_REQUIRE_BROWSER=1, when it fails.
//! Screenshots go to `<target dir>/test-artifacts/`.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tempfile::TempDir;

use crate::helpers::{ConnectWorld, GitLabWorld, TestApp};
use crate::support::database::Backend;
use crate::support::{CLIENT_SECRET, PUBLIC_URL};

pub(crate) const WAIT: Duration = Duration::from_secs(15);

/// chromedriver on a free loopback port, in a process group of its own that is killed, with
/// the browsers it started, when this is dropped.
pub(crate) struct ChromeDriver {
    child: Child,
    port: u16,
    profile: TempDir,
}

impl ChromeDriver {
    pub(crate) fn start(binary: &Path) -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(binary)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?
        };
        let driver = Self {
            child,
            port,
            profile: tempfile::tempdir()?,
        };
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            ensure!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(driver)
    }

    pub(crate) async fn browser(&self) -> anyhow::Result<Client> {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "args": [
                    "--headless",
                    "--no-sandbox",
                    // The fake GitLab's certificate comes from a throwaway test CA.
                    "--ignore-certificate-errors",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,1700",
                    format!("--user-data-dir={}", self.profile.path().display()),
                ],
            }),
        );
        Ok(ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await?)
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The whole group: chromedriver and any browser it left behind.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| candidate.is_file())
}

/// `<target dir>/test-artifacts`, next to the `tmp` directory cargo gives integration tests.
fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Types `token` into the sign-in form the browser shows, and submits it.
pub(crate) async fn sign_in_with_token(browser: &Client, token: &str) -> anyhow::Result<()> {
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id("token"))
        .await?
        .send_keys(token)
        .await?;
    browser
        .find(Locator::Css(
            "form[action='/admin/sign-in'] button[type=submit]",
        ))
        .await?
        .click()
        .await?;
    Ok(())
}

pub(crate) async fn screenshot(browser: &Client, name: &str) -> anyhow::Result<PathBuf> {
    let path = artifacts_dir().join(name);
    std::fs::write(&path, browser.screenshot().await?)?;
    println!("screenshot: {}", path.display());
    Ok(path)
}

/// chromedriver's path; `None` (the test skips) when it is not installed, unless
/// LABGATE_TEST_REQUIRE_BROWSER=1, when the test fails instead.
pub(crate) fn chromedriver_or_skip() -> Option<PathBuf> {
    let found = find_on_path("chromedriver");
    if found.is_none() {
        assert!(
            std::env::var("LABGATE_TEST_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "chromedriver is not installed but LABGATE_TEST_REQUIRE_BROWSER=1: \
             install it with `apt-get install -y chromium chromium-driver`"
        );
        eprintln!("skipped: install chromium chromium-driver to run the browser test");
    }
    found
}

#[actix_web::test]
async fn an_administrator_registers_an_instance_in_the_browser() {
    let Some(chromedriver) = chromedriver_or_skip() else {
        return;
    };
    // `corp` registered through the API, with two people connected, one needing attention;
    // the browser registers a second instance on the same GitLab.
    let connected = ConnectWorld::start(Backend::Sqlite).await;
    for subject in ["alice", "bob"] {
        let link = connected.link(subject, json!({})).await;
        assert_eq!(connected.browser.connect(&link).await.status(), 200);
    }
    connected.app.execute_sql(
        "UPDATE connections SET status = 'reauthorization_required' WHERE subject = 'bob'",
    );
    let (app, world) = (&connected.app, &connected.world);
    let driver = ChromeDriver::start(&chromedriver).expect("chromedriver starts");
    let browser = driver.browser().await.expect("a Chromium session");

    let outcome = register_in_the_browser(&browser, app, world).await;
    if outcome.is_err() {
        let _ = screenshot(&browser, "admin-failure.png").await;
    }
    let _ = browser.close().await;
    drop(driver);
    outcome.unwrap();
}

async fn register_in_the_browser(
    browser: &Client,
    app: &TestApp,
    world: &GitLabWorld,
) -> anyhow::Result<()> {
    let base = &app.address;

    // Without a session, the admin pages send the browser to sign in.
    browser.goto(&format!("{base}/admin/instances")).await?;
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id("token"))
        .await?;
    let here = browser.current_url().await?;
    ensure!(
        here.path() == "/admin/sign-in",
        "sent to sign in, not {here}"
    );
    sign_in_with_token(browser, &app.admin_token).await?;
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::LinkText("Register an instance"))
        .await
        .context("signed in, the instance list shows")?
        .click()
        .await?;

    // The registration form shows the redirect URL before saving, and follows the name typed.
    let name = browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id("name"))
        .await?;
    let preview = browser.find(Locator::Id("redirect-url")).await?;
    ensure!(
        preview.text().await? == format!("{PUBLIC_URL}/oauth/{{name}}/callback"),
        "placeholder redirect URL: {}",
        preview.text().await?
    );
    name.send_keys("corp-staging").await?;
    let expected_redirect = format!("{PUBLIC_URL}/oauth/corp-staging/callback");
    ensure!(
        preview.text().await? == expected_redirect,
        "the redirect URL follows the name: {}",
        preview.text().await?
    );
    let registration = world.registration("corp-staging");
    for field in ["base_url", "client_id", "client_secret"] {
        browser
            .find(Locator::Id(field))
            .await?
            .send_keys(registration[field].as_str().unwrap())
            .await?;
    }
    for scope in ["openid", "read_api", "read_repository"] {
        let checkbox = browser
            .find(Locator::Id(&format!("scopes-{scope}")))
            .await?;
        ensure!(
            checkbox.prop("checked").await?.as_deref() == Some("true"),
            "{scope} is ticked by default"
        );
    }

    // Without the private CA the check fails: the message sits beside the CA field, what was
    // typed stays, the secret does not.
    submit_registration(browser).await?;
    let error = browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id("ca_pem-error"))
        .await
        .context("the failed check is shown beside the CA field")?;
    ensure!(
        error.text().await?.contains("not signed by"),
        "{}",
        error.text().await?
    );
    let value = |id: &'static str| async move {
        browser
            .find(Locator::Id(id))
            .await?
            .prop("value")
            .await
            .map(Option::unwrap_or_default)
    };
    ensure!(value("name").await? == "corp-staging");
    ensure!(value("base_url").await? == registration["base_url"].as_str().unwrap());
    ensure!(
        value("client_secret").await?.is_empty(),
        "the secret is not kept"
    );
    ensure!(!browser.source().await?.contains(CLIENT_SECRET));
    ensure!(
        browser
            .find(Locator::Id("redirect-url"))
            .await?
            .text()
            .await?
            == expected_redirect,
        "the redirect URL is rendered for the typed name"
    );
    screenshot(browser, "admin-register-error.png").await?;

    browser
        .find(Locator::Id("client_secret"))
        .await?
        .send_keys(CLIENT_SECRET)
        .await?;
    browser
        .find(Locator::Id("ca_pem"))
        .await?
        .send_keys(&world.ca.pem())
        .await?;
    let form_shot = screenshot(browser, "admin-register-form.png").await?;
    submit_registration(browser).await?;

    // Saved: the redirect URL, prominent, with the steps for GitLab.
    let shown = browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id("registered-redirect-url"))
        .await
        .context("the registered page shows the redirect URL")?;
    ensure!(shown.text().await? == expected_redirect);
    let page = browser.source().await?;
    ensure!(page.contains("Admin area → Applications"));
    ensure!(!page.contains(CLIENT_SECRET), "the secret is not shown");
    let copy = browser
        .find(Locator::Css("button[data-copy='registered-redirect-url']"))
        .await?;
    ensure!(
        copy.is_displayed().await?,
        "the script reveals the copy button"
    );
    let result_shot = screenshot(browser, "admin-registered.png").await?;

    // The list shows it, with its last check.
    browser.goto(&format!("{base}/admin/instances")).await?;
    let link = browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("a[href='/admin/instances/corp-staging']"))
        .await?;
    ensure!(link.text().await? == "corp-staging");
    ensure!(browser.source().await?.contains("class=\"badge passed\""));
    screenshot(browser, "admin-instances.png").await?;

    // A form stripped of its CSRF token, posted with the session cookie, is refused.
    browser
        .goto(&format!("{base}/admin/instances/corp-staging/delete"))
        .await?;
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("button.danger"))
        .await?;
    browser
        .execute(
            "document.querySelectorAll('input[name=csrf]').forEach(function (i) { i.remove(); });",
            vec![],
        )
        .await?;
    browser
        .find(Locator::Css("button.danger"))
        .await?
        .click()
        .await?;
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(
            "//h1[text()='This form cannot be accepted']",
        ))
        .await
        .context("the form without its CSRF token is refused")?;
    ensure!(
        app.instance_names().await == ["corp", "corp-staging"],
        "the instance was not deleted"
    );
    browser.goto(&format!("{base}/admin/instances")).await?;
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("a[href='/admin/instances/corp-staging']"))
        .await
        .context("still listed, still signed in")?;

    // A service: its secret is shown once, with a warning.
    browser.goto(&format!("{base}/admin/services")).await?;
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id("name"))
        .await?
        .send_keys("ide-backend")
        .await?;
    for id in ["instances-corp", "scopes-read_api"] {
        browser.find(Locator::Id(id)).await?.click().await?;
    }
    browser
        .find(Locator::Css(
            "form[action='/admin/services'] button[type=submit]",
        ))
        .await?
        .click()
        .await?;
    let secret = browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id("client-secret"))
        .await
        .context("the new service's secret is shown")?;
    ensure!(secret.text().await?.starts_with("lgsec_"));
    ensure!(browser.source().await?.contains("shown only this once"));
    screenshot(browser, "admin-service-created.png").await?;

    // Connections: who is connected, and who needs to connect again.
    browser.goto(&format!("{base}/admin/connections")).await?;
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(".badge.reauthorization_required"))
        .await
        .context("the connection needing attention is marked")?;
    let page = browser.source().await?;
    ensure!(page.contains("<code>alice</code>") && page.contains("<code>bob</code>"));
    screenshot(browser, "admin-connections.png").await?;

    for shot in [form_shot, result_shot] {
        ensure!(std::fs::metadata(&shot)?.len() > 1000, "{}", shot.display());
    }
    Ok(())
}

async fn submit_registration(browser: &Client) -> anyhow::Result<()> {
    browser
        .find(Locator::Css(
            "form[action='/admin/instances'] button[type=submit]",
        ))
        .await?
        .click()
        .await?;
    Ok(())
}
