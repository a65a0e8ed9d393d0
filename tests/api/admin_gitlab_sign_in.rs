//! Administrators sign in with GitLab (`[admin] sign_in_instance`), through the instance's own
//! OAuth application and callback: allowed by group or by username, refused otherwise (403,
//! audited); a state is spent once and only by the browser that started the sign-in; changes
//! made in such a session are audited as `admin:{username}`; the connect flow is unchanged.

use labgate::config::{GitLabSignIn, Settings};
use reqwest::Response;
use serde_json::{Value, json};

use crate::admin_pages::csrf_of;
use crate::helpers::{ConnectWorld, location, person_browser};
use crate::support::PUBLIC_URL;
use crate::support::browser::Browser;
use crate::support::database::Backend;

on_both_backends!(
    a_member_of_an_admin_group_signs_in_and_acts_as_themselves,
    a_named_admin_user_signs_in_without_a_group,
    a_gitlab_user_who_is_no_admin_is_refused_and_audited,
    a_state_is_spent_once_and_only_by_the_browser_that_started,
    a_missing_sign_in_instance_is_said_on_the_page,
);

fn allow(groups: &[&str], users: &[&str]) -> impl FnOnce(&mut Settings) {
    let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
    let sign_in = GitLabSignIn {
        instance: "corp".to_owned(),
        groups: owned(groups),
        users: owned(users),
    };
    move |settings| settings.admin.gitlab_sign_in = Some(sign_in)
}

fn admin_url(path: &str) -> String {
    format!("{PUBLIC_URL}{path}")
}

/// To GitLab and back; returns the callback URL GitLab sends the browser to.
async fn through_gitlab(browser: &Browser) -> String {
    let start = browser.get(&admin_url("/admin/sign-in/gitlab")).await;
    assert_eq!(start.status(), 302, "{}", start.text().await.unwrap());
    let back = browser.get(&location(&start)).await;
    assert_eq!(back.status(), 302, "GitLab's authorize");
    location(&back)
}

async fn sign_in(browser: &Browser) -> Response {
    let callback = through_gitlab(browser).await;
    browser.get(&callback).await
}

async fn audit(world: &ConnectWorld) -> Vec<(String, String, String)> {
    let audit = world.app.get_json("/api/v1/audit").await;
    audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let text = |key: &str| e[key].as_str().unwrap_or_default().to_owned();
            (text("kind"), text("actor"), text("detail"))
        })
        .collect()
}

fn has(events: &[(String, String, String)], kind: &str, actor: &str) -> bool {
    events.iter().any(|(k, a, _)| k == kind && a == actor)
}

async fn a_member_of_an_admin_group_signs_in_and_acts_as_themselves(backend: Backend) {
    let world = ConnectWorld::start_with(backend, allow(&["platform"], &[])).await;
    let browser = &world.browser;
    let page = browser.get(&admin_url("/admin/sign-in")).await;
    let html = page.text().await.unwrap();
    assert!(html.contains("Sign in with GitLab"), "{html}");
    assert!(html.contains("href=\"/admin/sign-in/gitlab\""));

    let callback = through_gitlab(browser).await;
    // Through the instance's own application and redirect URL, with PKCE and a nonce.
    let asked = world
        .world
        .gitlab
        .seen()
        .authorize_queries
        .last()
        .cloned()
        .unwrap();
    assert_eq!(asked["redirect_uri"], admin_url("/oauth/corp/callback"));
    assert_eq!(asked["scope"], "openid profile");
    assert_eq!(asked["code_challenge_method"], "S256");
    assert!(asked.contains_key("nonce"));
    assert!(asked["state"].starts_with("admin."));
    assert!(callback.starts_with(&admin_url("/oauth/corp/callback?")));

    let signed_in = browser.get(&callback).await;
    assert_eq!(signed_in.status(), 200);
    assert_eq!(signed_in.headers()["referrer-policy"], "no-referrer");
    assert_eq!(signed_in.headers()["refresh"], "0; url=/admin/instances");
    let set_cookies = browser.set_cookies();
    let session = set_cookies
        .iter()
        .find(|c| c.starts_with("labgate_admin="))
        .expect("a session cookie");
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Strict"));
    assert!(session.contains("Path=/admin") && session.contains("Secure"));
    let html = signed_in.text().await.unwrap();
    assert!(html.contains("admin:alice"), "{html}");
    let returned: std::collections::HashMap<String, String> = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert!(!html.contains(&returned["code"]) && !html.contains(&returned["state"]));

    // The session works, and a change made through the pages names alice.
    let new = browser.get(&admin_url("/admin/services")).await;
    assert_eq!(new.status(), 200);
    let csrf = csrf_of(&new.text().await.unwrap());
    let created = browser
        .post_form(
            &admin_url("/admin/services"),
            &[
                ("csrf", csrf.as_str()),
                ("name", "pager"),
                ("instances", "corp"),
                ("scopes", "read_api"),
            ],
        )
        .await;
    assert_eq!(created.status(), 201);
    // The admin API, with the token, stays `admin:token`.
    let deleted = world
        .app
        .admin(reqwest::Method::DELETE, "/api/v1/services/pager")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);

    let events = audit(&world).await;
    assert!(has(&events, "admin_signed_in", "admin:alice"), "{events:?}");
    assert!(has(&events, "service_created", "admin:alice"), "{events:?}");
    assert!(has(&events, "service_deleted", "admin:token"), "{events:?}");
    assert!(!format!("{events:?}").contains(&returned["state"]));
}

