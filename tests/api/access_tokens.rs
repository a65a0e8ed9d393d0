//! Access-token connections: a GitLab access token given by an administrator (API or admin
//! pages) or by a service for its own subjects is checked with GitLab before anything is
//! stored, held sealed, handed out like an OAuth token, replaced and revoked at GitLab, and
//! never shown again.

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::admin_pages::Pages;
use crate::helpers::{ConnectWorld, expect_problem};
use crate::logs::captured;
use crate::support::database::Backend;
use crate::support::fake_gitlab::{AccessTokenSpec, TokenOwner, USER_ID, USERNAME};

on_both_backends!(
    an_access_token_is_held_once_gitlab_describes_it,
    tokens_gitlab_refuses_store_nothing,
    bad_requests_are_named_and_never_echo_the_token,
    a_service_holds_tokens_for_its_own_subjects_within_its_policy,
    giving_a_token_again_replaces_the_old_one_and_revokes_it,
    revoking_the_connection_revokes_the_token_at_gitlab,
    the_admin_pages_add_a_token_and_show_its_kind,
);

const SCOPES: [&str; 3] = ["read_api", "read_repository", "self_rotate"];

async fn give(cw: &ConnectWorld, bearer: &str, body: &Value) -> Response {
    cw.app
        .client
        .post(format!("{}/api/v1/connections", cw.app.address))
        .bearer_auth(bearer)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The admin gives `token` to `ci-bot` for `subject`; returns the connection as answered.
async fn give_as_admin(cw: &ConnectWorld, subject: &str, token: &str) -> Value {
    let body =
        json!({"service": "ci-bot", "instance": "corp", "subject": subject, "access_token": token});
    let response = give(cw, &cw.app.admin_token, &body).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    assert!(!text.contains(token), "the answer shows the token: {text}");
    serde_json::from_str(&text).unwrap()
}

async fn listed(cw: &ConnectWorld) -> Vec<Value> {
    cw.app.get_json("/api/v1/connections").await["connections"]
        .as_array()
        .unwrap()
        .clone()
}

async fn an_access_token_is_held_once_gitlab_describes_it(backend: Backend) {
    let logs = captured();
    let cw = ConnectWorld::start(backend).await;
    let gitlab = &cw.world.gitlab;
    let spec = AccessTokenSpec::days(&SCOPES, 90);
    let expires_on = spec.expires_at;
    let token = gitlab.issue_access_token(spec);
    let token_id = gitlab.access_token_info(&token).unwrap().id;

    let held = give_as_admin(&cw, "release-bot", &token).await;
    assert_eq!(held["kind"], "access_token");
    assert_eq!(held["service"], "ci-bot");
    assert_eq!(held["instance"], "corp");
    assert_eq!(held["subject"], "release-bot");
    assert_eq!(held["status"], "active");
    assert_eq!(held["scopes"], json!(SCOPES));
    assert_eq!(held["gitlab"]["user_id"], USER_ID.to_string());
    assert_eq!(held["gitlab"]["username"], USERNAME);
    assert_eq!(held["expires_at"], format!("{expires_on}T00:00:00Z"));
    assert_eq!(held["rotation_impossible"], false);
    // GitLab was asked with the token itself, and nothing rotated.
    let asked: Vec<_> = gitlab.access_token_seen().requests;
    assert!(
        asked.iter().any(|r| r.method == "GET"
            && r.path.ends_with("/personal_access_tokens/self")
            && r.token_id == Some(token_id)
            && r.status == 200),
        "{asked:?}"
    );
    assert_eq!(gitlab.access_token_rotations(), 0);

    // Listed with its kind; an OAuth connection beside it says so too.
    cw.connect("user-1", json!({})).await;
    let all = listed(&cw).await;
    let kinds: Vec<(&str, &str)> = all
        .iter()
        .map(|c| (c["subject"].as_str().unwrap(), c["kind"].as_str().unwrap()))
        .collect();
    assert!(
        kinds.contains(&("release-bot", "access_token")),
        "{kinds:?}"
    );
    assert!(kinds.contains(&("user-1", "oauth")), "{kinds:?}");

    // Handed out as any token: the service gets it, with whose it is.
    let fetched = cw
        .fetch(json!({"instance": "corp", "subject": "release-bot"}))
        .await;
    assert_eq!(fetched.status(), 200);
    let fetched: Value = fetched.json().await.unwrap();
    assert_eq!(fetched["access_token"], token);
    assert_eq!(fetched["connection_id"], held["id"]);
    assert_eq!(fetched["gitlab"]["username"], USERNAME);
    assert!(gitlab.access_token_alive(&token));

    // Audited by who gave it, never with the token.
    let audit = cw.app.get_json("/api/v1/audit?limit=20").await;
    let created = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "connection_created" && e["subject"] == "release-bot")
        .unwrap_or_else(|| panic!("no connection_created event: {audit}"));
    assert_eq!(created["actor"], "admin:token");
    assert!(!audit.to_string().contains(&token));

    // Never in clear at rest, nor in a log line.
    let raw = cw.app.db.raw_contents();
    let contains = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"release-bot"), "the probe reads the stored data");
    assert!(!contains(token.as_bytes()), "the database holds the token");
    assert!(!contains(hex::encode(&token).as_bytes()));
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(!logged.contains(&token), "a log line holds the token");
}

