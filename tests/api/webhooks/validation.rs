//! The `webhooks` field: refused parts named, the secret write-only.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_problem};
use crate::support::database::Backend;

on_both_backends!(
    refused_webhooks_are_named_by_place,
    a_webhook_secret_is_never_shown,
);

const SECRET: &str = "whsec-never-shown-0123456789";

fn service(webhooks: Value) -> Value {
    json!({"name": "ci-bot", "instances": ["*"], "scopes": ["read_api"], "webhooks": webhooks})
}

async fn refused_webhooks_are_named_by_place(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cases = [
        (
            json!([{"url": "http://hooks.corp.example/x", "secret": SECRET}]),
            "webhooks[0].url",
        ),
        (
            json!([{"url": "https://hooks.corp.example/x", "secret": SECRET},
                   {"url": "https://hooks.corp.example/y"}]),
            "webhooks[1].secret",
        ),
        (
            json!([{"url": "https://hooks.corp.example/x", "secret": "too-short-1"}]),
            "webhooks[0].secret",
        ),
        (
            json!([{"url": "https://hooks.corp.example/x", "secret": SECRET, "events": ["*"]}]),
            "webhooks[0].events",
        ),
        (json!([{"url": 7, "secret": SECRET}]), "webhooks[0].url"),
        (json!({"url": "https://x.example/"}), "webhooks"),
    ];
    for (webhooks, field) in cases {
        let response = app
            .admin(Method::POST, "/api/v1/services")
            .json(&service(webhooks.clone()))
            .send()
            .await
            .unwrap();
        let problem = expect_problem(response, 422, "validation_failed").await;
        assert_eq!(
            problem["errors"][0]["field"], field,
            "{webhooks}: {problem}"
        );
        let text = problem.to_string();
        assert!(
            !text.contains(SECRET) && !text.contains("too-short-1"),
            "{text}"
        );
    }
    // Nothing was created by a refused request; PATCH refuses alike.
    let (_, _) = app.create_service(&service(json!([]))).await;
    let response = app
        .admin(Method::PATCH, "/api/v1/services/ci-bot")
        .json(&json!({"webhooks": [{"url": "http://10.0.0.8/hook", "secret": SECRET}]}))
        .send()
        .await
        .unwrap();
    let problem = expect_problem(response, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "webhooks[0].url");
    let unknown = app
        .call(Method::GET, "/api/v1/services/nobody/deliveries")
        .await;
    assert_eq!(unknown.status(), 404);
}

async fn a_webhook_secret_is_never_shown(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let hooks = json!([
        {"url": "https://hooks.corp.example/labgate", "secret": SECRET},
        {"url": "http://[::1]:9000/hook", "secret": SECRET},
    ]);
    let response = app
        .admin(Method::POST, "/api/v1/services")
        .json(&service(hooks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created = response.text().await.unwrap();
    assert!(!created.contains(SECRET), "{created}");
    let shown = json!([
        {"url": "https://hooks.corp.example/labgate"},
        {"url": "http://[::1]:9000/hook"},
    ]);
    let one = app.get_json("/api/v1/services/ci-bot").await;
    assert_eq!(one["webhooks"], shown);
    let all = app.get_json("/api/v1/services").await;
    assert_eq!(all["services"][0]["webhooks"], shown);
    assert!(!all.to_string().contains(SECRET));
    let rotated = app
        .call(Method::POST, "/api/v1/services/ci-bot/rotate-secret")
        .await
        .text()
        .await
        .unwrap();
    assert!(!rotated.contains(SECRET));

    // PATCH replaces the list; other changes leave it alone.
    let changed: Value = app
        .admin(Method::PATCH, "/api/v1/services/ci-bot")
        .json(&json!({"webhooks": [{"url": "https://other.example/h", "secret": SECRET}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        changed["webhooks"],
        json!([{"url": "https://other.example/h"}])
    );
    let kept: Value = app
        .admin(Method::PATCH, "/api/v1/services/ci-bot")
        .json(&json!({"scopes": ["read_api", "read_repository"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(kept["webhooks"], changed["webhooks"]);
    let listed = app.get_json("/api/v1/services/ci-bot/deliveries").await;
    assert_eq!(listed, json!({"deliveries": [], "next_cursor": null}));
}
