//! The audit log: every handout, refresh failure and admin change; its writer also writes the
//! rotation ledger's entries. Events are queued and written in batches (every 200 ms, or as soon
//! as 128 are queued) by one writer task, so recording never waits on a database commit, and
//! wakes the writer only when the queue was empty or a batch is full. Batches stay small because
//! writing one takes a core from the handouts: at 40,000 handouts a second, a batch of 1,000
//! held answers back long enough to put their 99th percentile past 2 ms. On PostgreSQL, full
//! batches are streamed into one transaction that commits every 200 ms (`writer`). A failed write
//! is tried again while the database recovers. A crash loses what is queued or not yet
//! committed: normally one window, more if the database was falling behind. A normal shutdown
//! writes the queue out first.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{NaiveDateTime, Utc};
use tokio::sync::{Notify, oneshot};

use super::{Context, FieldError, ServiceError};
use crate::config::DatabaseUrl;
use crate::db;
use crate::db::audit::{AuditRow, AuditText, EventTime, NewAuditEvent};
use crate::db::refresh_attempts::NewRefreshAttempt;
use crate::domain::{Page, Paged};
use writer::Writer;

mod writer;

const QUEUE: usize = 65_536;
const BATCH: usize = 128;
/// The most one transaction writes: what arrives while the writer wakes joins its batch rather
/// than following as a small transaction of its own (each commit costs the database about as
/// much as a hundred rows), and a queue that grew while the database was slow is still written
/// in batches that hold a core only briefly.
const MOST_PER_WRITE: usize = 2 * BATCH;
const WINDOW: Duration = Duration::from_millis(200);

/// One thing that happened. Never holds a token or secret.
#[derive(Debug, Clone)]
pub struct AuditEvent(NewAuditEvent);

impl AuditEvent {
    pub fn new(kind: &'static str, actor: impl Into<AuditText>) -> Self {
        Self(NewAuditEvent {
            at: EventTime(Utc::now().naive_utc()),
            kind: AuditText::Word(kind),
            actor: actor.into(),
            instance: None,
            subject: None,
            connection_id: None,
            scopes: None,
            detail: None,
        })
    }

    pub fn instance(mut self, name: impl Into<AuditText>) -> Self {
        self.0.instance = Some(name.into());
        self
    }

    pub fn subject(mut self, subject: impl Into<AuditText>) -> Self {
        self.0.subject = Some(subject.into());
        self
    }

    pub fn connection(mut self, id: impl Into<AuditText>) -> Self {
        self.0.connection_id = Some(id.into());
        self
    }

    pub fn scopes(mut self, scopes: impl Into<AuditText>) -> Self {
        self.0.scopes = Some(scopes.into());
        self
    }

    pub fn detail(mut self, detail: impl Into<AuditText>) -> Self {
        self.0.detail = Some(detail.into());
        self
    }
}

/// Who acts when the admin token is used (the API's bearer token, or an admin-page session it
/// opened): events name their actor, and this one is the token.
pub const ADMIN_TOKEN: &str = "admin:token";

/// Records waiting for the writer, and callers waiting for them to be written.
#[derive(Default)]
struct Queue {
    events: Vec<NewAuditEvent>,
    /// The rotation ledger's entries, written in the same batches.
    attempts: Vec<NewRefreshAttempt>,
    flushes: Vec<oneshot::Sender<()>>,
}

impl Queue {
    fn is_idle(&self) -> bool {
        self.events.is_empty() && self.attempts.is_empty() && self.flushes.is_empty()
    }
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the writer: only when the queue stops being empty, so a busy handout path wakes it
    /// once per batch, not once per event.
    work: Notify,
    /// Cuts the writer's gathering short: someone waits for the write, or a batch is full.
    write_now: Notify,
    /// Wakes callers waiting for room in a full queue.
    room: Notify,
}

/// The queue into the writer task.
#[derive(Clone)]
pub struct AuditLog {
    shared: Arc<Shared>,
}

impl AuditLog {
    /// Starts the writer on the current runtime, with a connection of its own to `database`.
    pub fn start(database: DatabaseUrl) -> Self {
        let shared = Arc::new(Shared::default());
        tokio::spawn(writer::write_batches(Writer::new(database), shared.clone()));
        Self { shared }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues an event; waits only if the queue is full (the database is far behind).
    pub fn record(&self, event: AuditEvent) -> impl Future<Output = ()> + Send + '_ {
        let mut event = Some(event.0);
        self.push_or_wait(move |queue| queue.events.extend(event.take()))
    }

