//! `GET /api/v1/openapi.json`: a valid OpenAPI 3.1 document that covers every `/api/v1`
//! operation labgate serves, and whose shapes are what labgate answers.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{GitLabWorld, TestApp, expect_problem};
use crate::support::database::Backend;

async fn document(app: &TestApp) -> Value {
    // Public, like the API's shape: no token is sent.
    let response = app
        .client
        .get(format!("{}/api/v1/openapi.json", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[actix_web::test]
async fn the_document_is_valid_openapi_3_1_and_every_reference_resolves() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc = document(&app).await;

    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    oas3::from_json(doc.to_string()).expect("an OpenAPI 3.1 document");
    let mut references = Vec::new();
    collect_references(&doc, &mut references);
    assert!(!references.is_empty());
    for reference in references {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{reference} points outside the document"));
        assert!(
            doc.pointer(pointer).is_some(),
            "{reference} resolves to nothing"
        );
    }
    for scheme in ["admin_token", "service_token", "client_basic"] {
        assert!(
            doc["components"]["securitySchemes"][scheme].is_object(),
            "{scheme}"
        );
    }
}

fn collect_references(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                into.push(reference.clone());
            }
            map.values().for_each(|v| collect_references(v, into));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_references(v, into)),
        _ => {}
    }
}

/// The routes come from the source that registers them (every `web::resource` in the files of
/// `src/http/`, which all hang under `/api/v1`), and the methods from asking the running
/// server: a route added without documenting it fails here.
#[actix_web::test]
async fn every_operation_labgate_serves_under_api_v1_is_documented() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc = document(&app).await;
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .unwrap()
                .keys()
                .map(move |method| (path.clone(), method.to_uppercase()))
        })
        .collect();

    let mut served = BTreeSet::new();
    for path in registered_paths() {
        let concrete = path
            .replace("{name}", "nothing-here")
            .replace("{id}", "nothing-here");
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let answer = app.admin(method.clone(), &concrete).send().await.unwrap();
            let status = answer.status().as_u16();
            let code = answer.json::<Value>().await.map(|b| b["code"].clone());
            assert_ne!(
                code.as_ref().ok(),
                Some(&json!("no_such_endpoint")),
                "{method} {path}: the source registers it"
            );
            if status != 405 {
                served.insert((path.clone(), method.to_string()));
            }
        }
    }
    // The document does not describe itself.
    served.remove(&("/api/v1/openapi.json".to_owned(), "GET".to_owned()));
    assert_eq!(served, documented);
}

fn registered_paths() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut paths = vec![
        "/api/v1/openapi.json".to_owned(),
        "/api/v1/service-token".to_owned(),
    ];
    for entry in std::fs::read_dir(&dir).unwrap() {
        let source = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        for piece in source.split("web::resource(\"").skip(1) {
            let path = &piece[..piece.find('"').unwrap()];
            paths.push(format!("/api/v1{path}"));
        }
    }
    assert!(paths.len() > 10, "{paths:?}");
    paths
}

/// Spot checks that the described shapes are the ones labgate answers with.
#[actix_web::test]
async fn answers_have_the_shapes_the_document_describes() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let world = GitLabWorld::start().await;
    let doc = document(&app).await;
    // Every key answered is described, and every key described as required is answered.
    let matches = |value: &Value, schema: &str| {
        let described = &doc["components"]["schemas"][schema];
        let properties = described["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{schema}"));
        for key in value.as_object().unwrap().keys() {
            assert!(
                properties.contains_key(key),
                "{schema} does not describe {key}"
            );
        }
        for required in described["required"].as_array().into_iter().flatten() {
            let required = required.as_str().unwrap();
            assert!(
                value.get(required).is_some(),
                "{schema} requires {required}: {value}"
            );
        }
    };

    let registered: Value = app
        .register(&world.registration("corp"))
        .await
        .json()
        .await
        .unwrap();
    matches(&registered, "InstanceBody");
    matches(&registered["last_check"]["steps"][0], "CheckStep");

    let mut body = world.registration("corp");
    body["base_url"] = json!("ftp://nowhere");
    let problem = expect_problem(app.register(&body).await, 422, "validation_failed").await;
    matches(&problem, "Problem");
    matches(&problem["errors"][0], "ProblemField");

    let audit = app.get_json("/api/v1/audit").await;
    matches(&audit, "AuditList");
    matches(&audit["events"][0], "AuditEvent");
}
