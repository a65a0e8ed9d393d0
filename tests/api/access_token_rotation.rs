//! Access-token connections rotated by labgate (SPEC, "Access-token connections"; README,
//! "Access tokens instead of OAuth"), against a fake GitLab that revokes the old token at once
//! and the whole family when a rotated token is presented again:
//! - due only when a third of the lifetime or 7 days are left, never in the first half, and then
//!   rotated exactly once however many fetch at the same time, with a new expiry as long as the
//!   old lifetime (at most a year);
//! - a token that cannot rotate itself is never sent to rotate, served until it expires,
//!   announced once by `connection.expiring`, and counted in `/metrics`;
//! - an unknown outcome is settled by asking GitLab about the old token, never by a blind retry.

use std::time::{Duration, Instant};

use chrono::{NaiveDate, TimeDelta, Utc};
use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
use labgate::db::connections::ConnectionRow;
use labgate::db::schema::connections::dsl as c;
use labgate::service::refresh::sweep;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ConnectWorld, expect_problem};
use crate::logs::captured;
use crate::support::database::Backend;
use crate::support::fake_gitlab::{AccessTokenRequest, AccessTokenSpec, FakeGitLab, RotationFault};
use crate::webhooks::receiver::Receiver;

on_both_backends!(
    a_token_near_expiry_rotates_once_under_twenty_concurrent_fetches,
    a_token_not_due_is_never_rotated_and_handouts_promise_until_its_rotation,
    a_token_that_cannot_rotate_is_served_until_it_expires_and_announced_once,
    a_rotation_gitlab_refuses_flags_the_token_instead_of_retrying,
    a_rotation_that_failed_unknown_is_settled_by_asking_gitlab_then_done_once,
    a_rotation_committed_behind_a_bad_gateway_is_never_retried,
    a_rotation_committed_with_its_answer_cut_off_is_never_retried,
);