async fn a_named_admin_user_signs_in_without_a_group(backend: Backend) {
    let world = ConnectWorld::start_with(backend, allow(&["sre"], &["alice"])).await;
    world.world.gitlab.behave(|b| b.groups_direct = vec![]);
    let signed_in = sign_in(&world.browser).await;
    assert_eq!(signed_in.status(), 200);
    let home = world.browser.get(&admin_url("/admin/instances")).await;
    assert_eq!(home.status(), 200);
    assert!(home.text().await.unwrap().contains("corp"));
    assert!(has(&audit(&world).await, "admin_signed_in", "admin:alice"));
}

async fn a_gitlab_user_who_is_no_admin_is_refused_and_audited(backend: Backend) {
    let world = ConnectWorld::start_with(backend, allow(&["platform"], &["alice"])).await;
    world.world.gitlab.behave(|b| {
        b.username = "bob".to_owned();
        b.groups_direct = vec!["marketing".to_owned(), "platform/sub".to_owned()];
    });
    let refused = sign_in(&world.browser).await;
    assert_eq!(refused.status(), 403);
    let html = refused.text().await.unwrap();
    assert!(
        html.contains("GitLab user @bob is not an administrator of labgate"),
        "{html}"
    );
    assert!(
        world
            .browser
            .cookie(&admin_url("/admin/instances"), "labgate_admin")
            .is_none()
    );
    assert_eq!(
        world
            .browser
            .get(&admin_url("/admin/instances"))
            .await
            .status(),
        303
    );
    let events = audit(&world).await;
    let refusal = events
        .iter()
        .find(|(kind, _, _)| kind == "admin_sign_in_refused")
        .expect("the refusal is audited");
    assert!(refusal.2.contains("@bob"), "{refusal:?}");
    assert!(!events.iter().any(|(kind, _, _)| kind == "admin_signed_in"));
}

async fn a_state_is_spent_once_and_only_by_the_browser_that_started(backend: Backend) {
    let world = ConnectWorld::start_with(backend, allow(&["platform"], &[])).await;
    // Lifted from one browser and sent to another: refused there, and spent.
    let callback = through_gitlab(&world.browser).await;
    let other = person_browser(&world.app, &world.world);
    let elsewhere = other.get(&callback).await;
    assert_eq!(elsewhere.status(), 403);
    assert!(elsewhere.text().await.unwrap().contains("another browser"));
    assert!(
        other
            .cookie(&admin_url("/admin"), "labgate_admin")
            .is_none()
    );
    let afterwards = world.browser.get(&callback).await;
    assert_eq!(afterwards.status(), 400);

    // A state used once opens nothing the second time.
    let callback = through_gitlab(&world.browser).await;
    assert_eq!(world.browser.get(&callback).await.status(), 200);
    let again = world.browser.get(&callback).await;
    assert_eq!(again.status(), 400);
    assert!(again.text().await.unwrap().contains("already used"));

    // A made-up admin state on the callback is refused, and the connect flow is untouched.
    let made_up = world
        .browser
        .get(&admin_url(
            "/oauth/corp/callback?code=x&state=admin.made-up",
        ))
        .await;
    assert_eq!(made_up.status(), 400);
    let connected = world.connect("carol", json!({})).await;
    assert!(!connected.is_empty());

    let refusals = audit(&world)
        .await
        .into_iter()
        .filter(|(kind, _, _)| kind == "admin_sign_in_refused")
        .count();
    assert_eq!(refusals, 4);
}

async fn a_missing_sign_in_instance_is_said_on_the_page(backend: Backend) {
    let world = ConnectWorld::start_with(backend, |settings| {
        settings.admin.gitlab_sign_in = Some(GitLabSignIn {
            instance: "elsewhere".to_owned(),
            groups: vec!["platform".to_owned()],
            users: vec![],
        });
    })
    .await;
    let start = world.browser.get(&admin_url("/admin/sign-in/gitlab")).await;
    assert_eq!(start.status(), 503);
    let html = start.text().await.unwrap();
    assert!(
        html.contains("&quot;elsewhere&quot;") || html.contains("\"elsewhere\""),
        "{html}"
    );
    assert!(html.contains("not registered"));
    let _: Value = world.app.get_json("/api/v1/audit").await;
}
