//! Issuers' keys: fetched once and cached, an unknown `kid` refetched at most once a minute
//! however many tokens name one, rotations followed, and an issuer out of reach answered with
//! `503 temporarily_unavailable`.

use std::time::Instant;

use futures_util::StreamExt;
use serde_json::{Value, json};

use super::{
    AUDIENCE, PROJECT, ci_world, exchange, exchanged_token, expect_refusal, not_refused, trust,
};
use crate::helpers::ConnectWorld;
use crate::support::database::Backend;
use crate::support::fake_issuer::FakeIssuer;
use crate::support::jwt::OldKey;

on_both_backends!(
    a_flood_of_unknown_kids_refetches_the_keys_at_most_once,
    a_rotated_ci_key_is_fetched_once_and_the_old_one_still_trusted,
    a_key_the_cluster_dropped_is_no_longer_trusted,
    an_issuer_out_of_reach_is_temporarily_unavailable,
);

/// A Kubernetes cluster whose `ci:builder` service account `ci-bot` trusts, through the
/// cluster's CA.
async fn cluster_world(backend: Backend) -> (ConnectWorld, FakeIssuer) {
    let cw = ConnectWorld::start(backend).await;
    let cluster = FakeIssuer::start().await;
    trust(&cw.app, "ci-bot", json!([cluster_identity(&cluster, true)])).await;
    (cw, cluster)
}

/// The identity of the cluster's `ci:builder`, with the cluster's CA as `ca_pem` or without.
fn cluster_identity(cluster: &FakeIssuer, with_ca: bool) -> Value {
    let mut identity = json!({
        "issuer": cluster.issuer(),
        "audience": "labgate",
        "claims": {"sub": "system:serviceaccount:ci:builder"},
    });
    if with_ca {
        identity["ca_pem"] = json!(cluster.ca.pem());
    }
    identity
}

fn pod_token(cluster: &FakeIssuer) -> String {
    cluster
        .service_account_token("labgate", "ci", "builder")
        .sign()
}