async fn tokens_gitlab_refuses_store_nothing(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    let gitlab = &cw.world.gitlab;
    let revoked = gitlab.issue_access_token(AccessTokenSpec::days(&SCOPES, 30));
    gitlab.revoke_access_token(&revoked);
    let expired = gitlab.issue_access_token(AccessTokenSpec::days(&SCOPES, 0));
    let unknown = "glpat-ThisTokenIsNotKnown1".to_owned();
    // Refused with `saying` in the detail, never repeating the token.
    let refused = |token: String, saying: &'static str| {
        let cw = &cw;
        async move {
            let body = json!({"service": "ci-bot", "instance": "corp", "subject": "bot", "access_token": token});
            let response = give(cw, &cw.app.admin_token, &body).await;
            let problem = expect_problem(response, 422, "token_rejected").await;
            let detail = problem["detail"].as_str().unwrap();
            assert!(detail.contains(saying), "{problem}");
            assert!(!problem.to_string().contains(&token), "{problem}");
        }
    };
    for token in [revoked, expired, unknown] {
        refused(token, "nothing was stored").await;
    }
    assert!(listed(&cw).await.is_empty());
    // An OAuth token is not an access token: GitLab says so, labgate repeats it.
    cw.connect("user-1", json!({})).await;
    refused(gitlab.issued_tokens()[0].clone(), "not an access token").await;
    assert_eq!(listed(&cw).await.len(), 1, "only the OAuth connection");
    assert_eq!(gitlab.access_token_rotations(), 0);
}

