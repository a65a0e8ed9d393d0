//! Registering, reading, changing, checking and removing GitLab instances through the admin API.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{GitLabWorld, TestApp, app_with_corp, expect_problem};
use crate::support::certs::{TestCa, Validity};
use crate::support::database::Backend;

on_both_backends!(
    registering_returns_the_redirect_url_and_discovered_endpoints,
    a_certificate_from_an_intermediate_ca_verifies_against_the_root,
    a_registered_instance_is_listed_and_shown,
    a_second_instance_with_the_same_name_is_refused,
    each_bad_field_is_named_and_nothing_is_saved,
    malformed_bodies_get_a_clear_4xx_and_nothing_is_saved,
    changes_are_checked_before_they_are_saved,
    deleting_an_instance_removes_it,
    check_reports_every_step_and_records_the_outcome,
);

const STEPS: [&str; 7] = [
    "resolve",
    "connect",
    "tls",
    "discovery",
    "issuer",
    "endpoints",
    "client",
];

fn step_statuses(steps: &Value) -> Vec<(String, String)> {
    steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn all_passed() -> Vec<(String, String)> {
    STEPS
        .iter()
        .map(|s| (s.to_string(), "passed".to_owned()))
        .collect()
}

async fn registering_returns_the_redirect_url_and_discovered_endpoints(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = GitLabWorld::start().await;
    let base = world.gitlab.base_url();
    let mut body = world.registration("corp");
    body["base_url"] = json!(format!("{base}/"));

    let response = app.register(&body).await;

    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["location"], "/api/v1/instances/corp");
    let instance: Value = response.json().await.unwrap();
    assert_eq!(
        instance["redirect_url"],
        "https://labgate.test/oauth/corp/callback"
    );
    assert_eq!(
        instance["base_url"], base,
        "sub-path kept, trailing slash dropped"
    );
    assert_eq!(
        instance["endpoints"]["authorization_endpoint"],
        format!("{base}/oauth/authorize")
    );
    assert_eq!(
        instance["endpoints"]["token_endpoint"],
        format!("{base}/oauth/token")
    );
    assert_eq!(
        instance["endpoints"]["revocation_endpoint"],
        format!("{base}/oauth/revoke")
    );
    assert_eq!(
        instance["scopes"],
        json!(["openid", "read_api", "read_repository"])
    );
    assert_eq!(instance["ca_subjects"], json!(["CN=Corp Test Root CA"]));
    assert_eq!(instance["last_check"]["ok"], true);
    assert_eq!(
        step_statuses(&instance["last_check"]["steps"]),
        all_passed()
    );
    let tls = &instance["last_check"]["steps"][2]["detail"];
    assert!(
        tls.as_str()
            .unwrap()
            .contains("verified by the configured CA CN=Corp Test Root CA"),
        "{tls}"
    );
}

async fn a_certificate_from_an_intermediate_ca_verifies_against_the_root(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = GitLabWorld::start_behind_intermediate().await;

    let response = app.register(&world.registration("corp")).await;

    let status = response.status();
    let instance: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{instance}");
    let tls = instance["last_check"]["steps"][2]["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        tls.contains("verified by the configured CA CN=Corp Test Root CA"),
        "{tls}"
    );
}

async fn a_registered_instance_is_listed_and_shown(backend: Backend) {
    let (app, world) = app_with_corp(backend).await;
    assert_eq!(
        app.register(&world.registration("corp-staging"))
            .await
            .status(),
        201
    );

    assert_eq!(app.instance_names().await, ["corp", "corp-staging"]);
    let shown = app.get_json("/api/v1/instances/corp-staging").await;
    assert_eq!(shown["name"], "corp-staging");
    assert_eq!(
        shown["redirect_url"],
        "https://labgate.test/oauth/corp-staging/callback"
    );
    assert_eq!(shown["client_id"], world.registration("x")["client_id"]);
    assert_eq!(
        shown["ca_pem"].as_str().unwrap().trim(),
        world.ca.pem().trim()
    );

    let missing = app.call(Method::GET, "/api/v1/instances/nowhere").await;
    let problem = expect_problem(missing, 404, "not_found").await;
    assert!(problem["detail"].as_str().unwrap().contains("\"nowhere\""));
}