/// After one good exchange, a thousand tokens naming made-up kids arrive at once: each is
/// refused, and GitLab is asked for its keys at most twice (discovery and JWKS, once).
async fn a_flood_of_unknown_kids_refetches_the_keys_at_most_once(backend: Backend) {
    let cw = ci_world(backend).await;
    let gitlab = &cw.world.gitlab;
    exchanged_token(
        &cw.app,
        &cw.service_client_id,
        &gitlab.ci_token(AUDIENCE, PROJECT).sign(),
    )
    .await;
    let warm = gitlab.seen().key_fetches();
    let builders: Vec<_> = (0..1000)
        .map(|_| {
            let kid = format!("ci-jwt-key-{}", uuid::Uuid::new_v4().simple());
            gitlab.ci_token(AUDIENCE, PROJECT).header("kid", kid)
        })
        .collect();
    let flood = tokio::task::spawn_blocking(move || {
        builders.into_iter().map(|b| b.sign()).collect::<Vec<_>>()
    })
    .await
    .unwrap();

    let started = Instant::now();
    // A hundred connections at a time: a thousand at once would measure the machine's sockets,
    // not labgate's refetch rule.
    let answers: Vec<_> = futures_util::stream::iter(
        flood
            .iter()
            .map(|token| exchange(&cw.app, &cw.service_client_id, token)),
    )
    .buffer_unordered(100)
    .collect()
    .await;
    let took = started.elapsed();
    let mut wrong = Vec::new();
    for answer in answers {
        if let Some(why) = not_refused(answer, "key").await {
            wrong.push(why);
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of 1000 not refused as unknown keys, e.g. {}",
        wrong.len(),
        wrong[0]
    );
    let fetched = gitlab.seen().key_fetches() - warm;
    assert!(
        fetched <= 2,
        "{fetched} key fetches for one flood (sent in {took:?})"
    );
    exchanged_token(
        &cw.app,
        &cw.service_client_id,
        &gitlab.ci_token(AUDIENCE, PROJECT).sign(),
    )
    .await;
}

/// GitLab's administrator rotates the CI key and keeps the old one published: the first token
/// under the new `kid` makes labgate fetch the JWKS once; tokens under either key pass.
async fn a_rotated_ci_key_is_fetched_once_and_the_old_one_still_trusted(backend: Backend) {
    let cw = ci_world(backend).await;
    let gitlab = &cw.world.gitlab;
    let job = || gitlab.ci_token(AUDIENCE, PROJECT).sign();
    let signed_before_rotation = job();
    exchanged_token(&cw.app, &cw.service_client_id, &job()).await;
    let warm = gitlab.seen();
    exchanged_token(&cw.app, &cw.service_client_id, &job()).await;
    assert_eq!(
        gitlab.seen().key_fetches(),
        warm.key_fetches(),
        "a known kid is served from the cache"
    );

    gitlab.rotate_ci_key(OldKey::Kept);
    exchanged_token(&cw.app, &cw.service_client_id, &job()).await;
    let rotated = gitlab.seen();
    assert_eq!(
        rotated.jwks_requests - warm.jwks_requests,
        1,
        "one refetch for the new kid"
    );
    assert!(rotated.key_fetches() - warm.key_fetches() <= 2);
    exchanged_token(&cw.app, &cw.service_client_id, &signed_before_rotation).await;
    exchanged_token(&cw.app, &cw.service_client_id, &job()).await;
    assert_eq!(
        gitlab.seen().key_fetches(),
        rotated.key_fetches(),
        "both keys from the cache"
    );
}

/// The cluster rotates and drops its old key at once: once labgate has fetched the new set, a
/// token signed with the old key is refused, even before it expires.
async fn a_key_the_cluster_dropped_is_no_longer_trusted(backend: Backend) {
    let (cw, cluster) = cluster_world(backend).await;
    let signed_with_old_key = pod_token(&cluster);
    exchanged_token(&cw.app, &cw.service_client_id, &pod_token(&cluster)).await;

    cluster.rotate_key(OldKey::Dropped);
    exchanged_token(&cw.app, &cw.service_client_id, &pod_token(&cluster)).await;
    expect_refusal(
        exchange(&cw.app, &cw.service_client_id, &signed_with_old_key).await,
        "key",
    )
    .await;
}

/// Without `ca_pem` the cluster's private CA is not trusted, and an issuer that stopped
/// answering cannot be asked: both are labgate's trouble to report, `503` with `Retry-After`,
/// not the token's fault. Keys fetched earlier keep serving when the issuer goes away.
async fn an_issuer_out_of_reach_is_temporarily_unavailable(backend: Backend) {
    let cw = ConnectWorld::start(backend).await;
    let cluster = FakeIssuer::start().await;
    trust(
        &cw.app,
        "ci-bot",
        json!([cluster_identity(&cluster, false)]),
    )
    .await;
    expect_unavailable(exchange(&cw.app, &cw.service_client_id, &pod_token(&cluster)).await).await;
    assert_eq!(
        cluster.seen().key_fetches(),
        0,
        "nothing fetched over untrusted TLS"
    );

    trust(&cw.app, "ci-bot", json!([cluster_identity(&cluster, true)])).await;
    exchanged_token(&cw.app, &cw.service_client_id, &pod_token(&cluster)).await;
    cluster.stop().await;
    exchanged_token(&cw.app, &cw.service_client_id, &pod_token(&cluster)).await;

    // Another cluster, gone before labgate ever fetched its keys.
    let gone = FakeIssuer::start().await;
    gone.stop().await;
    trust(&cw.app, "ci-bot", json!([cluster_identity(&gone, true)])).await;
    expect_unavailable(exchange(&cw.app, &cw.service_client_id, &pod_token(&gone)).await).await;
}

/// Asserts `503 temporarily_unavailable` with `Retry-After`.
async fn expect_unavailable(response: reqwest::Response) {
    let status = response.status();
    let retry_after = response.headers().get("retry-after").cloned();
    let body: Value = response.json().await.unwrap_or_default();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(retry_after.is_some(), "Retry-After is sent: {body}");
}