async fn bad_requests_are_named_and_never_echo_the_token(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    let admin = cw.app.admin_token.clone();
    let spaced = "glpat-with a space-and-more";
    let refused = |body: Value| {
        let cw = &cw;
        let admin = admin.clone();
        async move { give(cw, &admin, &body).await }
    };

    let problem = expect_problem(
        refused(json!({"instance": "corp", "subject": "bot"})).await,
        422,
        "validation_failed",
    )
    .await;
    let named = problem.to_string();
    for field in ["service", "access_token"] {
        assert!(named.contains(field), "{field} not named: {problem}");
    }
    let problem = expect_problem(
        refused(json!({"service": "ci-bot", "instance": "corp", "subject": "bot", "access_token": spaced}))
            .await,
        422,
        "validation_failed",
    )
    .await;
    assert!(problem.to_string().contains("access_token"), "{problem}");
    assert!(!problem.to_string().contains(spaced), "{problem}");
    let problem = expect_problem(
        refused(json!({"service": "ci-bot", "instance": "Not A Name", "subject": "", "access_token": "glpat-x"}))
            .await,
        422,
        "validation_failed",
    )
    .await;
    for field in ["instance", "subject"] {
        assert!(problem.to_string().contains(field), "{problem}");
    }
    let problem = expect_problem(
        refused(
            json!({"service": "ci-bot", "instance": "corp", "subject": "bot", "access_token": 7}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert!(problem.to_string().contains("access_token"), "{problem}");
    let unknown_field = refused(json!({"service": "ci-bot", "instance": "corp", "subject": "bot", "access_token": "glpat-x", "scopes": ["api"]})).await;
    assert!(unknown_field.status().is_client_error());
    assert!(unknown_field.text().await.unwrap().contains("scopes"));
    let not_json = cw
        .app
        .admin(Method::POST, "/api/v1/connections")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let token = cw
        .world
        .gitlab
        .issue_access_token(AccessTokenSpec::days(&SCOPES, 30));
    let no_service = refused(
        json!({"service": "nobody", "instance": "corp", "subject": "bot", "access_token": token}),
    )
    .await;
    expect_problem(no_service, 404, "not_found").await;
    assert!(listed(&cw).await.is_empty());
    // Nothing was asked of GitLab for a request refused on its face.
    assert!(cw.world.gitlab.access_token_seen().requests.is_empty());
}

async fn a_service_holds_tokens_for_its_own_subjects_within_its_policy(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    let gitlab = &cw.world.gitlab;
    let bot = TokenOwner::bot(77, "project_17_bot_3f2a", "platform/app");
    let token = gitlab.issue_access_token(AccessTokenSpec::days(&SCOPES, 60).owner(bot));
    let service = cw.service_token.clone();

    let response = give(
        &cw,
        &service,
        &json!({"instance": "corp", "subject": "bot-1", "access_token": token}),
    )
    .await;
    let status = response.status();
    let held: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{held}");
    assert_eq!(held["service"], "ci-bot");
    assert_eq!(held["gitlab"]["username"], "project_17_bot_3f2a");
    assert_eq!(held["gitlab"]["user_id"], "77");
    let audit = cw.app.get_json("/api/v1/audit?limit=5").await;
    assert!(
        audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "connection_created" && e["actor"] == "service:ci-bot"),
        "{audit}"
    );

    // A git-only token may not read its user: held with the user's id, the username unknown.
    let git_only = TokenOwner::bot(78, "project_18_bot_9c1d", "platform/app");
    let git_token = gitlab.issue_access_token(
        AccessTokenSpec::days(&["read_repository", "self_rotate"], 60).owner(git_only),
    );
    let response = give(
        &cw,
        &service,
        &json!({"instance": "corp", "subject": "git-bot", "access_token": git_token}),
    )
    .await;
    let status = response.status();
    let held: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{held}");
    assert_eq!(held["gitlab"]["user_id"], "78");
    assert_eq!(held["gitlab"]["username"], "");
    assert_eq!(held["scopes"], json!(["read_repository", "self_rotate"]));

    // A service gives tokens for itself only.
    let response = give(
        &cw,
        &service,
        &json!({"service": "ci-bot", "instance": "corp", "subject": "bot-2", "access_token": token}),
    )
    .await;
    let problem = expect_problem(response, 422, "validation_failed").await;
    assert!(problem.to_string().contains("service"), "{problem}");
    // Within its policy: its instances, and scopes it may receive (`api` is beyond ci-bot's).
    let broad = gitlab.issue_access_token(AccessTokenSpec::days(&["api"], 60));
    let response = give(
        &cw,
        &service,
        &json!({"instance": "corp", "subject": "bot-3", "access_token": broad}),
    )
    .await;
    let problem = expect_problem(response, 403, "scope_not_allowed").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("api"),
        "{problem}"
    );
    let response = give(
        &cw,
        &service,
        &json!({"instance": "elsewhere", "subject": "bot-4", "access_token": token}),
    )
    .await;
    expect_problem(response, 403, "instance_not_allowed").await;
    // Neither a stranger nor no one.
    let response = give(
        &cw,
        "not-a-token",
        &json!({"instance": "corp", "subject": "bot-5", "access_token": token}),
    )
    .await;
    assert_eq!(response.status(), 401);
    let mut subjects: Vec<String> = listed(&cw)
        .await
        .iter()
        .map(|c| c["subject"].as_str().unwrap().to_owned())
        .collect();
    subjects.sort();
    assert_eq!(subjects, ["bot-1", "git-bot"]);
}

async fn giving_a_token_again_replaces_the_old_one_and_revokes_it(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    let gitlab = &cw.world.gitlab;
    let first = gitlab.issue_access_token(AccessTokenSpec::days(&SCOPES, 30));
    let second = gitlab.issue_access_token(AccessTokenSpec::days(&SCOPES, 60));
    let before = give_as_admin(&cw, "release-bot", &first).await;
    let after = give_as_admin(&cw, "release-bot", &second).await;
    assert_eq!(
        after["id"], before["id"],
        "the same connection, its token replaced"
    );
    assert_ne!(after["expires_at"], before["expires_at"]);
    assert!(
        !gitlab.access_token_alive(&first),
        "the replaced token lives on"
    );
    assert!(gitlab.access_token_alive(&second));
    let fetched = cw
        .token(json!({"instance": "corp", "subject": "release-bot"}))
        .await;
    assert_eq!(fetched, second);
    assert_eq!(listed(&cw).await.len(), 1);
    // One token, one connection: a second holder would rotate it too, and GitLab revokes a
    // family whose token is rotated twice.
    let body = json!({"service": "ci-bot", "instance": "corp", "subject": "other-bot", "access_token": second});
    let response = give(&cw, &cw.app.admin_token, &body).await;
    let problem = expect_problem(response, 409, "conflict").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains(after["id"].as_str().unwrap()),
        "{problem}"
    );
    assert!(!problem.to_string().contains(&second));
    assert_eq!(listed(&cw).await.len(), 1);
    let audit = cw.app.get_json("/api/v1/audit?limit=5").await;
    let replaced = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "connection_reconnected");
    assert!(
        replaced.is_some_and(|e| e["detail"].as_str().unwrap().contains("access token")),
        "{audit}"
    );
}