async fn a_second_instance_with_the_same_name_is_refused(backend: Backend) {
    let (app, world) = app_with_corp(backend).await;

    let mut again = world.registration("corp");
    again["client_id"] = json!("another-application");
    let problem = expect_problem(app.register(&again).await, 409, "conflict").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("registered already")
    );

    let kept = app.get_json("/api/v1/instances/corp").await;
    assert_eq!(
        kept["client_id"],
        world.registration("corp")["client_id"],
        "the first registration is untouched"
    );
}

async fn each_bad_field_is_named_and_nothing_is_saved(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = GitLabWorld::start().await;
    let base = world.gitlab.base_url();
    let leaf = world.ca.issue(&["localhost"], Validity::Current);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "name",
            json!("Corp_GitLab"),
            "lowercase letters, digits and '-'",
        ),
        ("name", json!(""), "1 to 63 characters"),
        (
            "base_url",
            json!("http://localhost/gitlab"),
            "must start with https://",
        ),
        (
            "base_url",
            json!(format!("{base}?tab=1")),
            "must not have a query string",
        ),
        ("base_url", json!("gitlab.corp"), "is not a URL"),
        ("client_id", json!(""), "application ID"),
        ("client_secret", json!("   "), "application secret"),
        ("client_secret", json!(42), "must be a string"),
        (
            "ca_pem",
            json!("not a certificate"),
            "contains no certificate",
        ),
        ("ca_pem", json!(leaf.chain_pem), "is not a CA certificate"),
        (
            "ca_pem",
            json!(format!("{}{}", world.ca.pem(), leaf.key_pem)),
            "contains a private key",
        ),
        (
            "scopes",
            json!(["openid", "write_everything"]),
            "\"write_everything\" is not a GitLab scope",
        ),
        ("scopes", json!(["read_api"]), "must include \"openid\""),
        ("scopes", json!([]), "at least one scope"),
        ("scopes", json!(7), "must be an array of strings"),
        ("colour", json!("blue"), "is not a field of this request"),
    ];
    for (field, value, expected) in cases {
        let mut body = world.registration("corp");
        body[field] = value.clone();
        let problem = expect_problem(app.register(&body).await, 422, "validation_failed").await;
        let errors = problem["errors"].as_array().unwrap();
        let named = errors
            .iter()
            .find(|e| e["field"] == field)
            .unwrap_or_else(|| panic!("{field}: {problem}"));
        assert!(
            named["message"].as_str().unwrap().contains(expected),
            "{field}={value}: {named}"
        );
    }

    let mut missing = world.registration("corp");
    missing.as_object_mut().unwrap().remove("client_secret");
    missing["name"] = json!("BAD NAME");
    let problem = expect_problem(app.register(&missing).await, 422, "validation_failed").await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["name", "client_secret"],
        "every bad field at once: {problem}"
    );
    assert_eq!(problem["errors"][1]["message"], "is required");

    assert!(app.instance_names().await.is_empty());
}

