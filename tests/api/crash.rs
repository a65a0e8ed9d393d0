//! Crashes: three `labgate serve` processes on one PostgreSQL database refresh the same
//! connections while a killer sends them SIGKILL and starts them again. GitLab's rotation has no
//! grace, so the one loss no broker can avoid is a kill between GitLab's commit and labgate's
//! store; every other grant must survive, and no rotated refresh token may ever be sent again.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{TimeDelta, Utc};
use diesel::{BoolExpressionMethods, ExpressionMethods, QueryDsl, RunQueryDsl, SelectableHelper};
use labgate::db::connections::ConnectionRow;
use labgate::db::schema::connections::dsl as c;
use labgate::domain::ConnectionStatus;
use labgate::service::connection_tokens::{TokenKind, open_token};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::fleet::Fleet;
use crate::helpers::ConnectWorld;
use crate::support::database::Backend;

const PROCESSES: usize = 3;
const CONNECTIONS: usize = 24;
/// How many kills, and how long the killer may take for them at most.
const KILLS: usize = 24;
const CHAOS: Duration = Duration::from_secs(40);
/// At most between two kills, if no refresh is under way at GitLab sooner.
const KILL_EVERY: Duration = Duration::from_millis(1500);
/// How long GitLab works on a refresh before it commits: kills land mid-refresh.
const GITLAB_WORKS: Duration = Duration::from_millis(150);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

#[actix_web::test]
async fn killed_processes_lose_no_grant_a_broker_could_keep() {
    let Some(backend) = Backend::postgres() else {
        eprintln!("LABGATE_TEST_POSTGRES_URL is not set: the crash test needs PostgreSQL");
        return;
    };
    let cw = ConnectWorld::start_with(backend, |settings| {
        settings.outbound.request_timeout = REQUEST_TIMEOUT;
        settings.outbound.connect_timeout = Duration::from_secs(1);
    })
    .await;
    cw.world
        .gitlab
        .behave(|b| b.token_lifetime = Duration::from_secs(300));
    let mut subjects = Vec::new();
    for i in 0..CONNECTIONS {
        let subject = format!("user-{i:02}");
        cw.connect(&subject, json!({})).await;
        subjects.push(subject);
    }
    cw.world.gitlab.behave(|b| b.commit_delay = GITLAB_WORKS);

    let mut fleet = Fleet::start(&cw, PROCESSES).await;
    let started = Instant::now();
    let mut kills: Vec<u128> = Vec::new();
    let mut fetched = 0;
    while kills.len() < KILLS && started.elapsed() < CHAOS {
        // Time passes: every connection is due again, and each process's sweeper refreshes it.
        make_all_due(&cw).await;
        for (n, subject) in subjects.iter().enumerate().take(8) {
            let address = fleet.address(n + kills.len());
            let body = json!({"instance": "corp", "subject": subject});
            if let Ok(response) = cw
                .app
                .client
                .post(format!("{address}/api/v1/credentials"))
                .bearer_auth(&cw.service_token)
                .json(&body)
                .timeout(Duration::from_secs(3))
                .send()
                .await
            {
                fetched += usize::from(response.status() == 200);
            }
        }
        // Kill while GitLab works on a refresh, whichever process sent it.
        let wait = Instant::now() + KILL_EVERY;
        while Instant::now() < wait && cw.world.gitlab.seen().refreshes_in_progress == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        kills.push(now_ms());
        fleet.kill_and_restart(kills.len() % PROCESSES).await;
    }

    // Let every unknown outcome settle: leases of killed processes run out, sweepers ask GitLab.
    let settled = settle(&cw).await;
    let seen = cw.world.gitlab.seen();
    // The survivors write their rotation ledgers in batches (every 200 ms) before they go.
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(fleet);

    assert!(
        kills.len() >= KILLS / 2 && seen.refreshes >= 100,
        "the test must exercise something: {} kills, {} refreshes",
        kills.len(),
        seen.refreshes
    );
    assert!(fetched > 0, "no fetch succeeded while the fleet ran");
    assert!(
        settled,
        "some connections never settled (a refresh mark or lease remained)"
    );
    assert_eq!(
        seen.rotated_reuses, 0,
        "a rotated refresh token was sent to GitLab again"
    );
    let rows = cw
        .app
        .context
        .db_read(|conn| c::connections.select(ConnectionRow::as_select()).load(conn))
        .await
        .unwrap();
    assert_eq!(rows.len(), CONNECTIONS);
    let mut lost = 0;
    for row in &rows {
        let access = open_token(&cw.app.context.sealer, row, TokenKind::Access).unwrap();
        match row.status {
            ConnectionStatus::Active => assert!(
                cw.world.gitlab.access_token_works(access.expose_secret()),
                "{}: active, but its stored token is dead",
                row.subject
            ),
            ConnectionStatus::ReauthorizationRequired => {
                assert_eq!(
                    row.status_reason.as_deref(),
                    Some("refresh_response_lost"),
                    "{}: lost for another reason",
                    row.subject
                );
                // Explained only by GitLab's answer lost after its commit: a kill after the
                // refresh left (at most the request timeout before GitLab took it) and before
                // its answer was stored, or a timeout the ledger recorded (a loaded machine).
                let family = cw.world.gitlab.family_of(access.expose_secret()).unwrap();
                let committed = seen.last_rotation_ms[&family];
                let sent =
                    committed.saturating_sub((GITLAB_WORKS + REQUEST_TIMEOUT).as_millis() + 100);
                let killed = kills.iter().any(|&k| k >= sent && k <= committed + 2_000);
                assert!(
                    killed || timed_out(&cw, &row.id).await,
                    "{}: lost without a kill between its refresh leaving and its answer stored, \
                     nor a timeout",
                    row.subject
                );
                lost += 1;
            }
            ConnectionStatus::Revoked => panic!("{}: revoked by nobody", row.subject),
        }
    }
    eprintln!(
        "crash test: {} kills, {} refreshes at GitLab, {fetched} handouts, {lost} of {CONNECTIONS} grants lost to a kill after GitLab's commit",
        kills.len(),
        seen.refreshes
    );
}

/// Every active connection's refresh comes due now, as if time had passed.
async fn make_all_due(cw: &ConnectWorld) {
    cw.app
        .context
        .db_write(|conn| {
            let past = Utc::now().naive_utc() - TimeDelta::seconds(1);
            diesel::update(c::connections.filter(c::status.eq(ConnectionStatus::Active.as_str())))
                .set(c::refresh_due_at.eq(past))
                .execute(conn)
        })
        .await
        .unwrap();
}

/// Whether the connection's rotation ledger holds a refresh whose answer did not come in time.
async fn timed_out(cw: &ConnectWorld, id: &str) -> bool {
    let id = id.to_owned();
    cw.app
        .context
        .db_read(move |conn| labgate::db::refresh_attempts::for_connection(conn, &id))
        .await
        .unwrap()
        .iter()
        .any(|attempt| attempt.outcome == "unknown")
}

/// Waits (at most a minute) until no connection has a refresh mark or a lease.
async fn settle(cw: &ConnectWorld) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let unsettled: i64 = cw
            .app
            .context
            .db_read(|conn| {
                c::connections
                    .filter(
                        c::refresh_in_flight_since
                            .is_not_null()
                            .or(c::refresh_lease_owner.is_not_null()),
                    )
                    .count()
                    .get_result(conn)
            })
            .await
            .unwrap();
        if unsettled == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}