async fn revoking_the_connection_revokes_the_token_at_gitlab(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    let token = cw
        .world
        .gitlab
        .issue_access_token(AccessTokenSpec::days(&SCOPES, 30));
    let held = give_as_admin(&cw, "release-bot", &token).await;
    let id = held["id"].as_str().unwrap();
    let revoked = cw
        .app
        .call(Method::DELETE, &format!("/api/v1/connections/{id}"))
        .await;
    assert_eq!(revoked.status(), 204);
    assert!(!cw.world.gitlab.access_token_alive(&token));
    let seen = cw.world.gitlab.access_token_seen().requests;
    assert!(
        seen.iter()
            .any(|r| r.method == "DELETE" && r.path.ends_with("/personal_access_tokens/self")),
        "{seen:?}"
    );
    let fetched = cw
        .fetch(json!({"instance": "corp", "subject": "release-bot"}))
        .await;
    assert!(fetched.status().is_client_error(), "{}", fetched.status());
    assert_eq!(cw.connection(id).await["status"], "revoked");
}

async fn the_admin_pages_add_a_token_and_show_its_kind(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    let gitlab = &cw.world.gitlab;
    let pages = Pages::signed_in(&cw.app).await;
    let path = "/admin/connections/access-token";
    assert!(pages.html("/admin/connections").await.contains(path));
    let form = pages.html(path).await;
    for shown in [
        "ci-bot",
        "corp",
        "name=\"access_token\"",
        "type=\"password\"",
    ] {
        assert!(form.contains(shown), "{shown}: {form}");
    }

    // GitLab refuses it: said on the form, which never shows the token again.
    let dead = gitlab.issue_access_token(AccessTokenSpec::days(&SCOPES, 30));
    gitlab.revoke_access_token(&dead);
    let csrf = pages.csrf(path).await;
    let fields = |token: &str| {
        [
            ("csrf", csrf.clone()),
            ("service", "ci-bot".to_owned()),
            ("instance", "corp".to_owned()),
            ("subject", "page-bot".to_owned()),
            ("access_token", token.to_owned()),
        ]
    };
    let posted = |token: String| {
        let fields = fields(&token);
        let pages = &pages;
        async move {
            let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            pages.post(path, &pairs).await
        }
    };
    let refused = posted(dead.clone()).await;
    assert_eq!(refused.status(), 422);
    let page = refused.text().await.unwrap();
    assert!(page.contains("GitLab refuses this access token"), "{page}");
    assert!(page.contains("Nothing was saved"), "{page}");
    assert!(page.contains("page-bot"), "what was typed is kept: {page}");
    assert!(!page.contains(&dead), "the page shows the token");

    // A token that cannot rotate itself: held, shown as such.
    let fixed = gitlab.issue_access_token(AccessTokenSpec::days(&["read_api"], 30));
    let added = posted(fixed.clone()).await;
    assert_eq!(added.status(), 303);
    let list = pages.html("/admin/connections").await;
    assert!(list.contains("access token"), "{list}");
    assert!(list.contains("cannot rotate"), "{list}");
    assert!(list.contains("page-bot"), "{list}");
    assert!(!list.contains(&fixed));
    let held = listed(&cw).await;
    assert_eq!(held[0]["rotation_impossible"], true);
    let audit = cw.app.get_json("/api/v1/audit?limit=5").await;
    assert_eq!(audit["events"][0]["actor"], "admin:token", "{audit}");
}
