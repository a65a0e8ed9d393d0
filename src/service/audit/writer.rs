//! The audit writer task: takes what is queued, a window's worth or a batch at a time, and
//! writes it on a connection of its own. While handouts keep batches full on PostgreSQL, it
//! streams them into an open transaction of short `COPY` statements that commits every window:
//! the database then pays for a commit a window, not a batch, and takes each batch's rows as
//! they arrive.

use std::sync::Arc;
use std::sync::mpsc;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{BATCH, MOST_PER_WRITE, Queue, Shared, WINDOW};
use crate::config::DatabaseUrl;
use crate::db::audit::NewAuditEvent;
use crate::db::audit_stream::{self, Chunk};
use crate::db::refresh_attempts::NewRefreshAttempt;
use crate::db::{self, DbConnection};

pub(super) async fn write_batches(mut writer: Writer, shared: Arc<Shared>) {
    loop {
        match writer.stream_ends() {
            Some(ends) => tokio::select! {
                () = shared.work.notified() => {}
                () = tokio::time::sleep_until(ends) => {
                    writer.end_stream().await;
                    continue;
                }
            },
            None => shared.work.notified().await,
        }
        // Gather a window's worth, unless someone waits for the write or a batch is full.
        let gather = {
            let queue = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.flushes.is_empty() && queue.events.len() + queue.attempts.len() < BATCH
        };
        if gather {
            let until = writer
                .stream_ends()
                .unwrap_or_else(|| Instant::now() + WINDOW);
            tokio::select! {
                () = tokio::time::sleep_until(until) => {}
                () = shared.write_now.notified() => {}
            }
        }
        let Queue {
            events,
            attempts,
            flushes,
        } = take_queue(&shared);
        shared.room.notify_waiters();
        // A full batch means handouts are busy: stream it. Fewer events, after a quiet window,
        // are written at once; so are ledger entries, in one transaction with their events.
        let busy = events.len() >= BATCH || writer.stream.is_some();
        if writer.streams() && attempts.is_empty() && busy {
            writer.send(events).await;
        } else {
            writer.end_stream().await;
            writer.write(events, attempts).await;
        }
        if !flushes.is_empty()
            || writer
                .stream_ends()
                .is_some_and(|ends| ends <= Instant::now())
        {
            writer.end_stream().await;
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

fn take_queue(shared: &Shared) -> Queue {
    let mut queue = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
    let taken = std::mem::take(&mut *queue);
    // The next window is likely as busy as this one: its room is made now, not grown (and
    // copied) event by event under the handouts' lock.
    queue.events.reserve(taken.events.len());
    taken
}

/// What one trip to the database writes.
struct Batch {
    events: Vec<NewAuditEvent>,
    attempts: Vec<NewRefreshAttempt>,
}

impl Batch {
    fn len(&self) -> usize {
        self.events.len() + self.attempts.len()
    }
}

/// The writer's own connection, outside the pool: kept from batch to batch (its commits are
/// set not to wait for the disk, which no pooled connection may be), opened again after a
/// failure.
pub(super) struct Writer {
    database: DatabaseUrl,
    conn: Option<DbConnection>,
    stream: Option<Stream>,
}

/// An open transaction of `COPY` statements, running on a blocking thread with the writer's
/// connection.
struct Stream {
    chunks: mpsc::Sender<Chunk>,
    /// What went into it, kept until it commits: a failed stream writes nothing, and its
    /// events are written again as batches.
    sent: Vec<Chunk>,
    copying: JoinHandle<Result<DbConnection, String>>,
    ends: Instant,
}

/// The kept connection, or a new one opened where `kept` says.
fn connection(kept: Result<DbConnection, DatabaseUrl>) -> Result<DbConnection, String> {
    kept.or_else(|database| db::audit::open_writer(&database))
}

impl Stream {
    /// Starts a copy on the kept connection, or on one opened from where it says.
    fn open(kept: Result<DbConnection, DatabaseUrl>) -> Self {
        let (chunks, received) = mpsc::channel();
        let copying = tokio::task::spawn_blocking(move || {
            let mut conn = connection(kept)?;
            let DbConnection::Postgres(pg) = &mut conn else {
                return Err("only PostgreSQL streams audit events".to_owned());
            };
            audit_stream::copy(pg, &received)
                .map(|_| conn)
                .map_err(|e| e.to_string())
        });
        Self {
            chunks,
            sent: Vec::new(),
            copying,
            ends: Instant::now() + WINDOW,
        }
    }
}

impl Writer {
    /// Opens nothing yet: the first batch does.
    pub(super) fn new(database: DatabaseUrl) -> Self {
        Self {
            database,
            conn: None,
            stream: None,
        }
    }

    /// The kept connection, or where to open one (on the blocking thread that will use it).
    fn take_connection(&mut self) -> Result<DbConnection, DatabaseUrl> {
        self.conn.take().ok_or_else(|| self.database.clone())
    }

    fn streams(&self) -> bool {
        matches!(self.database, DatabaseUrl::Postgres(_))
    }

    /// When the open stream commits, if one is open.
    fn stream_ends(&self) -> Option<Instant> {
        self.stream.as_ref().map(|stream| stream.ends)
    }

    /// Sends events into the open stream, opening one if none is.
    async fn send(&mut self, events: Vec<NewAuditEvent>) {
        if events.is_empty() {
            return;
        }
        let stream = match self.stream.take() {
            Some(stream) => stream,
            None => Stream::open(self.take_connection()),
        };
        let stream = self.stream.insert(stream);
        let chunk = Arc::new(events);
        stream.sent.push(chunk.clone());
        if stream.chunks.send(chunk).is_err() {
            // The copy failed already; what it was sent is written again.
            self.end_stream().await;
        }
    }

    /// Commits the open stream, if any; if it fails, writes its events again as batches.
    async fn end_stream(&mut self) {
        let Some(Stream {
            chunks,
            sent,
            copying,
            ..
        }) = self.stream.take()
        else {
            return;
        };
        // The copy ends, and commits, once it has taken everything sent before this.
        drop(chunks);
        match copying
            .await
            .map_err(|e| e.to_string())
            .and_then(|done| done)
        {
            Ok(conn) => self.conn = Some(conn),
            Err(e) => {
                let events: usize = sent.iter().map(|chunk| chunk.len()).sum();
                tracing::error!(events, error.cause = %e, "audit events could not be streamed; writing them again");
                let events = sent.into_iter().flat_map(Arc::unwrap_or_clone).collect();
                self.write(events, Vec::new()).await;
            }
        }
    }

    /// Writes in batches of at most `MOST_PER_WRITE` events and ledger entries each.
    async fn write(&mut self, events: Vec<NewAuditEvent>, attempts: Vec<NewRefreshAttempt>) {
        let mut events = events.into_iter().peekable();
        let mut attempts = attempts.into_iter().peekable();
        while events.peek().is_some() || attempts.peek().is_some() {
            let batch = Batch {
                events: events.by_ref().take(MOST_PER_WRITE).collect(),
                attempts: attempts.by_ref().take(MOST_PER_WRITE).collect(),
            };
            self.write_with_retries(batch).await;
        }
    }

    async fn write_with_retries(&mut self, batch: Batch) {
        let batch = Arc::new(batch);
        for attempt in 1..=10 {
            let kept = self.take_connection();
            let records = batch.clone();
            let written = tokio::task::spawn_blocking(move || {
                let mut conn = connection(kept)?;
                db::audit::write_batch(&mut conn, &records.events, &records.attempts)
                    .map(|()| conn)
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|written| written);
            match written {
                Ok(conn) => {
                    self.conn = Some(conn);
                    return;
                }
                // The connection went with the failure: the next attempt opens a new one.
                Err(e) => {
                    tracing::error!(events = batch.len(), attempt, error.cause = %e, "audit events could not be written yet");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
        tracing::error!(
            events = batch.len(),
            "audit events were dropped after 10 attempts"
        );
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::service::audit::AuditEvent;
    use crate::service::audit::tests::sqlite;

    #[tokio::test(start_paused = true)]
    async fn a_batch_refused_in_part_is_not_written_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, url) = sqlite(&dir);
        let now = Utc::now().naive_utc();
        let batch = Batch {
            events: vec![AuditEvent::new("handout", "service:ci-bot").0; 3],
            // The ledger's foreign key refuses it, after the events went in: all ten tries fail.
            attempts: vec![NewRefreshAttempt {
                connection_id: "no-such-connection".into(),
                started_at: now,
                finished_at: now,
                outcome: "ok".into(),
                gitlab_request_id: None,
                process: "test".into(),
                detail: None,
            }],
        };
        Writer::new(url).write_with_retries(batch).await;
        let stored = db::audit::list(&mut pool.get().unwrap(), None, None, 1_000).unwrap();
        assert!(
            stored.is_empty(),
            "{} events of a refused batch were written",
            stored.len()
        );
    }
}