async fn malformed_bodies_get_a_clear_4xx_and_nothing_is_saved(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = GitLabWorld::start().await;
    let post = |body: String, content_type: &str| {
        app.admin(Method::POST, "/api/v1/instances")
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    let broken = expect_problem(
        post("{\"name\": \"corp\",".into(), "application/json")
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert!(
        broken["detail"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{broken}"
    );
    let array = expect_problem(
        post("[]".into(), "application/json").await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert!(
        array["detail"]
            .as_str()
            .unwrap()
            .contains("must be a JSON object")
    );
    let form = world.registration("corp").to_string();
    expect_problem(
        post(form, "text/plain").await.unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;

    let mut huge = world.registration("corp");
    huge["ca_pem"] = json!(format!("{}\n{}", world.ca.pem(), "#".repeat(70 * 1024)));
    let too_large = expect_problem(app.register(&huge).await, 413, "payload_too_large").await;
    assert!(too_large["detail"].as_str().unwrap().contains("64 KiB"));

    assert!(app.instance_names().await.is_empty());
}

async fn changes_are_checked_before_they_are_saved(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = GitLabWorld::start().await;
    let registered: Value = app
        .register(&world.registration("corp"))
        .await
        .json()
        .await
        .unwrap();
    let patch = |body: Value| {
        app.admin(Method::PATCH, "/api/v1/instances/corp")
            .json(&body)
            .send()
    };

    // A secret GitLab does not know is refused before anything is saved.
    let unknown = patch(json!({"client_secret": "gloas-typo"})).await.unwrap();
    expect_problem(unknown, 422, "client_rejected").await;

    let renewed = world.gitlab.renew_client_secret();
    let rotated = patch(json!({"client_secret": renewed, "scopes": "openid read_user"}))
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200);
    let rotated: Value = rotated.json().await.unwrap();
    assert_eq!(rotated["scopes"], json!(["openid", "read_user"]));
    assert_ne!(rotated["updated_at"], Value::Null);

    let wrong_ca = TestCa::new("Some Other CA");
    let refused = patch(json!({"ca_pem": wrong_ca.pem()})).await.unwrap();
    let problem = expect_problem(refused, 422, "tls_unknown_ca").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("CN=Some Other CA"),
        "{problem}"
    );
    let platform = expect_problem(
        patch(json!({"ca_pem": null})).await.unwrap(),
        422,
        "tls_unknown_ca",
    )
    .await;
    assert!(
        platform["detail"]
            .as_str()
            .unwrap()
            .contains("platform's trusted CAs"),
        "{platform}"
    );

    let renamed = expect_problem(
        patch(json!({"name": "other"})).await.unwrap(),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(renamed["errors"][0]["field"], "name");

    let kept = app.get_json("/api/v1/instances/corp").await;
    assert_eq!(
        kept["ca_subjects"], registered["ca_subjects"],
        "a refused change saves nothing"
    );
    assert_eq!(kept["scopes"], json!(["openid", "read_user"]));

    let unknown = app
        .admin(Method::PATCH, "/api/v1/instances/nowhere")
        .json(&json!({"scopes": ["openid"]}))
        .send()
        .await
        .unwrap();
    expect_problem(unknown, 404, "not_found").await;
}

async fn deleting_an_instance_removes_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = GitLabWorld::start().await;
    app.register(&world.registration("corp")).await;

    let deleted = app.call(Method::DELETE, "/api/v1/instances/corp").await;
    assert_eq!(deleted.status(), 204);
    expect_problem(
        app.call(Method::GET, "/api/v1/instances/corp").await,
        404,
        "not_found",
    )
    .await;
    expect_problem(
        app.call(Method::DELETE, "/api/v1/instances/corp").await,
        404,
        "not_found",
    )
    .await;
    assert!(app.instance_names().await.is_empty());
    assert_eq!(
        app.register(&world.registration("corp")).await.status(),
        201,
        "the name is free again"
    );
}

async fn check_reports_every_step_and_records_the_outcome(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = GitLabWorld::start().await;
    app.register(&world.registration("corp")).await;
    let check = || {
        app.admin(Method::POST, "/api/v1/instances/corp/check")
            .send()
    };

    let passing: Value = check().await.unwrap().json().await.unwrap();
    assert_eq!(passing["ok"], true);
    assert_eq!(step_statuses(&passing["steps"]), all_passed());

    world.gitlab.stop().await;
    let failing = check().await.unwrap();
    assert_eq!(
        failing.status(),
        200,
        "a check that ran is a report, not an error"
    );
    let failing: Value = failing.json().await.unwrap();
    assert_eq!(failing["ok"], false);
    let statuses = step_statuses(&failing["steps"]);
    assert_eq!(statuses[0].1, "passed");
    assert_eq!(statuses[1], ("connect".to_owned(), "failed".to_owned()));
    assert_eq!(failing["steps"][1]["code"], "connection_refused");
    assert!(statuses[2..].iter().all(|(_, status)| status == "skipped"));

    let shown = app.get_json("/api/v1/instances/corp").await;
    assert_eq!(
        shown["last_check"]["ok"], false,
        "the last check is recorded"
    );
    assert_eq!(
        shown["last_check"]["steps"][1]["code"],
        "connection_refused"
    );

    let unknown = app
        .call(Method::POST, "/api/v1/instances/nowhere/check")
        .await;
    expect_problem(unknown, 404, "not_found").await;
}
