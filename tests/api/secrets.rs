//! The client secret is write-only: no response shows it, no error echoes it, and the
//! database holds it only sealed.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{GitLabWorld, TestApp, expect_problem};
use crate::support::CLIENT_SECRET;
use crate::support::database::Backend;

on_both_backends!(
    the_client_secret_is_never_shown_nor_stored_in_clear,
    errors_never_repeat_a_secret
);

async fn the_client_secret_is_never_shown_nor_stored_in_clear(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = GitLabWorld::start().await;
    let client_id = world.registration("corp")["client_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut responses = vec![
        app.register(&world.registration("corp"))
            .await
            .text()
            .await
            .unwrap(),
    ];
    let rotated_secret = world.gitlab.renew_client_secret();
    for (method, path, body) in [
        (Method::GET, "/api/v1/instances", None),
        (Method::GET, "/api/v1/instances/corp", None),
        (
            Method::PATCH,
            "/api/v1/instances/corp",
            Some(json!({"client_secret": rotated_secret})),
        ),
        (Method::POST, "/api/v1/instances/corp/check", None),
        (Method::GET, "/api/v1/instances/corp", None),
    ] {
        let mut request = app.admin(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        responses.push(response.text().await.unwrap());
    }
    for text in &responses {
        let parsed: Value = serde_json::from_str(text).unwrap();
        assert!(parsed.get("client_secret").is_none(), "{text}");
        for secret in [CLIENT_SECRET, rotated_secret.as_str()] {
            assert!(
                !text.contains(secret),
                "a response shows the secret: {text}"
            );
        }
    }

    let raw = app.db.raw_contents();
    let contains = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    assert!(
        contains(client_id.as_bytes()),
        "the probe reads the stored data (client_id is stored in clear)"
    );
    for secret in [CLIENT_SECRET, rotated_secret.as_str()] {
        assert!(
            !contains(secret.as_bytes()),
            "the database holds the secret in clear"
        );
        assert!(
            !contains(hex::encode(secret).as_bytes()),
            "the database holds the secret as hex"
        );
    }
}

async fn errors_never_repeat_a_secret(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = GitLabWorld::start().await;
    let overlong = format!("gloas-{}", "s".repeat(2000));
    for bad in [
        json!(overlong),
        json!({"value": CLIENT_SECRET}),
        json!([CLIENT_SECRET]),
    ] {
        let mut body = world.registration("corp");
        body["client_secret"] = bad;
        let problem = expect_problem(app.register(&body).await, 422, "validation_failed").await;
        let text = problem.to_string();
        assert!(
            !text.contains(CLIENT_SECRET) && !text.contains(&overlong),
            "{text}"
        );
        assert_eq!(problem["errors"][0]["field"], "client_secret");
    }
}
