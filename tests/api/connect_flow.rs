//! A person connects their GitLab account through a service's link: the happy path end to
//! end, and every forged, replayed or redirected variant refused.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    ConnectWorld, RETURN_ORIGIN, expect_problem, location, person_browser, result_page,
};
use crate::support::PUBLIC_URL;
use crate::support::database::Backend;
use crate::support::fake_gitlab::{IdTokenFault, USER_ID, USERNAME};

on_both_backends!(
    a_person_connects_and_labgate_holds_a_validated_sealed_connection,
    the_authorize_request_is_explicit_and_bound_to_pkce_state_and_nonce,
    a_return_to_gets_the_outcome,
    a_denial_is_a_clear_page_or_a_redirect,
    links_and_states_work_once,
    a_tampered_state_is_refused_without_spending_the_real_one,
    expired_links_and_slow_sign_ins_are_refused,
    a_callback_on_another_instances_path_is_refused,
    an_iss_parameter_from_another_issuer_is_refused,
    every_bad_id_token_is_refused,
    return_to_must_be_one_of_the_services_origins,
    scopes_and_instances_stay_within_policy,
    connecting_again_replaces_the_grant_and_revokes_the_old_one,
    a_token_response_without_expires_in_expires_two_hours_after_created_at,
    an_id_token_without_a_username_is_completed_from_userinfo,
    subjects_belong_to_their_service,
    link_previews_do_not_spend_links,
    a_callback_in_another_browser_is_refused,
    the_result_page_shows_the_result_again_without_code_or_state,
    the_confirmation_names_the_gitlab_and_what_each_scope_allows,
    cancelling_spends_the_link_and_tells_the_service,
);

fn page_text(body: &str) -> String {
    body.replace("&#39;", "'")
}

async fn a_person_connects_and_labgate_holds_a_validated_sealed_connection(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    let link = cw
        .app
        .create_connect_link(
            &cw.service_token,
            &json!({"instance": "corp", "subject": "user-17"}),
        )
        .await;
    assert_eq!(link.status(), 201);
    let link: Value = link.json().await.unwrap();
    assert!(
        link["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{PUBLIC_URL}/connect/")),
        "{link}"
    );
    let expires =
        chrono::DateTime::parse_from_rfc3339(link["expires_at"].as_str().unwrap()).unwrap();
    let minutes = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
    assert!(
        (590..=600).contains(&minutes),
        "a link lives 10 minutes, not {minutes} s"
    );

    let page = cw.browser.connect(link["url"].as_str().unwrap()).await;

    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    assert_eq!(page.headers()["cache-control"], "no-store");
    let text = page_text(&page.text().await.unwrap());
    assert!(text.contains("Connected as @alice on corp"), "{text}");
    assert!(text.contains("You can close this tab"));

    let connections = cw.app.connections().await;
    assert_eq!(connections.len(), 1);
    let connection = &connections[0];
    assert_eq!(connection["instance"], "corp");
    assert_eq!(connection["subject"], "user-17");
    assert_eq!(connection["status"], "active");
    assert_eq!(
        connection["gitlab"],
        json!({"user_id": USER_ID.to_string(), "username": USERNAME})
    );
    assert_eq!(
        connection["scopes"],
        json!(["openid", "read_api", "read_repository", "write_repository"])
    );
    let expires =
        chrono::DateTime::parse_from_rfc3339(connection["expires_at"].as_str().unwrap()).unwrap();
    let lifetime = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
    assert!(
        (7190..=7200).contains(&lifetime),
        "GitLab's 2-hour expiry is kept: {lifetime} s"
    );
    assert_eq!(cw.world.gitlab.seen().code_exchanges, 1);

    let issued = cw.world.gitlab.issued_tokens();
    assert_eq!(issued.len(), 2);
    let listed = serde_json::to_string(&connections).unwrap();
    let raw = cw.app.db.raw_contents();
    for token in &issued {
        assert!(
            !listed.contains(token.as_str()),
            "the admin API shows a token"
        );
        assert!(
            !raw.windows(token.len()).any(|w| w == token.as_bytes()),
            "a token is stored in clear"
        );
    }
}