    /// Queues a rotation-ledger entry, off the refresh path like every audit event.
    pub(super) fn record_attempt(
        &self,
        attempt: NewRefreshAttempt,
    ) -> impl Future<Output = ()> + Send + '_ {
        let mut attempt = Some(attempt);
        self.push_or_wait(move |queue| queue.attempts.extend(attempt.take()))
    }

    /// Pushes at once when there is room, as there nearly always is, so the future returned is
    /// a pointer wide whatever the record's size: it is part of every handout's future, which
    /// actix allocates and moves whole for each request.
    fn push_or_wait<'a>(
        &'a self,
        mut push: impl FnMut(&mut Queue) + Send + 'a,
    ) -> impl Future<Output = ()> + Send + 'a {
        let waiting = (!self.try_push(&mut push)).then(|| Box::pin(self.wait_for_room(push)));
        async move {
            if let Some(waiting) = waiting {
                waiting.await;
            }
        }
    }

    async fn wait_for_room(&self, mut push: impl FnMut(&mut Queue)) {
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.try_push(&mut push) {
                return;
            }
            room.await;
        }
    }

    /// Pushes unless the queue is full; wakes the writer when the queue was empty.
    fn try_push(&self, push: &mut impl FnMut(&mut Queue)) -> bool {
        let mut queue = self.queue();
        if queue.events.len() + queue.attempts.len() >= QUEUE {
            return false;
        }
        let idle = queue.is_idle();
        push(&mut queue);
        if idle {
            self.shared.work.notify_one();
        } else if queue.events.len() + queue.attempts.len() == BATCH {
            self.shared.write_now.notify_one();
        }
        true
    }

    /// Events and ledger entries waiting for the writer.
    pub fn queued(&self) -> usize {
        let queue = self.queue();
        queue.events.len() + queue.attempts.len()
    }

    /// Returns once everything queued before the call is written.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        self.queue().flushes.push(done);
        self.shared.work.notify_one();
        self.shared.write_now.notify_one();
        let _ = written.await;
    }
}

/// Events newest first, since `since` if given; one page of them.
pub async fn list(
    ctx: &Context,
    since: Option<NaiveDateTime>,
    page: Page,
) -> Result<Paged<AuditRow>, ServiceError> {
    ctx.audit.flush().await;
    let before_id = page
        .after
        .as_deref()
        .map(|key| key.parse::<i64>())
        .transpose()
        .map_err(|_| {
            ServiceError::Invalid(vec![FieldError::new(
                "cursor",
                "is not a cursor of this list",
            )])
        })?;
    let limit = page.limit;
    // One more than the page: it only says whether another page follows.
    let rows = ctx
        .db_read(move |conn| db::audit::list(conn, since, before_id, limit + 1))
        .await?;
    Ok(Paged::of(rows, limit, |row: &AuditRow| row.id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DatabaseSettings;
    use crate::db::DbPool;

    /// A migrated SQLite database: a pool to read it, and its URL for the writer.
    pub(super) fn sqlite(dir: &tempfile::TempDir) -> (DbPool, DatabaseUrl) {
        let url = DatabaseUrl::Sqlite(dir.path().join("audit.db"));
        let pool = db::connect(&DatabaseSettings {
            url: url.clone(),
            pool_size: 2,
            pool_timeout: Duration::from_secs(5),
        })
        .unwrap();
        db::run_migrations(&mut pool.get().unwrap()).unwrap();
        (pool, url)
    }

    /// Queues one event, and the rest of `count` once the writer is gathering; returns how long
    /// (on the paused clock) until all are stored.
    async fn time_to_store(count: usize) -> Duration {
        let dir = tempfile::tempdir().unwrap();
        let (pool, url) = sqlite(&dir);
        let audit = AuditLog::start(url);
        let event = || AuditEvent::new("handout", "service:ci-bot");
        let started = tokio::time::Instant::now();
        audit.record(event()).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        for _ in 1..count {
            audit.record(event()).await;
        }
        loop {
            let pool = pool.clone();
            let stored = tokio::task::spawn_blocking(move || {
                db::audit::list(&mut pool.get().unwrap(), None, None, 1_000)
                    .unwrap()
                    .len()
            })
            .await
            .unwrap();
            if stored == count {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_is_written_without_waiting_for_the_window() {
        assert!(time_to_store(BATCH).await < WINDOW / 2);
    }

    #[tokio::test(start_paused = true)]
    async fn fewer_events_than_a_batch_wait_for_the_window() {
        assert!(time_to_store(BATCH - 1).await >= WINDOW / 2);
    }
}
