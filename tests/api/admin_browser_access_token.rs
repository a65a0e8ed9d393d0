//! Adding an access token on the admin pages in a real browser (headless Chromium through
//! chromedriver): a token GitLab refuses is said so on the form, which keeps what was typed
//! but never the token; a good one is listed as an access token.

use anyhow::{Context as _, ensure};
use fantoccini::{Client, Locator};

use crate::admin_browser::{
    ChromeDriver, WAIT, chromedriver_or_skip, screenshot, sign_in_with_token,
};
use crate::helpers::ConnectWorld;
use crate::support::database::Backend;
use crate::support::fake_gitlab::AccessTokenSpec;

const SCOPES: [&str; 3] = ["read_api", "read_repository", "self_rotate"];

#[actix_web::test]
async fn an_administrator_adds_an_access_token_in_the_browser() {
    let Some(chromedriver) = chromedriver_or_skip() else {
        return;
    };
    let cw = ConnectWorld::start(Backend::Sqlite).await;
    let gitlab = &cw.world.gitlab;
    let dead = gitlab.issue_access_token(AccessTokenSpec::days(&SCOPES, 30));
    gitlab.revoke_access_token(&dead);
    let good = gitlab.issue_access_token(AccessTokenSpec::days(&SCOPES, 30));

    let driver = ChromeDriver::start(&chromedriver).expect("chromedriver starts");
    let browser = driver.browser().await.expect("a Chromium session");
    let outcome = add_in_the_browser(&browser, &cw, &dead, &good).await;
    if outcome.is_err() {
        let _ = screenshot(&browser, "admin-access-token-failure.png").await;
    }
    let _ = browser.close().await;
    drop(driver);
    outcome.unwrap();

    let held = cw.app.connections().await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["kind"], "access_token");
    assert_eq!(held[0]["subject"], "release-bot");
    assert!(gitlab.access_token_alive(&good));
}

async fn add_in_the_browser(
    browser: &Client,
    cw: &ConnectWorld,
    dead: &str,
    good: &str,
) -> anyhow::Result<()> {
    let base = &cw.app.address;
    browser.goto(&format!("{base}/admin/sign-in")).await?;
    sign_in_with_token(browser, &cw.app.admin_token).await?;
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::LinkText("Connections"))
        .await
        .context("signed in")?
        .click()
        .await?;
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::LinkText("Add an access token…"))
        .await
        .context("the connections page offers to add a token")?
        .click()
        .await?;

    fill(browser, "release-bot", dead).await?;
    let refusal = browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("div.panel.bad"))
        .await
        .context("the refusal is shown")?
        .text()
        .await?;
    ensure!(
        refusal.contains("GitLab refuses this access token"),
        "the refusal says why: {refusal}"
    );
    let page = browser.source().await?;
    ensure!(!page.contains(dead), "the refused form shows the token");
    let kept = browser
        .find(Locator::Id("subject"))
        .await?
        .prop("value")
        .await?;
    ensure!(
        kept.as_deref() == Some("release-bot"),
        "the subject typed is kept: {kept:?}"
    );
    screenshot(browser, "admin-access-token-refused.png").await?;

    fill(browser, "", good).await?;
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("td .badge.active"))
        .await
        .context("back on the connections list")?;
    let here = browser.current_url().await?;
    ensure!(here.path() == "/admin/connections", "landed on {here}");
    let list = browser.source().await?;
    ensure!(list.contains("access token"), "the kind is shown");
    ensure!(list.contains("release-bot"), "the subject is listed");
    ensure!(!list.contains(good), "the list shows the token");
    screenshot(browser, "admin-access-token-added.png").await?;
    Ok(())
}

/// Chooses ci-bot and corp, types the subject (unless empty: kept from before) and the token,
/// and submits.
async fn fill(browser: &Client, subject: &str, token: &str) -> anyhow::Result<()> {
    for (select, value) in [("service", "ci-bot"), ("instance", "corp")] {
        browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(&format!("select#{select}")))
            .await?
            .select_by_value(value)
            .await?;
    }
    if !subject.is_empty() {
        browser
            .find(Locator::Id("subject"))
            .await?
            .send_keys(subject)
            .await?;
    }
    browser
        .find(Locator::Id("access_token"))
        .await?
        .send_keys(token)
        .await?;
    browser
        .find(Locator::Css(
            "form[action='/admin/connections/access-token'] button[type=submit]",
        ))
        .await?
        .click()
        .await?;
    Ok(())
}