async fn the_authorize_request_is_explicit_and_bound_to_pkce_state_and_nonce(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    let link = cw.link("user-17", json!({"scopes": ["read_api"]})).await;
    cw.browser.consent(&link).await;

    let query = cw.world.gitlab.seen().authorize_queries.pop().unwrap();
    assert_eq!(query["response_type"], "code");
    assert_eq!(
        query["redirect_uri"],
        format!("{PUBLIC_URL}/oauth/corp/callback")
    );
    assert_eq!(
        query["scope"], "openid read_api",
        "an explicit scope, openid included"
    );
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(
        query["code_challenge"].len(),
        43,
        "a SHA-256 challenge, base64url"
    );
    assert!(
        query["state"].len() >= 22,
        "a state of at least 128 random bits"
    );
    assert!(query["nonce"].len() >= 22);
}

async fn a_return_to_gets_the_outcome(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    let link = cw
        .link(
            "user-17",
            json!({"return_to": format!("{RETURN_ORIGIN}/gitlab/done?step=2")}),
        )
        .await;

    let back = cw.browser.connect(&link).await;

    assert_eq!(back.status(), 302);
    let connection_id = cw.app.connections().await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        location(&back),
        format!(
            "{RETURN_ORIGIN}/gitlab/done?step=2&status=connected&connection_id={connection_id}"
        )
    );
}

async fn a_denial_is_a_clear_page_or_a_redirect(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    cw.world.gitlab.behave(|b| b.deny = true);

    let page = cw
        .browser
        .connect(&cw.link("user-17", json!({})).await)
        .await;
    assert_eq!(page.status(), 403);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("Access was not granted")
    );

    let with_return = cw
        .link(
            "user-17",
            json!({"return_to": format!("{RETURN_ORIGIN}/done")}),
        )
        .await;
    let back = cw.browser.connect(&with_return).await;
    assert_eq!(back.status(), 302);
    assert_eq!(
        location(&back),
        format!("{RETURN_ORIGIN}/done?status=denied&error=access_denied")
    );
    assert!(cw.app.connections().await.is_empty());
    assert_eq!(cw.world.gitlab.seen().code_exchanges, 0);
}

async fn links_and_states_work_once(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    let link = cw.link("user-17", json!({})).await;
    let callback = cw.browser.consent(&link).await;

    let again = cw.browser.get(&link).await;
    assert_eq!(again.status(), 410);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("This link was already used")
    );
    assert_eq!(
        cw.browser.post(&link).await.status(),
        410,
        "agreeing twice starts nothing"
    );

    assert_eq!(
        cw.browser.get(&callback).await.status(),
        302,
        "connected: on to the result page"
    );
    let replayed = cw.browser.get(&callback).await;
    assert_eq!(replayed.status(), 400);
    assert!(replayed.text().await.unwrap().contains("unknown_state"));
    assert_eq!(
        cw.world.gitlab.seen().code_exchanges,
        1,
        "a replayed callback never reaches GitLab"
    );

    let unknown = cw
        .browser
        .get(&format!("{PUBLIC_URL}/connect/lgc_not-a-link"))
        .await;
    assert_eq!(unknown.status(), 404);
}

async fn a_tampered_state_is_refused_without_spending_the_real_one(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    let callback = cw
        .browser
        .consent(&cw.link("user-17", json!({})).await)
        .await;
    let mut url = url::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(pairs.iter().map(|(k, v)| {
            let v = if k == "state" {
                format!("{v}x")
            } else {
                v.clone()
            };
            (k.clone(), v)
        }));

    let tampered = cw.browser.get(url.as_str()).await;
    assert_eq!(tampered.status(), 400);
    let missing = cw
        .browser
        .get(&format!("{PUBLIC_URL}/oauth/corp/callback?code=abc"))
        .await;
    assert_eq!(missing.status(), 400);
    assert_eq!(cw.world.gitlab.seen().code_exchanges, 0);
    assert_eq!(
        cw.browser.get(&callback).await.status(),
        302,
        "the genuine callback still completes"
    );
}

