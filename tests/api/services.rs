//! Services and their tokens: created with a secret shown once, authenticated with the client
//! credentials grant, and refused with any token labgate did not issue to them as it is.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use diesel::prelude::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use labgate::crypto::{AUDIENCE, MasterKey, SealedColumn, Sealer, ServiceClaims, ServiceTokenKeys};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ConnectWorld, TestApp, app_with_corp, expect_problem};
use crate::support::PUBLIC_URL;
use crate::support::database::Backend;

on_both_backends!(
    services_are_created_listed_rotated_and_deleted,
    bad_service_fields_are_named,
    the_client_credentials_grant_speaks_rfc_6749,
    forged_or_stale_service_tokens_are_refused,
    a_service_sees_only_the_instances_it_may_use,
    a_service_is_read_and_its_policy_changed_in_place,
);

fn bot(name: &str) -> Value {
    json!({"name": name, "instances": ["corp"], "scopes": ["read_api"], "return_origins": ["https://bot.corp.example"]})
}

async fn services_are_created_listed_rotated_and_deleted(backend: Backend) {
    let (app, _world) = app_with_corp(backend).await;
    let created = app
        .admin(Method::POST, "/api/v1/services")
        .json(&bot("ci-bot"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["cache-control"], "no-store");
    let created: Value = created.json().await.unwrap();
    let (client_id, secret) = (
        created["client_id"].as_str().unwrap(),
        created["client_secret"].as_str().unwrap(),
    );
    assert!(
        client_id.starts_with("lgcli_") && secret.starts_with("lgsec_") && secret.len() > 40,
        "{created}"
    );
    assert_eq!(created["instances"], json!(["corp"]));
    assert_eq!(
        created["return_origins"],
        json!(["https://bot.corp.example"])
    );

    let listed = app
        .call(Method::GET, "/api/v1/services")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        listed.contains(client_id) && !listed.contains(secret),
        "{listed}"
    );
    let raw = app.db.raw_contents();
    assert!(
        !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the secret is stored in clear"
    );
    expect_problem(
        app.admin(Method::POST, "/api/v1/services")
            .json(&bot("ci-bot"))
            .send()
            .await
            .unwrap(),
        409,
        "conflict",
    )
    .await;

    let token = app.service_token(client_id, secret).await;
    let before_rotation = app
        .client
        .get(format!("{}/api/v1/instances", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(before_rotation.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let rotated: Value = app
        .call(Method::POST, "/api/v1/services/ci-bot/rotate-secret")
        .await
        .json()
        .await
        .unwrap();
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert_eq!(
        rotated["client_id"], client_id,
        "rotation keeps the client ID"
    );
    assert_eq!(
        app.request_service_token(client_id, secret).await.status(),
        401,
        "the old secret stops at once"
    );
    let after_rotation = app
        .client
        .get(format!("{}/api/v1/instances", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        after_rotation.status(),
        401,
        "tokens bought with the old secret end with it"
    );
    let token = app.service_token(client_id, new_secret).await;

    assert_eq!(
        app.call(Method::DELETE, "/api/v1/services/ci-bot")
            .await
            .status(),
        204
    );
    let after = app
        .client
        .get(format!("{}/api/v1/instances", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    expect_problem(after, 401, "unauthorized").await;
    assert_eq!(
        app.request_service_token(client_id, new_secret)
            .await
            .status(),
        401
    );
    expect_problem(
        app.call(Method::DELETE, "/api/v1/services/ci-bot").await,
        404,
        "not_found",
    )
    .await;
    expect_problem(
        app.call(Method::POST, "/api/v1/services/ci-bot/rotate-secret")
            .await,
        404,
        "not_found",
    )
    .await;
}

async fn bad_service_fields_are_named(backend: Backend) {
    let (app, _world) = app_with_corp(backend).await;
    let cases = [
        ("name", json!("CI Bot"), "lowercase letters"),
        ("instances", json!(["nowhere"]), "no instance is registered"),
        ("instances", json!([]), "at least one instance"),
        (
            "scopes",
            json!(["read_everything"]),
            "is not a GitLab scope",
        ),
        (
            "return_origins",
            json!(["https://bot.corp.example/callback"]),
            "with no path",
        ),
        (
            "return_origins",
            json!(["http://bot.corp.example"]),
            "must use https",
        ),
    ];
    for (field, value, expected) in cases {
        let mut body = bot("ci-bot");
        body[field] = value.clone();
        let problem = expect_problem(
            app.admin(Method::POST, "/api/v1/services")
                .json(&body)
                .send()
                .await
                .unwrap(),
            422,
            "validation_failed",
        )
        .await;
        let named = &problem["errors"][0];
        assert_eq!(named["field"], field, "{problem}");
        assert!(
            named["message"].as_str().unwrap().contains(expected),
            "{field}={value}: {named}"
        );
    }
    assert_eq!(
        app.get_json("/api/v1/services").await["services"],
        json!([])
    );
    let all = json!({"name": "all", "instances": "*", "scopes": "read_api"});
    assert_eq!(
        app.admin(Method::POST, "/api/v1/services")
            .json(&all)
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
}

async fn the_client_credentials_grant_speaks_rfc_6749(backend: Backend) {
    let (app, _world) = app_with_corp(backend).await;
    let (client_id, secret) = app.create_service(&bot("ci-bot")).await;

    let granted = app.request_service_token(&client_id, &secret).await;
    assert_eq!(granted.status(), 200);
    assert_eq!(granted.headers()["cache-control"], "no-store");
    let body: Value = granted.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let token = body["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::HS256);
    assert!(header.kid.is_some());
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], PUBLIC_URL);
    assert_eq!(claims["aud"], "labgate");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );

    let endpoint = format!("{}/api/v1/service-token", app.address);
    let grant =
        |form: &'static [(&'static str, &'static str)]| app.client.post(&endpoint).form(form);
    let wrong = grant(&[("grant_type", "client_credentials")])
        .basic_auth(&client_id, Some("lgsec_wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.headers()["www-authenticate"],
        "Basic realm=\"labgate\""
    );
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    let anonymous = grant(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        anonymous.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    let no_grant = grant(&[("scope", "x")])
        .basic_auth(&client_id, Some(&secret))
        .send()
        .await
        .unwrap();
    assert_eq!(no_grant.status(), 400);
    assert_eq!(
        no_grant.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    let password = grant(&[("grant_type", "password")])
        .basic_auth(&client_id, Some(&secret))
        .send()
        .await
        .unwrap();
    assert_eq!(
        password.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    let as_json = app
        .client
        .post(&endpoint)
        .basic_auth(&client_id, Some(&secret))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(as_json.status(), 400);
    assert_eq!(
        as_json.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
}

/// labgate's service-token key, read from the database and unsealed with the master key.
fn service_token_secret(app: &TestApp) -> Vec<u8> {
    use labgate::db::schema::labgate_meta::dsl::{labgate_meta, name, value};
    use secrecy::ExposeSecret;
    let key = MasterKey::load_or_create(&app.settings.security.generated_master_key_path).unwrap();
    let pool = labgate::db::connect(&app.settings.database).unwrap();
    let stored: String = labgate_meta
        .filter(name.eq("service_token_key"))
        .select(value)
        .first(&mut pool.get().unwrap())
        .unwrap();
    let field = SealedColumn::MetaValue.of("service_token_key");
    let secret = Sealer::new(&key)
        .open(field, &STANDARD.decode(stored).unwrap())
        .unwrap();
    secret.expose_secret().to_vec()
}

/// Signs claims with labgate's own service-token key, read from the database and unsealed
/// with the master key, as someone holding both could.
fn forge(app: &TestApp, change: impl FnOnce(&mut ServiceClaims)) -> String {
    use labgate::db::schema::services::dsl::{id, services};
    let pool = labgate::db::connect(&app.settings.database).unwrap();
    let service_id: String = services.select(id).first(&mut pool.get().unwrap()).unwrap();
    let now = chrono::Utc::now().timestamp();
    let mut claims = ServiceClaims {
        iss: PUBLIC_URL.into(),
        aud: AUDIENCE.into(),
        sub: service_id,
        iat: now,
        exp: now + 600,
        jti: "forged".into(),
        identity: None,
        bound_subject: None,
    };
    change(&mut claims);
    ServiceTokenKeys::from_secret(&service_token_secret(app))
        .unwrap()
        .sign(&claims)
}

async fn forged_or_stale_service_tokens_are_refused(backend: Backend) {
    let (app, _world) = app_with_corp(backend).await;
    let (client_id, secret) = app.create_service(&bot("ci-bot")).await;
    let genuine = app.service_token(&client_id, &secret).await;
    let kid = jsonwebtoken::decode_header(&genuine).unwrap().kid.unwrap();
    let payload = genuine.split('.').nth(1).unwrap().to_owned();

    let control = forge(&app, |_| {});
    let mut hs256 = Header::new(Algorithm::HS256);
    hs256.kid = Some(kid.clone());
    let other_key = EncodingKey::from_secret(&ServiceTokenKeys::generate_secret());
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&payload).unwrap()).unwrap();
    let mut eddsa = Header::new(Algorithm::EdDSA);
    eddsa.kid = Some(kid.clone());
    let ed25519 =
        ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let alg_none =
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT", "kid": kid}).to_string());
    let forged = [
        (
            "expired",
            forge(&app, |c| c.exp = chrono::Utc::now().timestamp() - 60),
        ),
        (
            "another issuer",
            forge(&app, |c| c.iss = "https://labgate.evil.example".into()),
        ),
        ("another audience", forge(&app, |c| c.aud = "gitlab".into())),
        (
            "an unknown service",
            forge(&app, |c| c.sub = "no-such-service".into()),
        ),
        (
            "another key",
            jsonwebtoken::encode(&hs256, &claims, &other_key).unwrap(),
        ),
        (
            "a public-key signature under labgate's kid",
            jsonwebtoken::encode(&eddsa, &claims, &EncodingKey::from_ed_der(ed25519.as_ref()))
                .unwrap(),
        ),
        ("alg none", format!("{alg_none}.{payload}.")),
        ("garbage", "not-a-token".to_owned()),
        // Text beyond ASCII reaches the token's check, and is refused there.
        ("a letter no token has", format!("{genuine}é")),
    ];
    let connect = |token: String| {
        app.client
            .post(format!("{}/api/v1/connect-sessions", app.address))
            .bearer_auth(token)
            .json(&json!({"instance": "corp", "subject": "u"}))
            .send()
    };
    assert_eq!(
        connect(control).await.unwrap().status(),
        201,
        "a token signed with labgate's key is accepted"
    );
    for (what, token) in forged {
        let problem =
            expect_problem(connect(token).await.unwrap(), 401, "invalid_service_token").await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .starts_with("the service"),
            "{what}: {problem}"
        );
    }
}

async fn a_service_sees_only_the_instances_it_may_use(backend: Backend) {
    let (app, world) = app_with_corp(backend).await;
    app.register(&world.registration("staging")).await;
    let (client_id, secret) = app.create_service(&bot("ci-bot")).await;
    let token = app.service_token(&client_id, &secret).await;
    let (all_id, all_secret) = app
        .create_service(&json!({"name": "all", "instances": ["*"], "scopes": ["read_api"]}))
        .await;
    let all_token = app.service_token(&all_id, &all_secret).await;
    let app = &app;
    let list = |token: String| async move {
        app.client
            .get(format!("{}/api/v1/instances", app.address))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };

    let seen = list(token).await;
    assert_eq!(
        seen,
        json!({"instances": [{"name": "corp", "base_url": world.gitlab.base_url()}]})
    );
    let names: Vec<Value> = list(all_token).await["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].clone())
        .collect();
    assert_eq!(names, [json!("corp"), json!("staging")]);
}

/// `GET` and `PATCH /api/v1/services/{name}`: the policy changes in place, keeping the
/// service's client, secret and connections; handouts follow the new policy at once.
async fn a_service_is_read_and_its_policy_changed_in_place(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    cw.connect("user-17", json!({"scopes": ["read_api"]})).await;
    let fetch = || cw.fetch(json!({"instance": "corp", "subject": "user-17"}));
    assert_eq!(fetch().await.status(), 200);
    let before = cw.app.get_json("/api/v1/services/ci-bot").await;
    assert_eq!(before["name"], "ci-bot");
    assert_eq!(before["client_id"], cw.service_client_id);
    assert!(before.get("client_secret").is_none(), "{before}");

    let patch = |body: Value| {
        cw.app
            .admin(Method::PATCH, "/api/v1/services/ci-bot")
            .json(&body)
            .send()
    };
    // A second later than the service token was issued: a policy change is no secret
    // rotation, so that token stays good.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // Narrowed below what the connection was granted: handouts stop at the next request.
    let narrowed = patch(json!({"scopes": ["read_repository"]})).await.unwrap();
    assert_eq!(narrowed.status(), 200);
    let narrowed: Value = narrowed.json().await.unwrap();
    assert_eq!(narrowed["scopes"], json!(["read_repository"]));
    assert_eq!(narrowed["instances"], before["instances"], "left alone");
    expect_problem(fetch().await, 403, "scope_not_allowed").await;

    let widened = patch(json!({"scopes": "read_api read_repository"}))
        .await
        .unwrap();
    assert_eq!(widened.status(), 200);
    assert_eq!(
        fetch().await.status(),
        200,
        "the same connection serves again"
    );
    assert_eq!(cw.app.connections().await.len(), 1);
    assert_eq!(
        cw.app.get_json("/api/v1/services/ci-bot").await["client_id"],
        cw.service_client_id,
        "the client and its secret are kept"
    );

    for (body, field) in [
        (json!({"name": "renamed"}), "name"),
        (json!({"instances": ["nowhere"]}), "instances"),
        (json!({"max_access": "admin"}), "max_access"),
        (json!({"return_origins": ["not a url"]}), "return_origins"),
    ] {
        let problem = expect_problem(patch(body).await.unwrap(), 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let unknown = cw
        .app
        .admin(Method::PATCH, "/api/v1/services/nobody")
        .json(&json!({"scopes": ["read_api"]}))
        .send()
        .await
        .unwrap();
    expect_problem(unknown, 404, "not_found").await;
    expect_problem(
        cw.app.call(Method::GET, "/api/v1/services/nobody").await,
        404,
        "not_found",
    )
    .await;
    let audit = cw.app.get_json("/api/v1/audit").await;
    let changed = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "service_changed")
        .expect("the change is audited");
    assert_eq!(changed["actor"], "admin:token", "by the admin token");
}
