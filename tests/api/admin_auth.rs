//! The admin API answers only to the admin token.

use reqwest::Method;

use crate::helpers::{TestApp, expect_problem};
use crate::support::database::Backend;

on_both_backends!(every_admin_route_refuses_a_missing_or_wrong_token);

const ADMIN_ROUTES: [(Method, &str); 6] = [
    (Method::POST, "/api/v1/instances"),
    (Method::GET, "/api/v1/instances"),
    (Method::GET, "/api/v1/instances/corp"),
    (Method::PATCH, "/api/v1/instances/corp"),
    (Method::DELETE, "/api/v1/instances/corp"),
    (Method::POST, "/api/v1/instances/corp/check"),
];

async fn every_admin_route_refuses_a_missing_or_wrong_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (method, path) in ADMIN_ROUTES {
        let url = format!("{}{path}", app.address);
        let attempts = [
            app.client.request(method.clone(), &url),
            app.client
                .request(method.clone(), &url)
                .bearer_auth("not-the-admin-token"),
            app.client
                .request(method.clone(), &url)
                .basic_auth("admin", Some(&app.admin_token)),
            app.client
                .request(method.clone(), &url)
                .bearer_auth(format!("{}x", app.admin_token)),
        ];
        for attempt in attempts {
            let response = attempt
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.headers()["www-authenticate"],
                "Bearer realm=\"labgate\"",
                "{method} {path}"
            );
            expect_problem(response, 401, "unauthorized").await;
        }
    }
    let listed = app.call(Method::GET, "/api/v1/instances").await;
    assert_eq!(listed.status(), 200, "the admin token itself is accepted");
}

#[actix_web::test]
async fn health_is_open_and_unknown_paths_are_problems() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let health = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let wrong_method = app.call(Method::PUT, "/api/v1/instances/corp").await;
    let problem = expect_problem(wrong_method, 405, "method_not_allowed").await;
    assert_eq!(
        problem["detail"],
        "PUT is not supported at /api/v1/instances/corp"
    );
    let unknown = app
        .client
        .get(format!("{}/api/v1/nothing-here", app.address))
        .send()
        .await
        .unwrap();
    expect_problem(unknown, 404, "no_such_endpoint").await;
}