/// The scopes of a token labgate may rotate (within `ci-bot`'s policy).
const ROTATING: [&str; 3] = ["read_api", "read_repository", "self_rotate"];
const WEBHOOK_SECRET: &str = "whsec-rotation-0123456789abcdef";
/// The request timeout labgate uses towards GitLab: an unknown outcome settles after twice it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// labgate as deployed, with the background refresher on (so handouts promise validity only
/// until the next rotation), but sweeping an hour apart: the tests sweep by hand.
async fn world(backend: Backend) -> ConnectWorld {
    ConnectWorld::start_with(backend, |settings| {
        settings.outbound.request_timeout = REQUEST_TIMEOUT;
        settings.refresher.enabled = true;
        settings.refresher.interval = Duration::from_secs(3600);
    })
    .await
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// A date as labgate's answers write the moment GitLab stops accepting a token that day.
fn midnight(date: NaiveDate) -> String {
    format!("{date}T00:00:00Z")
}

/// A token made `age_days` ago that expires `days_left` days from today.
fn issue(gitlab: &FakeGitLab, scopes: &[&str], age_days: i64, days_left: i64) -> String {
    let spec =
        AccessTokenSpec::days(scopes, days_left).created_at(Utc::now() - TimeDelta::days(age_days));
    gitlab.issue_access_token(spec)
}

/// `POST /api/v1/connections` as `ci-bot`, for its subject; the connection as answered.
async fn hold(cw: &ConnectWorld, subject: &str, token: &str) -> Value {
    let response = cw
        .app
        .client
        .post(format!("{}/api/v1/connections", cw.app.address))
        .bearer_auth(&cw.service_token)
        .json(&json!({"instance": "corp", "subject": subject, "access_token": token}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 201, "holding the token: {text}");
    assert!(!text.contains(token), "the token is write-only: {text}");
    let connection: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(connection["kind"], "access_token", "{connection}");
    connection
}

/// A handout for `subject` that must succeed: its whole answer.
async fn handout(cw: &ConnectWorld, subject: &str) -> Value {
    let response = cw
        .fetch(json!({"instance": "corp", "subject": subject, "min_valid_for": 3600}))
        .await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "fetching for {subject}: {body}");
    body
}

/// `release-bot` holds a year-old token due for rotation, and GitLab's rotations now meet
/// `fault`: the token, its GitLab id, and the connection's id.
async fn held_near_expiry(cw: &ConnectWorld, fault: RotationFault) -> (String, u64, String) {
    let gitlab = &cw.world.gitlab;
    let old = issue(gitlab, &ROTATING, 300, 2);
    let old_id = gitlab.access_token_info(&old).unwrap().id;
    let id = hold(cw, "release-bot", &old).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    gitlab.behave(|b| b.rotation_fault = fault);
    (old, old_id, id)
}

pub(crate) async fn row(cw: &ConnectWorld, id: &str) -> ConnectionRow {
    let id = id.to_owned();
    cw.app
        .context
        .db_read(move |conn| labgate::db::connections::find(conn, &id))
        .await
        .unwrap()
        .expect("the connection exists")
}

/// One sweep of the background refresher, run here; how many it renewed.
async fn sweep_once(cw: &ConnectWorld) -> usize {
    sweep(&cw.app.context).await.expect("a sweep runs")
}

/// Every `POST …/self/rotate` GitLab decided, in order.
fn rotate_requests(gitlab: &FakeGitLab) -> Vec<AccessTokenRequest> {
    gitlab
        .access_token_seen()
        .requests
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/personal_access_tokens/self/rotate"))
        .collect()
}

/// The connection's rotation ledger (newest first) once `done` holds of it: attempts are
/// written in batches, a moment after the attempt.
async fn refreshes_when(
    cw: &ConnectWorld,
    id: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = cw
            .app
            .get_json(&format!("/api/v1/connections/{id}/refreshes"))
            .await["refreshes"]
            .as_array()
            .unwrap()
            .clone();
        if done(&listed) {
            return listed;
        }
        assert!(
            Instant::now() < deadline,
            "the rotation ledger: {listed:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn outcomes(listed: &[Value]) -> Vec<&str> {
    listed
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect()
}

/// When labgate rotates a token of this life (SPEC): a third of its lifetime or 7 days before
/// expiry, whichever is sooner, never in its first half; as answers write it (whole seconds).
fn rotation_due(issued: chrono::DateTime<Utc>, expires_on: NaiveDate) -> String {
    let expires = expires_on.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let lifetime = expires - issued;
    let left = (lifetime / 3).max(TimeDelta::days(7)).min(lifetime / 2);
    (expires - left).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn a_token_near_expiry_rotates_once_under_twenty_concurrent_fetches(backend: Backend) {
    let logs = captured();
    let cw = world(backend).await;
    let gitlab = &cw.world.gitlab;
    let old = issue(gitlab, &ROTATING, 300, 2);
    let before = gitlab.access_token_info(&old).unwrap();
    let connection = hold(&cw, "release-bot", &old).await;
    let id = connection["id"].as_str().unwrap().to_owned();
    assert_eq!(connection["rotation_impossible"], false, "{connection}");
    assert_eq!(
        connection["expires_at"],
        midnight(today() + TimeDelta::days(2))
    );
    // GitLab takes a moment, so that every fetch arrives while the rotation is under way.
    gitlab.behave(|b| b.rotation_delay = Duration::from_millis(300));

    let fetches = futures_util::future::join_all(
        (0..20).map(|_| cw.fetch(json!({"instance": "corp", "subject": "release-bot"}))),
    );
    let (answers, swept) = futures_util::join!(fetches, sweep(&cw.app.context));
    swept.expect("the sweep runs");

    let mut handed = Vec::new();
    for response in answers {
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        handed.push(body);
    }
    let new = handed[0]["access_token"].as_str().unwrap().to_owned();
    assert_ne!(new, old, "the fetches were answered before the rotation");
    for body in &handed {
        assert_eq!(
            body["access_token"],
            new.as_str(),
            "every fetch gets the one new token"
        );
        assert_eq!(body["connection_id"], id.as_str());
    }
    assert_eq!(gitlab.access_token_rotations(), 1, "exactly one rotation");
    let sent = rotate_requests(gitlab);
    assert_eq!(sent.len(), 1, "one rotation request: {sent:?}");
    assert_eq!(sent[0].token_id, Some(before.id));
    assert!(
        !gitlab.access_token_alive(&old),
        "GitLab revoked the old token"
    );
    assert!(
        gitlab.access_token_alive(&new),
        "the new token works at GitLab"
    );
    assert_eq!(gitlab.family_revocations(), 0);
    assert_eq!(gitlab.live_access_tokens_of_family(&old), [new.as_str()]);

    // A new expiry as far ahead as the old token's lifetime, at most a year.
    let after = gitlab.access_token_info(&new).unwrap();
    let lifetime_days = (before.expires_at - before.created_at.date_naive()).num_days();
    let expected = today() + TimeDelta::days(lifetime_days.min(365));
    assert_eq!(after.expires_at, expected, "lifetime {lifetime_days} days");
    assert_eq!(after.family, before.family);
    assert_eq!(
        cw.connection(&id).await["expires_at"],
        midnight(expected),
        "the connection follows the new expiry"
    );
    // Handouts promise the new token until its own rotation, not until its expiry.
    let due = rotation_due(after.created_at, after.expires_at);
    assert_eq!(handed[0]["expires_at"], due.as_str());

    let ledger = refreshes_when(&cw, &id, |l| !l.is_empty()).await;
    assert_eq!(outcomes(&ledger), ["ok"], "{ledger:#?}");

    // Fresh now: a second sweep rotates nothing.
    assert_eq!(sweep_once(&cw).await, 0);
    assert_eq!(gitlab.access_token_rotations(), 1);
    assert_eq!(rotate_requests(gitlab).len(), 1);
    assert_eq!(
        handout(&cw, "release-bot").await["access_token"],
        new.as_str()
    );

    // Neither token in clear at rest, in the ledger or in a log line.
    let raw = cw.app.db.raw_contents();
    let contains = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"release-bot"), "the probe reads the stored data");
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    for token in [&old, &new] {
        assert!(!contains(token.as_bytes()), "the database holds a token");
        assert!(!logged.contains(token.as_str()), "a log line holds a token");
    }
    assert!(!serde_json::to_string(&ledger).unwrap().contains(&new));
}

async fn a_token_not_due_is_never_rotated_and_handouts_promise_until_its_rotation(
    backend: Backend,
) {
    let cw = world(backend).await;
    let gitlab = &cw.world.gitlab;
    // 90 days: due with 30 days left. 6 days: fewer than 7 days left, but in its first half.
    let long = issue(gitlab, &ROTATING, 0, 90);
    let short = issue(gitlab, &ROTATING, 0, 6);
    let long_id = hold(&cw, "bot-long", &long).await["id"].clone();
    let short_id = hold(&cw, "bot-short", &short).await["id"].clone();

    for _ in 0..3 {
        assert_eq!(sweep_once(&cw).await, 0);
    }
    let fetches = futures_util::future::join_all(
        (0..5).flat_map(|_| [handout(&cw, "bot-long"), handout(&cw, "bot-short")]),
    )
    .await;
    assert_eq!(sweep_once(&cw).await, 0);

    assert!(
        rotate_requests(gitlab).is_empty(),
        "{:?}",
        gitlab.access_token_seen().requests
    );
    assert_eq!(gitlab.access_token_rotations(), 0);
    for (token, id) in [(&long, &long_id), (&short, &short_id)] {
        let info = gitlab.access_token_info(token).unwrap();
        let due = rotation_due(info.created_at, info.expires_at);
        let expiry = midnight(info.expires_at);
        for body in fetches.iter().filter(|b| &b["connection_id"] == id) {
            assert_eq!(body["access_token"], token.as_str());
            assert_eq!(body["expires_at"], due.as_str(), "not its expiry, {expiry}");
        }
        assert!(gitlab.access_token_alive(token));
    }
}

async fn a_token_that_cannot_rotate_is_served_until_it_expires_and_announced_once(
    backend: Backend,
) {
    let cw = world(backend).await;
    let gitlab = &cw.world.gitlab;
    let receiver = Receiver::start().await;
    let listed = cw
        .app
        .admin(Method::PATCH, "/api/v1/services/ci-bot")
        .json(&json!({"webhooks": [{"url": receiver.url, "secret": WEBHOOK_SECRET}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let token = issue(gitlab, &["read_api"], 30, 3);
    let expires = midnight(today() + TimeDelta::days(3));

    let connection = hold(&cw, "reader", &token).await;
    let id = connection["id"].as_str().unwrap().to_owned();
    assert_eq!(connection["rotation_impossible"], true, "{connection}");
    assert_eq!(connection["expires_at"], expires.as_str());

    for _ in 0..4 {
        sweep_once(&cw).await;
        let body = handout(&cw, "reader").await;
        assert_eq!(body["access_token"], token.as_str());
        // Never rotated: promised until its expiry.
        assert_eq!(body["expires_at"], expires.as_str());
    }
    assert!(
        rotate_requests(gitlab).is_empty(),
        "a token without api or self_rotate was sent to rotate"
    );

    // Written with the mark that it was announced: the outbox holds one, however many sweeps.
    let deadline = Instant::now() + Duration::from_secs(10);
    let deliveries = loop {
        let all = cw.app.get_json("/api/v1/services/ci-bot/deliveries").await["deliveries"]
            .as_array()
            .unwrap()
            .clone();
        if all.iter().all(|d| d["status"] == "delivered") {
            break all;
        }
        assert!(Instant::now() < deadline, "deliveries: {all:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let expiring = |t: &Value| t == "connection.expiring";
    assert_eq!(
        deliveries.iter().filter(|d| expiring(&d["type"])).count(),
        1,
        "{deliveries:#?}"
    );
    let received: Vec<_> = receiver
        .received()
        .into_iter()
        .filter(|r| expiring(&r.json()["type"]))
        .collect();
    assert_eq!(received.len(), 1, "{received:#?}");
    assert!(received[0].signed_with(WEBHOOK_SECRET), "{:?}", received[0]);
    let event = received[0].json();
    assert_eq!(event["data"]["connection_id"], id.as_str());
    assert_eq!(event["data"]["instance"], "corp");
    assert_eq!(event["data"]["subject"], "reader");
    assert_eq!(event["data"]["status"], "active");
    assert_eq!(event["data"]["reason"], "rotation_impossible");
    assert_eq!(event["data"]["expires_at"], expires.as_str());

    // Less than 3 whole days are left of a token dead from midnight in 3 days.
    let gauge = format!(r#"labgate_access_token_days_left{{instance="corp",connection="{id}"}} 2"#);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = cw.app.metrics().await;
        if metrics.lines().any(|line| line == gauge) {
            break;
        }
        assert!(Instant::now() < deadline, "{gauge} in {metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Near its expiry (as if the days had passed): no longer handed out, still never rotated.
    let soon = Utc::now().naive_utc() + TimeDelta::seconds(30);
    let moved = id.clone();
    cw.app
        .context
        .db_write(move |conn| {
            diesel::update(c::connections.find(moved))
                .set(c::expires_at.eq(soon))
                .execute(conn)
        })
        .await
        .unwrap();
    let refused = cw
        .fetch(json!({"instance": "corp", "subject": "reader"}))
        .await;
    expect_problem(refused, 409, "reauthorization_required").await;
    sweep_once(&cw).await;
    assert!(rotate_requests(gitlab).is_empty());
}

/// GitLab may refuse a rotation labgate expected to work (its 403): the token is flagged and
/// served until it expires, not sent again. The fake refuses only tokens without `api` or
/// `self_rotate`, so the row is made to believe (as an older record could) that such a token
/// may rotate.
async fn a_rotation_gitlab_refuses_flags_the_token_instead_of_retrying(backend: Backend) {
    let cw = world(backend).await;
    let gitlab = &cw.world.gitlab;
    let token = issue(gitlab, &["read_api"], 300, 3);
    let id = hold(&cw, "reader", &token).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let due = Utc::now().naive_utc() - TimeDelta::days(90);
    let believed = id.clone();
    cw.app
        .context
        .db_write(move |conn| {
            diesel::update(c::connections.find(believed))
                .set((c::rotation_impossible.eq(false), c::refresh_due_at.eq(due)))
                .execute(conn)
        })
        .await
        .unwrap();

    // The fetch that meets the refusal still gets the token, valid for days.
    let body = handout(&cw, "reader").await;
    assert_eq!(body["access_token"], token.as_str());
    let refused = rotate_requests(gitlab);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].status, 403);
    assert_eq!(cw.connection(&id).await["rotation_impossible"], true);
    let stored = row(&cw, &id).await;
    assert!(stored.refresh_in_flight_since.is_none() && stored.refresh_lease_owner.is_none());

    for _ in 0..3 {
        assert_eq!(sweep_once(&cw).await, 0);
        assert_eq!(handout(&cw, "reader").await["access_token"], token.as_str());
    }
    assert_eq!(
        rotate_requests(gitlab).len(),
        1,
        "a refused rotation was retried"
    );
    assert!(gitlab.access_token_alive(&token));
    let ledger = refreshes_when(&cw, &id, |l| !l.is_empty()).await;
    assert_eq!(outcomes(&ledger), ["unavailable"], "{ledger:#?}");
}

async fn a_rotation_that_failed_unknown_is_settled_by_asking_gitlab_then_done_once(
    backend: Backend,
) {
    let cw = world(backend).await;
    let gitlab = &cw.world.gitlab;
    let (old, old_id, id) = held_near_expiry(&cw, RotationFault::ServerError).await;

    let failed = cw
        .fetch(json!({"instance": "corp", "subject": "release-bot"}))
        .await;
    assert!(failed.headers().contains_key("retry-after"));
    expect_problem(failed, 503, "gitlab_unavailable").await;
    assert_eq!(rotate_requests(gitlab).len(), 1);
    assert_eq!(gitlab.access_token_rotations(), 0);
    let marked = row(&cw, &id).await;
    assert!(
        marked.refresh_in_flight_since.is_some(),
        "an unknown outcome keeps the row marked"
    );
    // Within the settle time nothing is sent again, whoever asks.
    let again = cw
        .fetch(json!({"instance": "corp", "subject": "release-bot"}))
        .await;
    expect_problem(again, 503, "gitlab_unavailable").await;
    assert_eq!(sweep_once(&cw).await, 0);
    assert_eq!(rotate_requests(gitlab).len(), 1, "a blind retry");

    gitlab.behave(|b| b.rotation_fault = RotationFault::None);
    let deadline = Instant::now() + Duration::from_secs(15);
    while gitlab.access_token_rotations() == 0 {
        assert!(Instant::now() < deadline, "never rotated after settling");
        sweep_once(&cw).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let requests = gitlab.access_token_seen().requests;
    let summary: Vec<_> = requests
        .iter()
        .map(|r| {
            (
                r.method.as_str(),
                r.path.rsplit("tokens/").next().unwrap(),
                r.token_id,
                r.status,
            )
        })
        .collect();
    let registration = summary
        .iter()
        .take_while(|(method, _, _, _)| *method == "GET")
        .count();
    assert_eq!(
        &summary[registration..],
        [
            ("POST", "self/rotate", Some(old_id), 500),
            ("GET", "self", Some(old_id), 200),
            ("POST", "self/rotate", Some(old_id), 200),
        ],
        "asked about the old token before rotating again: {summary:?}"
    );
    let new = handout(&cw, "release-bot").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new, old);
    assert!(gitlab.access_token_alive(&new));
    assert!(!gitlab.access_token_alive(&old));
    assert_eq!(gitlab.access_token_rotations(), 1);
    assert_eq!(gitlab.family_revocations(), 0);
    assert!(row(&cw, &id).await.refresh_in_flight_since.is_none());
    let ledger = refreshes_when(&cw, &id, |l| l.len() >= 2).await;
    assert_eq!(outcomes(&ledger), ["ok", "unknown"], "{ledger:#?}");
}

async fn a_rotation_committed_behind_a_bad_gateway_is_never_retried(backend: Backend) {
    a_committed_rotation_whose_answer_is_lost(backend, RotationFault::BadGatewayAfterCommit).await;
}

async fn a_rotation_committed_with_its_answer_cut_off_is_never_retried(backend: Backend) {
    a_committed_rotation_whose_answer_is_lost(backend, RotationFault::ResetAfterCommit).await;
}

/// GitLab rotated, and labgate never learnt the new token: the old one is dead, and presenting
/// it again would revoke the whole family. Settled as `refresh_response_lost`, recorded.
async fn a_committed_rotation_whose_answer_is_lost(backend: Backend, fault: RotationFault) {
    let cw = world(backend).await;
    let gitlab = &cw.world.gitlab;
    let (old, old_id, id) = held_near_expiry(&cw, fault).await;

    let failed = cw
        .fetch(json!({"instance": "corp", "subject": "release-bot"}))
        .await;
    expect_problem(failed, 503, "gitlab_unavailable").await;
    assert_eq!(gitlab.access_token_rotations(), 1, "GitLab committed");
    assert!(!gitlab.access_token_alive(&old));
    assert!(row(&cw, &id).await.refresh_in_flight_since.is_some());
    gitlab.behave(|b| b.rotation_fault = RotationFault::None);

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        sweep_once(&cw).await;
        if row(&cw, &id).await.refresh_in_flight_since.is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "never settled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let connection = cw.connection(&id).await;
    assert_eq!(
        connection["status"], "reauthorization_required",
        "{connection}"
    );
    assert_eq!(connection["status_reason"], "refresh_response_lost");
    let refused = cw
        .fetch(json!({"instance": "corp", "subject": "release-bot"}))
        .await;
    expect_problem(refused, 409, "reauthorization_required").await;
    for _ in 0..2 {
        sweep_once(&cw).await;
    }
    let sent = rotate_requests(gitlab);
    assert_eq!(
        sent.len(),
        1,
        "the old token was presented to rotate again: {sent:?}"
    );
    assert_eq!(sent[0].token_id, Some(old_id));
    assert!(sent[0].new_token_id.is_some());
    let probes: Vec<_> = gitlab
        .access_token_seen()
        .requests
        .into_iter()
        .skip_while(|r| r.method != "POST")
        .filter(|r| r.method == "GET")
        .map(|r| (r.token_id, r.status))
        .collect();
    assert_eq!(
        probes,
        [(Some(old_id), 401)],
        "one question about the old token"
    );
    assert_eq!(gitlab.access_token_rotations(), 1);
    assert_eq!(gitlab.family_revocations(), 0, "the family was revoked");
    assert_eq!(gitlab.live_access_tokens_of_family(&old).len(), 1);
    let ledger = refreshes_when(&cw, &id, |l| l.len() >= 2).await;
    assert_eq!(
        outcomes(&ledger),
        ["response_lost", "unknown"],
        "{ledger:#?}"
    );
}
