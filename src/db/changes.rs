//! Changes other processes commit to a shared PostgreSQL database, heard as they commit:
//! triggers on `connections`, `services` and `instances` notify the channel `labgate_changes`
//! (migration `change_notifications`), and every process listens on a connection of its own.

use std::time::Duration;

use diesel::pg::PgConnection;
use diesel::{Connection, QueryResult, RunQueryDsl, sql_query};
use secrecy::{ExposeSecret, SecretString};

/// How often the listener looks for notifications: the longest a change goes unheard.
const POLL: Duration = Duration::from_millis(10);
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// What the listener tells its owner at every turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Subscribed: changes from now on will be heard. Earlier ones may have been missed.
    Listening,
    /// At least one change committed since the last turn.
    Changed,
    /// Nothing since the last turn.
    Quiet,
    /// The listening connection failed: changes go unheard until `Listening` again.
    Lost,
}

/// Listens until `report` answers `false` (its owner is gone), reconnecting after failures.
/// Blocks: run it on a thread of its own.
pub fn listen(url: &SecretString, mut report: impl FnMut(Feed) -> bool) {
    loop {
        match subscribe(url) {
            Ok(mut conn) => {
                if !report(Feed::Listening) {
                    return;
                }
                loop {
                    std::thread::sleep(POLL);
                    let feed = match drain(&mut conn) {
                        Ok(true) => Feed::Changed,
                        Ok(false) => Feed::Quiet,
                        Err(e) => {
                            tracing::warn!(error.cause = %e, "lost the database change feed; reconnecting");
                            Feed::Lost
                        }
                    };
                    if !report(feed) {
                        return;
                    }
                    if feed == Feed::Lost {
                        break;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error.cause = %e, "cannot listen for database changes; retrying");
                if !report(Feed::Lost) {
                    return;
                }
            }
        }
        std::thread::sleep(RECONNECT_AFTER);
    }
}

fn subscribe(url: &SecretString) -> Result<PgConnection, String> {
    // The URL may hold a password: only the kind of failure is reported.
    let mut conn = PgConnection::establish(url.expose_secret())
        .map_err(|_| "cannot connect to PostgreSQL".to_owned())?;
    sql_query("LISTEN labgate_changes")
        .execute(&mut conn)
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// Reads every notification waiting; whether there was any.
fn drain(conn: &mut PgConnection) -> QueryResult<bool> {
    let mut changed = false;
    for notification in conn.notifications_iter() {
        notification?;
        changed = true;
    }
    Ok(changed)
}