async fn expired_links_and_slow_sign_ins_are_refused(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    let link = cw.link("user-17", json!({})).await;
    cw.app
        .execute_sql("UPDATE connect_sessions SET expires_at = created_at");
    let expired = cw.browser.get(&link).await;
    assert_eq!(expired.status(), 410);
    assert!(
        expired
            .text()
            .await
            .unwrap()
            .contains("This link has expired")
    );

    let callback = cw
        .browser
        .consent(&cw.link("user-18", json!({})).await)
        .await;
    cw.app.execute_sql(
        "UPDATE connect_sessions SET started_at = created_at, created_at = created_at WHERE subject = 'user-18'",
    );
    cw.app.execute_sql(&format!(
        "UPDATE connect_sessions SET started_at = '{}' WHERE subject = 'user-18'",
        (chrono::Utc::now() - chrono::TimeDelta::minutes(11))
            .naive_utc()
            .format("%Y-%m-%d %H:%M:%S")
    ));
    let slow = cw.browser.get(&callback).await;
    assert_eq!(slow.status(), 400);
    assert!(slow.text().await.unwrap().contains("expired_state"));
    assert!(cw.app.connections().await.is_empty());
}

async fn a_callback_on_another_instances_path_is_refused(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    assert_eq!(
        cw.app
            .register(&cw.world.registration("staging"))
            .await
            .status(),
        201
    );
    let callback = cw
        .browser
        .consent(&cw.link("user-17", json!({})).await)
        .await;
    let misdirected = callback.replace("/oauth/corp/callback", "/oauth/staging/callback");

    let refused = cw.browser.get(&misdirected).await;
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("wrong_instance"));
    assert_eq!(
        cw.browser.get(&callback).await.status(),
        400,
        "the state was spent by the attempt"
    );
    assert_eq!(cw.world.gitlab.seen().code_exchanges, 0);
}

async fn an_iss_parameter_from_another_issuer_is_refused(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    cw.world
        .gitlab
        .behave(|b| b.iss_parameter = Some("https://gitlab.evil.example".into()));

    let refused = cw
        .browser
        .connect(&cw.link("user-17", json!({})).await)
        .await;

    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("issuer_mismatch"));
    assert_eq!(
        cw.world.gitlab.seen().code_exchanges,
        0,
        "the code is never redeemed"
    );

    let issuer = cw.world.gitlab.base_url();
    cw.world.gitlab.behave(|b| b.iss_parameter = Some(issuer));
    let with_iss = cw
        .browser
        .connect(&cw.link("user-18", json!({})).await)
        .await;
    assert_eq!(
        with_iss.status(),
        200,
        "GitLab's own issuer, sub-path included, is accepted"
    );
    cw.world.gitlab.behave(|b| b.iss_parameter = None);
    let without_iss = cw
        .browser
        .connect(&cw.link("user-19", json!({})).await)
        .await;
    assert_eq!(
        without_iss.status(),
        200,
        "iss is checked when present, not required"
    );
}

async fn every_bad_id_token_is_refused(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    for fault in [
        IdTokenFault::WrongAudience,
        IdTokenFault::WrongIssuer,
        IdTokenFault::WrongNonce,
        IdTokenFault::Expired,
        IdTokenFault::AlgNone,
        IdTokenFault::BadSignature,
        IdTokenFault::IssuerWithoutSubPath,
        IdTokenFault::IssuerWithTrailingSlash,
    ] {
        cw.world.gitlab.behave(|b| b.id_token_fault = fault);
        let refused = cw
            .browser
            .connect(&cw.link("user-17", json!({})).await)
            .await;
        assert_eq!(refused.status(), 502, "{fault:?}");
        assert!(
            refused.text().await.unwrap().contains("id_token_invalid"),
            "{fault:?}"
        );
    }
    assert!(cw.app.connections().await.is_empty());
    cw.world
        .gitlab
        .behave(|b| b.id_token_fault = IdTokenFault::None);
    assert_eq!(
        cw.browser
            .connect(&cw.link("user-17", json!({})).await)
            .await
            .status(),
        200
    );
}

