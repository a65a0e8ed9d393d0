//! The audit log: every handout, refresh failure and admin change. Events are queued and
//! written in batches (every 200 ms, or 1,000 events) by one writer task, so recording never
//! waits on a database commit. A failed batch is tried again while the database recovers. A
//! crash loses what is still queued: normally one batch window, more if the database was
//! falling behind. A normal shutdown writes the queue out first.

use std::time::Duration;

use chrono::{NaiveDateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::{Context, ServiceError};
use crate::db::{self, DbPool, audit::AuditRow, audit::NewAuditEvent};

const QUEUE: usize = 65_536;
const BATCH: usize = 1_000;
const WINDOW: Duration = Duration::from_millis(200);

/// One thing that happened. Never holds a token or secret.
#[derive(Debug, Clone)]
pub struct AuditEvent(NewAuditEvent);

impl AuditEvent {
    pub fn new(kind: &str, actor: impl Into<String>) -> Self {
        Self(NewAuditEvent {
            at: Utc::now().naive_utc(),
            kind: kind.to_owned(),
            actor: actor.into(),
            instance: None,
            subject: None,
            connection_id: None,
            scopes: None,
            detail: None,
        })
    }

    pub fn instance(mut self, name: &str) -> Self {
        self.0.instance = Some(name.to_owned());
        self
    }

    pub fn subject(mut self, subject: &str) -> Self {
        self.0.subject = Some(subject.to_owned());
        self
    }

    pub fn connection(mut self, id: &str) -> Self {
        self.0.connection_id = Some(id.to_owned());
        self
    }

    pub fn scopes(mut self, scopes: impl ToString) -> Self {
        self.0.scopes = Some(scopes.to_string());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.0.detail = Some(detail.into());
        self
    }
}

enum Command {
    Record(NewAuditEvent),
    Flush(oneshot::Sender<()>),
}

/// The queue into the writer task.
#[derive(Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<Command>,
}

impl AuditLog {
    /// Starts the writer on the current runtime.
    pub fn start(pool: DbPool) -> Self {
        let (queue, commands) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(pool, commands));
        Self { queue }
    }

    /// Queues an event; waits only if the queue is full (the database is far behind).
    pub async fn record(&self, event: AuditEvent) {
        if self.queue.send(Command::Record(event.0)).await.is_err() {
            tracing::error!("the audit writer has stopped; an event was not recorded");
        }
    }

    /// Returns once everything queued before the call is written.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.queue.send(Command::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

async fn write_batches(pool: DbPool, mut commands: mpsc::Receiver<Command>) {
    while let Some(first) = commands.recv().await {
        let mut batch = Vec::new();
        let mut waiting = Vec::new();
        let mut next = Some(first);
        let deadline = tokio::time::Instant::now() + WINDOW;
        while let Some(command) = next.take() {
            match command {
                Command::Record(event) => batch.push(event),
                // A flush ends the batch at once: what it waits for is written now.
                Command::Flush(done) => {
                    waiting.push(done);
                    break;
                }
            }
            if batch.len() >= BATCH {
                break;
            }
            next = tokio::time::timeout_at(deadline, commands.recv())
                .await
                .ok()
                .flatten();
        }
        if !batch.is_empty() {
            write_with_retries(&pool, batch).await;
        }
        for done in waiting {
            let _ = done.send(());
        }
    }
}

async fn write_with_retries(pool: &DbPool, batch: Vec<NewAuditEvent>) {
    let batch = std::sync::Arc::new(batch);
    for attempt in 1..=10 {
        let (pool, events) = (pool.clone(), batch.clone());
        let written = tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|e| e.to_string())?;
            db::audit::insert_batch(&mut conn, &events).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|written| written);
        match written {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(events = batch.len(), attempt, error.cause = %e, "audit events could not be written yet");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    tracing::error!(
        events = batch.len(),
        "audit events were dropped after 10 attempts"
    );
}

/// Newest first; `limit` between 1 and 1000.
pub async fn list(
    ctx: &Context,
    since: Option<NaiveDateTime>,
    limit: i64,
) -> Result<Vec<AuditRow>, ServiceError> {
    ctx.audit.flush().await;
    let limit = limit.clamp(1, 1000);
    ctx.db_read(move |conn| db::audit::list(conn, since, limit))
        .await
}
