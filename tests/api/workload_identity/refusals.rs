//! Subject tokens refused, each with `400 invalid_request` and the failed check first in
//! `error_description`: wrong claims and times, forged signatures, algorithm confusion, key
//! material smuggled in headers, malformed requests; every refusal counted in `/metrics`.

use serde_json::{Value, json};

use super::{
    AUDIENCE, JWT_TYPE, PROJECT, TOKEN_EXCHANGE, ci_world, exchange, exchange_form,
    exchanged_token, expect_refusal, not_refused, trust,
};
use crate::helpers::ConnectWorld;
use crate::support::certs::TestCa;
use crate::support::database::Backend;
use crate::support::fake_issuer::FakeIssuer;
use crate::support::jwt::{JwtKey, now};

on_both_backends!(
    claims_and_times_out_of_line_are_refused,
    forged_tokens_are_refused,
    the_exchange_request_itself_is_checked,
    an_algorithm_the_issuer_does_not_advertise_is_refused,
    exchanges_and_refusals_are_counted,
);

/// Exchanges each `(what, token, check)` at `ci-bot`; fails naming every case not refused
/// with `check`.
async fn expect_refusals(cw: &ConnectWorld, cases: Vec<(&str, String, &str)>) {
    let mut wrong = Vec::new();
    for (what, token, check) in cases {
        let response = exchange(&cw.app, &cw.service_client_id, &token).await;
        if let Some(why) = not_refused(response, check).await {
            wrong.push(format!("{what}: {why}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

async fn claims_and_times_out_of_line_are_refused(backend: Backend) {
    let cw = ci_world(backend).await;
    let gitlab = &cw.world.gitlab;
    let job = || gitlab.ci_token(AUDIENCE, PROJECT);
    let t = now();
    // Clocks differ: 60 s of leeway on `nbf` and `iat`.
    for (what, token) in [
        ("nbf 30 s ahead", job().claim("nbf", t + 30)),
        (
            "iat 30 s ahead",
            job().claim("iat", t + 30).claim("nbf", t + 30),
        ),
    ] {
        let answer = exchange(&cw.app, &cw.service_client_id, &token.sign()).await;
        assert_eq!(answer.status(), 200, "{what}: within the leeway");
    }
    let without_sub_path = gitlab.base_url().trim_end_matches("/gitlab").to_owned();
    let cases = vec![
        (
            "another issuer",
            job().claim("iss", "https://gitlab.evil.example").sign(),
            "issuer",
        ),
        (
            "the issuer without GitLab's sub-path",
            job().claim("iss", without_sub_path).sign(),
            "issuer",
        ),
        (
            "the issuer with a trailing slash",
            job().claim("iss", format!("{}/", gitlab.base_url())).sign(),
            "issuer",
        ),
        (
            "another audience",
            job().claim("aud", "https://labgate.evil.example").sign(),
            "audience",
        ),
        (
            "expired ten seconds ago",
            job()
                .claim("iat", t - 400)
                .claim("nbf", t - 400)
                .claim("exp", t - 10)
                .sign(),
            "expiry",
        ),
        (
            "not valid for two minutes",
            job().claim("nbf", t + 120).sign(),
            "not_before",
        ),
        (
            "issued two minutes from now",
            job().claim("iat", t + 120).sign(),
            "issued_at",
        ),
        (
            "a project one character off",
            gitlab.ci_token(AUDIENCE, "group/apq").sign(),
            "claim project_path",
        ),
        (
            "an unprotected ref",
            job().claim("ref_protected", "false").sign(),
            "claim ref_protected",
        ),
        (
            "no ref_protected claim",
            job().without("ref_protected").sign(),
            "claim ref_protected",
        ),
        (
            "no user_login to bind the subject to",
            job().without("user_login").sign(),
            "subject_claim user_login",
        ),
        (
            "a kid the issuer never published",
            job().header("kid", "ci-jwt-key-unknown").sign(),
            "key",
        ),
    ];
    expect_refusals(&cw, cases).await;
}

/// Signatures that are not GitLab's, algorithms that are not asymmetric, and keys named in the
/// token itself: an attacker's ways to make labgate accept a token GitLab never signed.
async fn forged_tokens_are_refused(backend: Backend) {
    let cw = ci_world(backend).await;
    let gitlab = &cw.world.gitlab;
    let job = || gitlab.ci_token(AUDIENCE, PROJECT);
    let genuine = gitlab.ci_key();
    let stranger = JwtKey::rsa(&genuine.kid);
    let jwk_json = serde_json::to_string(genuine.jwk()).unwrap();
    // A job of another project, its payload swapped for one naming the trusted project.
    let other_project = gitlab.ci_token(AUDIENCE, "group/other").sign();
    let trusted_payload = job().sign().split('.').nth(1).unwrap().to_owned();
    let parts: Vec<&str> = other_project.split('.').collect();
    let swapped = format!("{}.{trusted_payload}.{}", parts[0], parts[2]);
    let attacker_ca = TestCa::new("Attacker CA").pem();
    let attacker_cert: String = attacker_ca
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let stranger_signed = |header: &str, value: Value| -> String {
        job().header(header, value).signed_with(&stranger)
    };
    let cases = vec![
        (
            "another key under the CI key's kid",
            job().signed_with(&stranger),
            "signature",
        ),
        ("a payload swapped after signing", swapped, "signature"),
        ("alg none", job().unsigned(), "algorithm"),
        (
            "HS256 keyed with the public key's PEM",
            job().hs256(genuine.public_pem().as_bytes()),
            "algorithm",
        ),
        (
            "HS256 keyed with the public key's JWK",
            job().hs256(jwk_json.as_bytes()),
            "algorithm",
        ),
        (
            "a jku header",
            stranger_signed("jku", json!("https://attacker.example/jwks.json")),
            "header",
        ),
        (
            "an x5u header",
            stranger_signed("x5u", json!("https://attacker.example/cert.pem")),
            "header",
        ),
        (
            "an embedded jwk",
            stranger_signed("jwk", stranger.jwk().clone()),
            "header",
        ),
        (
            "an embedded x5c chain",
            stranger_signed("x5c", json!([attacker_cert])),
            "header",
        ),
        (
            "a crit header",
            job().header("crit", json!(["exp"])).sign(),
            "header",
        ),
        ("not a JWT", "not-a-jwt".to_owned(), "subject_token"),
        (
            "a payload that is not JSON",
            "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2lnbmF0dXJl".to_owned(),
            "subject_token",
        ),
    ];
    expect_refusals(&cw, cases).await;
    // The genuine article still passes: the refusals were about the forgeries.
    exchanged_token(&cw.app, &cw.service_client_id, &job().sign()).await;
}

async fn the_exchange_request_itself_is_checked(backend: Backend) {
    let cw = ci_world(backend).await;
    let token = cw.world.gitlab.ci_token(AUDIENCE, PROJECT).sign();
    let whole = [
        ("grant_type", TOKEN_EXCHANGE),
        ("client_id", cw.service_client_id.as_str()),
        ("subject_token", token.as_str()),
        ("subject_token_type", JWT_TYPE),
    ];
    let without = |name: &str| -> Vec<(&str, &str)> {
        whole.into_iter().filter(|(n, _)| *n != name).collect()
    };
    let with = |name: &str, value: &'static str| -> Vec<(&str, &str)> {
        whole
            .into_iter()
            .map(|(n, v)| (n, if n == name { value } else { v }))
            .collect()
    };

    for (what, form, check) in [
        (
            "no subject_token",
            without("subject_token"),
            "subject_token",
        ),
        (
            "an access token's type",
            with(
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            "subject_token_type",
        ),
        (
            "no subject_token_type",
            without("subject_token_type"),
            "subject_token_type",
        ),
    ] {
        if let Some(why) = not_refused(exchange_form(&cw.app, &form).await, check).await {
            panic!("{what}: {why}");
        }
    }
    // RFC 6749 §5.2: an unknown client, or none named, is `invalid_client`.
    for (what, form) in [
        ("an unknown client_id", with("client_id", "lgcli_nobody")),
        ("no client_id", without("client_id")),
    ] {
        let response = exchange_form(&cw.app, &form).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        assert_eq!(
            (status.as_u16(), body["error"].as_str()),
            (401, Some("invalid_client")),
            "{what}: {body}"
        );
    }
    assert_eq!(
        exchange_form(&cw.app, &whole).await.status(),
        200,
        "the same request, whole, is accepted"
    );
}

/// A Kubernetes issuer that advertises only RS256: an ES256 token under a key it publishes is
/// refused (`exchange` shows the same token accepted where ES256 is advertised).
async fn an_algorithm_the_issuer_does_not_advertise_is_refused(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    let cluster = FakeIssuer::start().await;
    cluster.advertise(&["RS256"]);
    trust(
        &cw.app,
        "ci-bot",
        json!([{"issuer": cluster.issuer(), "ca_pem": cluster.ca.pem(), "audience": "labgate",
                "claims": {"sub": "system:serviceaccount:ci:builder"}}]),
    )
    .await;
    let pod = cluster
        .service_account_token("labgate", "ci", "builder")
        .sign();
    expect_refusal(
        exchange(&cw.app, &cw.service_client_id, &pod).await,
        "algorithm",
    )
    .await;
}

async fn exchanges_and_refusals_are_counted(backend: Backend) {
    let cw = ci_world(backend).await;
    let gitlab = &cw.world.gitlab;
    let job = || gitlab.ci_token(AUDIENCE, PROJECT);
    exchanged_token(&cw.app, &cw.service_client_id, &job().sign()).await;
    let stranger = JwtKey::rsa(&gitlab.ci_key().kid);
    let refused = [
        (job().claim("aud", "elsewhere").sign(), "audience"),
        (job().claim("aud", "somewhere else").sign(), "audience"),
        (job().claim("exp", now() - 10).sign(), "expiry"),
        (
            gitlab.ci_token(AUDIENCE, "group/other").sign(),
            "claim project_path",
        ),
        (job().signed_with(&stranger), "signature"),
    ];
    for (token, check) in refused {
        expect_refusal(
            exchange(&cw.app, &cw.service_client_id, &token).await,
            check,
        )
        .await;
    }
    let unknown = exchange(&cw.app, "lgcli_nobody", &job().sign()).await;
    assert_eq!(unknown.status(), 401);

    let metrics = cw.app.metrics().await;
    for line in [
        r#"labgate_token_exchanges_total{service="ci-bot"} 1"#,
        r#"labgate_token_exchange_refusals_total{reason="audience"} 2"#,
        r#"labgate_token_exchange_refusals_total{reason="expired"} 1"#,
        r#"labgate_token_exchange_refusals_total{reason="claim"} 1"#,
        r#"labgate_token_exchange_refusals_total{reason="signature"} 1"#,
        r#"labgate_token_exchange_refusals_total{reason="unknown_client"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line}:\n{metrics}");
    }
    assert!(
        !metrics.contains("lgcli_nobody") && !metrics.contains("somewhere else"),
        "request text is no label:\n{metrics}"
    );
}
