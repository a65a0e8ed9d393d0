//! Changes other processes commit to a shared PostgreSQL database, heard as they commit:
//! triggers on `connections`, `services` and `instances` notify the channel `labgate_changes`
//! (migration `change_notifications`), and every process listens on a connection of its own.
//!
//! The listener also notifies itself every second and expects to hear it: a connection that
//! cannot hear (a pooler in transaction mode, a half-dead socket) is reported lost, never
//! trusted in silence.

use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use diesel::{Connection, QueryResult, RunQueryDsl, sql_query};
use secrecy::{ExposeSecret, SecretString};

/// How often the listener looks for notifications: the longest a change goes unheard.
const POLL: Duration = Duration::from_millis(10);
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Silence after which the feed counts as lost: three heartbeats.
pub const DEAF_AFTER: Duration = Duration::from_secs(3);
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
const HEARTBEAT_PREFIX: &str = "heartbeat:";

/// What the listener tells its owner at every turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Subscribed: changes from now on will be heard. Earlier ones may have been missed.
    Listening,
    /// One poll: whether any change committed, whether the listener's own heartbeat came back.
    Heard { change: bool, heartbeat: bool },
    /// The listening connection failed or went deaf: changes go unheard until `Listening` again.
    Lost,
}

/// Listens until `report` answers `false` (its owner is gone), reconnecting after failures.
/// Blocks: run it on a thread of its own.
pub fn listen(url: &SecretString, mut report: impl FnMut(Feed) -> bool) {
    let heartbeat = format!("{HEARTBEAT_PREFIX}{}", uuid::Uuid::new_v4());
    // Warnings only when the feed changes state: a pooler that cannot deliver notifications
    // would otherwise log every few seconds forever.
    let mut was_listening = true;
    loop {
        let problem = match subscribe(url) {
            Ok(mut conn) => {
                was_listening = true;
                if !report(Feed::Listening) {
                    return;
                }
                match hear_until_lost(&mut conn, &heartbeat, &mut report) {
                    Some(problem) => problem,
                    None => return,
                }
            }
            Err(e) => {
                if !report(Feed::Lost) {
                    return;
                }
                format!("cannot listen for database changes: {e}")
            }
        };
        if was_listening {
            tracing::warn!(error.cause = %problem, "database change feed lost; handouts read the database until it is back");
        } else {
            tracing::debug!(error.cause = %problem, "database change feed still lost");
        }
        was_listening = false;
        std::thread::sleep(RECONNECT_AFTER);
    }
}

/// Polls until the connection fails or goes deaf (returns why, after reporting `Lost`), or
/// `report` answers `false` (returns `None`).
fn hear_until_lost(
    conn: &mut PgConnection,
    heartbeat: &str,
    report: &mut impl FnMut(Feed) -> bool,
) -> Option<String> {
    let (mut last_sent, mut last_heard) = (None::<Instant>, Instant::now());
    loop {
        std::thread::sleep(POLL);
        let heard = beat(conn, heartbeat, &mut last_sent).and_then(|()| drain(conn, heartbeat));
        let problem = match heard {
            Ok(heard) => {
                if matches!(
                    heard,
                    Feed::Heard {
                        heartbeat: true,
                        ..
                    }
                ) {
                    last_heard = Instant::now();
                }
                if last_heard.elapsed() <= DEAF_AFTER {
                    if !report(heard) {
                        return None;
                    }
                    continue;
                }
                "no heartbeat came back: notifications do not arrive".to_owned()
            }
            Err(e) => e.to_string(),
        };
        return report(Feed::Lost).then_some(problem);
    }
}

fn subscribe(url: &SecretString) -> Result<PgConnection, String> {
    let mut conn = PgConnection::establish(url.expose_secret())
        .map_err(|e| super::pool::redact_password(&e.to_string(), url))?;
    sql_query("LISTEN labgate_changes")
        .execute(&mut conn)
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// Notifies this listener itself, once a heartbeat.
fn beat(
    conn: &mut PgConnection,
    heartbeat: &str,
    last_sent: &mut Option<Instant>,
) -> QueryResult<()> {
    if last_sent.is_some_and(|sent| sent.elapsed() < HEARTBEAT) {
        return Ok(());
    }
    sql_query("SELECT pg_notify('labgate_changes', $1)")
        .bind::<diesel::sql_types::Text, _>(heartbeat)
        .execute(conn)?;
    *last_sent = Some(Instant::now());
    Ok(())
}

/// Reads every notification waiting. Heartbeats are not changes, this listener's or another's.
fn drain(conn: &mut PgConnection, heartbeat: &str) -> QueryResult<Feed> {
    let (mut change, mut own_heartbeat) = (false, false);
    for notification in conn.notifications_iter() {
        let payload = notification?.payload;
        if payload == heartbeat {
            own_heartbeat = true;
        } else if !payload.starts_with(HEARTBEAT_PREFIX) {
            change = true;
        }
    }
    Ok(Feed::Heard {
        change,
        heartbeat: own_heartbeat,
    })
}