async fn return_to_must_be_one_of_the_services_origins(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    for return_to in [
        "https://evil.example/done",
        "https://bot.corp.example.evil.test/done",
        "https://bot.corp.example@evil.test/done",
        "http://bot.corp.example/done",
        "//evil.example/done",
        "javascript:alert(1)",
    ] {
        let body = json!({"instance": "corp", "subject": "user-17", "return_to": return_to});
        let problem = expect_problem(
            cw.app.create_connect_link(&cw.service_token, &body).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(
            problem["errors"][0]["field"], "return_to",
            "{return_to}: {problem}"
        );
    }
}

async fn scopes_and_instances_stay_within_policy(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    let cw = &cw;
    let create =
        |body: Value| async move { cw.app.create_connect_link(&cw.service_token, &body).await };

    let beyond = expect_problem(
        create(json!({"instance": "corp", "subject": "u", "scopes": ["api"]})).await,
        403,
        "scope_not_allowed",
    )
    .await;
    assert!(
        beyond["detail"].as_str().unwrap().contains("api"),
        "{beyond}"
    );
    let identity =
        create(json!({"instance": "corp", "subject": "u", "scopes": ["read_api", "email"]})).await;
    assert_eq!(
        identity.status(),
        201,
        "identity scopes are not counted against the policy"
    );

    cw.app.register(&cw.world.registration("staging")).await;
    expect_problem(
        create(json!({"instance": "staging", "subject": "u"})).await,
        403,
        "instance_not_allowed",
    )
    .await;

    let unregistered =
        create(json!({"instance": "corp", "subject": "u", "scopes": ["read_registry"]})).await;
    expect_problem(unregistered, 403, "scope_not_allowed").await;
    let missing = expect_problem(
        create(json!({"instance": "corp"})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(missing["errors"][0]["field"], "subject");

    let admin_token = cw
        .app
        .client
        .post(format!("{}/api/v1/connect-sessions", cw.app.address))
        .bearer_auth(&cw.app.admin_token);
    let refused = admin_token
        .json(&json!({"instance": "corp", "subject": "u"}))
        .send()
        .await
        .unwrap();
    expect_problem(refused, 401, "invalid_service_token").await;
}

async fn connecting_again_replaces_the_grant_and_revokes_the_old_one(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    cw.browser
        .connect(&cw.link("user-17", json!({})).await)
        .await;
    let first = cw.world.gitlab.issued_tokens();
    let first_id = cw.app.connections().await[0]["id"].clone();

    let again = cw
        .browser
        .connect(&cw.link("user-17", json!({})).await)
        .await;

    assert_eq!(again.status(), 200);
    let connections = cw.app.connections().await;
    assert_eq!(
        connections.len(),
        1,
        "same instance, subject and scopes: one connection"
    );
    assert_eq!(connections[0]["id"], first_id);
    assert_eq!(
        cw.world.gitlab.seen().revoked_tokens,
        vec![first[1].clone()],
        "the old refresh token is revoked"
    );
    assert!(
        !cw.world.gitlab.access_token_works(&first[0]),
        "the old grant is dead at GitLab"
    );
    // Newest first: the reconnect, then the first connect, each naming who, where and as whom.
    let audit = cw.app.get_json("/api/v1/audit").await;
    let connects: Vec<&Value> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"].as_str().unwrap().starts_with("connection_"))
        .collect();
    let kinds: Vec<&str> = connects
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["connection_reconnected", "connection_created"]);
    for event in connects {
        assert_eq!(event["actor"], "service:ci-bot");
        assert_eq!(event["subject"], "user-17");
        assert_eq!(event["connection_id"], first_id);
        assert_eq!(event["detail"], format!("GitLab user @{USERNAME}"));
    }

    let other_scopes = cw
        .browser
        .connect(&cw.link("user-17", json!({"scopes": ["read_api"]})).await)
        .await;
    assert_eq!(other_scopes.status(), 200);
    assert_eq!(
        cw.app.connections().await.len(),
        2,
        "another scope set is another connection"
    );
    let active = cw
        .app
        .get_json("/api/v1/connections?status=active&subject=user-17&instance=corp")
        .await;
    assert_eq!(active["connections"].as_array().unwrap().len(), 2);
    let bad_filter = cw
        .app
        .call(Method::GET, "/api/v1/connections?status=sleeping")
        .await;
    expect_problem(bad_filter, 422, "validation_failed").await;
}

async fn a_token_response_without_expires_in_expires_two_hours_after_created_at(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    cw.world.gitlab.behave(|b| b.omit_expires_in = true);

    assert_eq!(
        cw.browser
            .connect(&cw.link("user-17", json!({})).await)
            .await
            .status(),
        200
    );

    let connection = &cw.app.connections().await[0];
    let expires =
        chrono::DateTime::parse_from_rfc3339(connection["expires_at"].as_str().unwrap()).unwrap();
    let lifetime = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
    assert!(
        (7190..=7200).contains(&lifetime),
        "created_at + 7200: {lifetime} s"
    );
}

/// `preferred_username` is optional in OpenID Connect: without it, userinfo names the person.
async fn an_id_token_without_a_username_is_completed_from_userinfo(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    cw.world
        .gitlab
        .behave(|b| b.id_token_without_username = true);
    let connected = cw
        .browser
        .connect(&cw.link("user-17", json!({})).await)
        .await;
    assert_eq!(connected.status(), 200);
    let connection = &cw.app.connections().await[0];
    assert_eq!(
        connection["gitlab"],
        json!({"user_id": USER_ID.to_string(), "username": USERNAME})
    );
}

async fn subjects_belong_to_their_service(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    let (other_id, other_secret) = cw
        .app
        .create_service(&json!({"name": "other-bot", "instances": ["corp"], "scopes": ["read_api", "read_repository", "write_repository"]}))
        .await;
    let other_token = cw.app.service_token(&other_id, &other_secret).await;
    cw.browser.connect(&cw.link("17", json!({})).await).await;
    let first = cw.world.gitlab.issued_tokens();

    let other_link = cw
        .app
        .create_connect_link(&other_token, &json!({"instance": "corp", "subject": "17"}))
        .await;
    let other_link: Value = other_link.json().await.unwrap();
    assert_eq!(
        cw.browser
            .connect(other_link["url"].as_str().unwrap())
            .await
            .status(),
        200
    );

    let connections = cw.app.connections().await;
    assert_eq!(
        connections.len(),
        2,
        "the same subject of two services is two people"
    );
    let services: Vec<&str> = connections
        .iter()
        .map(|c| c["service"].as_str().unwrap())
        .collect();
    assert!(
        services.contains(&"ci-bot") && services.contains(&"other-bot"),
        "{services:?}"
    );
    assert!(
        cw.world.gitlab.access_token_works(&first[0]),
        "the other service's connect left ci-bot's grant alone"
    );
    assert!(cw.world.gitlab.seen().revoked_tokens.is_empty());
}

async fn link_previews_do_not_spend_links(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    let link = cw.link("user-17", json!({"scopes": ["read_api"]})).await;

    for _ in 0..2 {
        let preview = cw.browser.get(&link).await;
        assert_eq!(preview.status(), 200);
        let text = preview.text().await.unwrap();
        assert!(
            text.contains("ci-bot")
                && text.contains("corp")
                && text.contains("<code>openid</code>")
                && text.contains("<code>read_api</code>"),
            "{text}"
        );
    }
    assert!(
        cw.world.gitlab.seen().authorize_queries.is_empty(),
        "looking is not following"
    );
    assert_eq!(cw.browser.connect(&link).await.status(), 200);
}

async fn a_callback_in_another_browser_is_refused(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    let callback = cw
        .browser
        .consent(&cw.link("user-17", json!({})).await)
        .await;
    let victim = person_browser(&cw.app, &cw.world);

    let refused = victim.get(&callback).await;

    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("other_browser"));
    assert_eq!(
        cw.world.gitlab.seen().code_exchanges,
        0,
        "the code is never redeemed"
    );
    assert!(cw.app.connections().await.is_empty());
    assert_eq!(
        cw.browser.get(&callback).await.status(),
        400,
        "the state was spent by the attempt"
    );
}

/// Reloading the last page after connecting shows the result again: the callback sends the
/// browser on to a page whose URL holds no code or state, and only that browser sees it.
async fn the_result_page_shows_the_result_again_without_code_or_state(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    let callback = cw
        .browser
        .consent(&cw.link("user-17", json!({})).await)
        .await;
    let back = cw.browser.get(&callback).await;
    assert_eq!(back.status(), 302);
    assert_eq!(back.headers()["cache-control"], "no-store");
    let result = result_page(&callback, &back).expect("on to labgate's result page");
    assert!(
        !result.contains('?') && !result.contains("code") && !result.contains("state"),
        "{result}"
    );

    for _ in 0..2 {
        let page = cw.browser.get(&result).await;
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()["cache-control"], "no-store");
        let text = page_text(&page.text().await.unwrap());
        assert!(text.contains("Connected as @alice on corp"), "{text}");
    }
    assert_eq!(cw.app.connections().await.len(), 1);
    assert_eq!(cw.world.gitlab.seen().code_exchanges, 1);

    let stranger = person_browser(&cw.app, &cw.world);
    let refused = stranger.get(&result).await;
    assert_eq!(refused.status(), 410);
    let text = refused.text().await.unwrap();
    assert!(
        text.contains("This page has expired") && !text.contains("alice"),
        "another browser learns nothing: {text}"
    );
}

