//! Access grants: made within the service's policy for a connected subject, their token shown
//! once and stored hashed, and refused with the codes SPEC names.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use super::{ProxyWorld, SUBJECT, expect_bad_field};
use crate::helpers::expect_problem;
use crate::support::database::Backend;

on_both_backends!(
    a_grant_is_made_with_its_token_shown_once_and_stored_hashed,
    a_service_policy_defaults_to_every_project_read_only,
    grant_ttl_outside_60_to_3600_seconds_is_refused_naming_ttl,
    a_grant_names_one_to_fifty_projects,
    an_invalid_project_path_is_refused,
    a_project_outside_the_policy_is_refused,
    write_beyond_max_access_is_refused,
    a_subject_without_a_covering_connection_is_refused,
    a_grant_reaches_only_what_its_connection_covers,
    a_connection_that_may_act_for_others_is_never_used,
    narrowing_a_service_ends_the_grants_it_no_longer_covers,
);

fn body(projects: Value, access: &str) -> Value {
    json!({"instance": "corp", "subject": SUBJECT, "projects": projects, "access": access})
}

pub(super) fn seconds_from_now(at: &Value) -> i64 {
    let at = DateTime::parse_from_rfc3339(at.as_str().expect("an expires_at")).unwrap();
    (at.with_timezone(&Utc) - Utc::now()).num_seconds()
}

/// `GET /user` through the proxy with the grant's token: the cheapest proof it works.
pub(super) async fn works(pw: &ProxyWorld, token: &str) -> u16 {
    pw.api_call(Method::GET, "/user", token)
        .await
        .status()
        .as_u16()
}

async fn a_grant_is_made_with_its_token_shown_once_and_stored_hashed(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let mut request = body(json!(["group/app"]), "read");
    request["ttl"] = json!(600);
    let response = pw.request_grant(request).await;

    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let made: Value = response.json().await.unwrap();
    let token = made["token"].as_str().unwrap();
    assert!(token.starts_with("lgp_") && token.len() >= 36, "{made}");
    assert_eq!(made["instance"], "corp");
    assert_eq!(made["subject"], SUBJECT);
    assert_eq!(made["projects"], json!(["group/app"]));
    assert_eq!(made["access"], "read");
    assert_eq!(
        made["git"],
        json!({"url_prefix": "https://labgate.test/git/corp/", "username": "labgate"})
    );
    assert_eq!(
        made["api"],
        json!({"url": "https://labgate.test/gitlab/corp/api/v4"})
    );
    let left = seconds_from_now(&made["expires_at"]);
    assert!((590..=600).contains(&left), "expires in {left} s");
    let id = made["id"].as_str().unwrap();

    let listed = pw
        .app
        .call(
            Method::GET,
            "/api/v1/access-grants?instance=corp&subject=user-17",
        )
        .await;
    assert_eq!(listed.status(), 200);
    let listed = listed.text().await.unwrap();
    assert!(listed.contains(id), "the grant is listed: {listed}");
    assert!(!listed.contains(token), "the list shows the token");
    let raw = pw.app.db.raw_contents();
    let secret = &token["lgp_".len()..];
    assert!(
        !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the token is stored in clear"
    );

    let default = pw.grant(&["group/app"], "read").await;
    let left = seconds_from_now(&default.body["expires_at"]);
    assert!(
        (890..=900).contains(&left),
        "the default ttl is 900 s, not {left}"
    );
    assert_ne!(default.token, token, "every grant has its own token");
    assert_eq!(works(&pw, token).await, 200);
}

async fn a_service_policy_defaults_to_every_project_read_only(backend: Backend) {
    let pw = ProxyWorld::start_with(backend, json!({}), |_| {}).await;
    let services = pw.app.get_json("/api/v1/services").await;
    let service = &services["services"][0];
    assert_eq!(service["projects"], json!(["**"]), "{service}");
    assert_eq!(service["max_access"], "read", "{service}");

    let created = pw
        .app
        .admin(Method::POST, "/api/v1/services")
        .json(&json!({
            "name": "narrow-bot", "instances": ["corp"], "scopes": ["read_api"],
            "projects": ["group/app", "tools/**"], "max_access": "write",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["projects"], json!(["group/app", "tools/**"]));
    assert_eq!(created["max_access"], "write");

    pw.grant(&["elsewhere/secret", "deep/er/down"], "read")
        .await;
    expect_problem(
        pw.request_grant(body(json!(["group/app"]), "write")).await,
        403,
        "outside_policy",
    )
    .await;
}

async fn grant_ttl_outside_60_to_3600_seconds_is_refused_naming_ttl(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    for ttl in [json!(59), json!(3601), json!(0), json!(-5), json!("600")] {
        let mut request = body(json!(["group/app"]), "read");
        request["ttl"] = ttl;
        expect_bad_field(pw.request_grant(request).await, "ttl").await;
    }
    for ttl in [60, 3600] {
        let mut request = body(json!(["group/app"]), "read");
        request["ttl"] = json!(ttl);
        let made = pw.grant_with(request).await;
        let left = seconds_from_now(&made.body["expires_at"]);
        assert!((ttl - 10..=ttl).contains(&left), "ttl {ttl}: {left} s");
    }
}

async fn a_grant_names_one_to_fifty_projects(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let many = |n: usize| json!((1..=n).map(|i| format!("group/p{i}")).collect::<Vec<_>>());
    expect_bad_field(pw.request_grant(body(json!([]), "read")).await, "projects").await;
    expect_bad_field(pw.request_grant(body(many(51), "read")).await, "projects").await;
    let mut missing = body(json!([]), "read");
    missing.as_object_mut().unwrap().remove("projects");
    expect_bad_field(pw.request_grant(missing).await, "projects").await;
    let fifty = pw.grant_with(body(many(50), "read")).await;
    assert_eq!(fifty.body["projects"].as_array().unwrap().len(), 50);
    let mut wrong_access = body(json!(["group/app"]), "admin");
    expect_bad_field(pw.request_grant(wrong_access.clone()).await, "access").await;
    wrong_access["access"] = json!(null);
    expect_bad_field(pw.request_grant(wrong_access).await, "access").await;
}

async fn an_invalid_project_path_is_refused(backend: Backend) {
    let pw = ProxyWorld::start_with(backend, json!({"projects": ["**"]}), |_| {}).await;
    for path in [
        "",
        "app",
        "/group/app",
        "group/app/",
        "group//app",
        "group/../elsewhere/secret",
        "group/./app",
        "group/*",
        "group/**",
        "**",
        "group/%2e%2e",
        "group%2Fapp",
        "group/app?x=1",
        "group/app#x",
        "group\\app",
        "group/app;x",
        "group/ app",
        "group/app\n",
    ] {
        let refused = pw.request_grant(body(json!([path]), "read")).await;
        let status = refused.status().as_u16();
        let text = refused.text().await.unwrap();
        assert!(
            (status == 400 || status == 422) && text.contains("projects"),
            "{path:?}: {status} {text}"
        );
    }
}

async fn a_project_outside_the_policy_is_refused(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    for projects in [
        json!(["elsewhere/secret"]),
        json!(["group/app", "elsewhere/secret"]),
        json!(["group/sub/deep"]),
        json!(["groupx/app"]),
    ] {
        let problem = expect_problem(
            pw.request_grant(body(projects.clone(), "read")).await,
            403,
            "outside_policy",
        )
        .await;
        assert!(!problem.to_string().contains("lgp_"), "{problem}");
    }
}

async fn write_beyond_max_access_is_refused(backend: Backend) {
    let policy = json!({"projects": ["group/*"], "max_access": "read"});
    let pw = ProxyWorld::start_with(backend, policy, |_| {}).await;
    expect_problem(
        pw.request_grant(body(json!(["group/app"]), "write")).await,
        403,
        "outside_policy",
    )
    .await;
    pw.grant(&["group/app"], "read").await;
}

async fn a_subject_without_a_covering_connection_is_refused(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let mut nobody = body(json!(["group/app"]), "read");
    nobody["subject"] = json!("nobody");
    expect_problem(pw.request_grant(nobody).await, 404, "not_connected").await;

    pw.connect("reader", &["read_repository"]).await;
    let mut write = body(json!(["group/app"]), "write");
    write["subject"] = json!("reader");
    expect_problem(pw.request_grant(write).await, 404, "not_connected").await;
    let mut other_instance = body(json!(["group/app"]), "read");
    other_instance["instance"] = json!("elsewhere");
    let refused = pw.request_grant(other_instance).await;
    assert!(
        [403, 404].contains(&refused.status().as_u16()),
        "an unknown instance: {}",
        refused.status()
    );
}

/// A person connected for git only (`read_repository`): a read grant is made, but its git and
/// API calls are refused by labgate (no connection covers `read_api`), not by GitLab.
async fn a_grant_reaches_only_what_its_connection_covers(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    pw.connect("git-only", &["read_repository"]).await;
    let token = pw
        .grant_with(json!({
            "instance": "corp", "subject": "git-only", "projects": ["group/app"], "access": "read"
        }))
        .await
        .token;
    let url = pw.git_url(Some(&token), "group/app");

    // labgate asks GitLab's API where a path leads (a renamed project's old path leads
    // elsewhere); with no connection that may read the API, git is refused, not let through.
    let dir = tempfile::tempdir().unwrap();
    let mark = pw.gitlab_mark();
    let cloned = super::git(dir.path(), &["clone", "--quiet", &url, "refused"]).await;
    assert!(!cloned.status.success());
    let printed = super::printed(&cloned);
    assert!(printed.contains("read_api"), "{printed}");
    let api = pw
        .api_call(Method::GET, "/projects/group%2Fapp", &token)
        .await;
    expect_problem(api, 404, "not_connected").await;
    pw.assert_gitlab_saw_nothing_since(mark, "calls the connection does not cover");

    // A second connection that may read the API lets the same grant clone.
    pw.connect("git-only", &["read_api"]).await;
    let cloned = super::git(dir.path(), &["clone", "--quiet", &url, "work"]).await;
    assert!(cloned.status.success(), "{}", super::printed(&cloned));
    assert!(dir.path().join("work/README.md").exists());
}

/// A token with `sudo` acts as any user whom a request names, in its body as well as in its
/// query: labgate never forwards with one, on either door.
async fn a_connection_that_may_act_for_others_is_never_used(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    pw.connect("admin-1", &["api", "sudo"]).await;
    let token = pw
        .grant_with(json!({
            "instance": "corp", "subject": "admin-1", "projects": ["group/app"], "access": "write"
        }))
        .await
        .token;

    let mark = pw.gitlab_mark();
    let api = pw
        .api_call(Method::GET, "/projects/group%2Fapp", &token)
        .await;
    let problem = expect_problem(api, 403, "outside_grant").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("sudo"),
        "{problem}"
    );
    let dir = tempfile::tempdir().unwrap();
    let url = pw.git_url(Some(&token), "group/app");
    let cloned = super::git(dir.path(), &["clone", "--quiet", &url, "work"]).await;
    assert!(!cloned.status.success());
    assert!(
        super::printed(&cloned).contains("sudo"),
        "{}",
        super::printed(&cloned)
    );
    pw.assert_gitlab_saw_nothing_since(mark, "a grant of a sudo connection");
}

/// Narrowing a service's policy ends, at once, the live grants it no longer covers; the
/// others keep working, and new grants are judged by the new policy.
async fn narrowing_a_service_ends_the_grants_it_no_longer_covers(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let kept = pw.grant(&["group/app"], "read").await;
    let elsewhere = pw.grant(&["group/other"], "read").await;
    let writer = pw.grant(&["group/app"], "write").await;
    for grant in [&kept, &elsewhere, &writer] {
        assert_eq!(works(&pw, &grant.token).await, 200);
    }

    let changed = pw
        .app
        .admin(Method::PATCH, "/api/v1/services/ci-bot")
        .json(&json!({"projects": ["group/app"], "max_access": "read"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(changed["projects"], json!(["group/app"]));
    assert_eq!(changed["max_access"], "read");

    assert_eq!(works(&pw, &kept.token).await, 200, "still covered");
    for ended in [&elsewhere, &writer] {
        assert_eq!(works(&pw, &ended.token).await, 401, "{}", ended.body);
    }
    let live = pw.app.get_json("/api/v1/access-grants").await;
    let ids: Vec<&str> = live["access_grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [kept.id.as_str()]);
    expect_problem(
        pw.request_grant(body(json!(["group/app"]), "write")).await,
        403,
        "outside_policy",
    )
    .await;
    let audit = pw.app.get_json("/api/v1/audit").await.to_string();
    assert_eq!(
        audit
            .matches("outside the service's narrowed policy")
            .count(),
        2
    );
    assert!(audit.contains("service_changed"));
}