async fn the_confirmation_names_the_gitlab_and_what_each_scope_allows(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    let link = cw.link("user-17", json!({"scopes": ["read_api"]})).await;

    let page = cw.browser.get(&link).await;

    assert_eq!(page.status(), 200);
    let text = page_text(&page.text().await.unwrap());
    let gitlab_url = cw.world.gitlab.base_url();
    assert!(text.contains(&gitlab_url), "{gitlab_url} in {text}");
    for meaning in [
        "Grants permission to authenticate with GitLab using OpenID Connect",
        "Grants read access to the API, including all groups and projects",
    ] {
        assert!(text.contains(meaning), "{meaning} in {text}");
    }
    assert!(text.contains("Cancel"), "{text}");
}

async fn cancelling_spends_the_link_and_tells_the_service(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    let link = cw
        .link(
            "user-17",
            json!({"return_to": format!("{RETURN_ORIGIN}/done?step=2")}),
        )
        .await;

    let back = cw.browser.post(&format!("{link}/cancel")).await;

    assert_eq!(back.status(), 302);
    assert_eq!(
        location(&back),
        format!("{RETURN_ORIGIN}/done?step=2&status=denied&error=access_denied")
    );
    assert_eq!(
        cw.browser.post(&link).await.status(),
        410,
        "a cancelled link cannot be followed"
    );
    assert!(cw.world.gitlab.seen().authorize_queries.is_empty());
    assert!(cw.app.connections().await.is_empty());

    let without_return = cw.link("user-18", json!({})).await;
    let page = cw.browser.post(&format!("{without_return}/cancel")).await;
    assert_eq!(page.status(), 200);
    let text = page_text(&page.text().await.unwrap());
    assert!(text.contains("Nothing was connected"), "{text}");
    assert_eq!(
        cw.browser
            .post(&format!("{without_return}/cancel"))
            .await
            .status(),
        410,
        "cancelling twice: the link is spent"
    );
}
