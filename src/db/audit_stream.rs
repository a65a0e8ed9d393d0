//! The audit writer's open `COPY` statements on PostgreSQL: events go to the database as they are
//! recorded, in statements of a few hundred rows, all in one transaction that commits when the
//! stream ends. The server inserts them as they arrive (libpq sends every 8 KiB), so a busy
//! second costs one commit a window instead of hundreds, and no batch lands on the server all
//! at once.
//!
//! The rows are written in `COPY`'s binary format, as diesel's `from_insertable` writes them;
//! diesel takes all rows at once there, and here they arrive while the statement is open.

use std::cell::Cell;
use std::io::Write;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use diesel::pg::{CopyFormat, PgConnection};
use diesel::prelude::*;
use diesel::result::Error;

use super::audit::NewAuditEvent;
use super::schema::audit_events;

/// Events recorded together, sent into the stream as one piece.
pub type Chunk = Arc<Vec<NewAuditEvent>>;

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
const COLUMNS: i16 = 8;
/// 2000-01-01T00:00:00Z in microseconds since the Unix epoch.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// How many rows end a `COPY` statement (after the chunk that reaches it).
/// PostgreSQL inserts a binary copy's rows 1,000 at a time, each group a burst of about a
/// millisecond on one core that preempted labgate's workers every 19 ms at 50,000 handouts a
/// second; a statement that ends sooner inserts what it holds, in a quarter of the time.
pub const ROWS_PER_COPY: usize = 256;

/// Copies every chunk received into `audit_events`, in statements of about `ROWS_PER_COPY`
/// rows, all in one transaction that commits once the sender is dropped; nothing is written if
/// any part fails. Returns the rows written.
pub fn copy(conn: &mut PgConnection, chunks: &Receiver<Chunk>) -> QueryResult<usize> {
    conn.transaction(|conn| {
        let mut written = 0;
        // A statement starts with its first chunk in hand: none is opened for nothing.
        while let Ok(first) = chunks.recv() {
            let (rows, sender_gone) = copy_statement(conn, first, chunks)?;
            written += rows;
            if sender_gone {
                break;
            }
        }
        Ok(written)
    })
}

/// One `COPY` of `first` and the chunks after it, until `ROWS_PER_COPY` rows or the sender's
/// end: the rows written, and whether the sender has gone.
fn copy_statement(
    conn: &mut PgConnection,
    first: Chunk,
    chunks: &Receiver<Chunk>,
) -> QueryResult<(usize, bool)> {
    use audit_events as events;
    // diesel may call the writing closure as `Fn`: what it learns is kept in cells.
    let first = Cell::new(Some(first));
    let sender_gone = Cell::new(false);
    let rows = diesel::copy_from(events::table)
        .from_raw_data(
            (
                events::at,
                events::kind,
                events::actor,
                events::instance,
                events::subject,
                events::connection_id,
                events::scopes,
                events::detail,
            ),
            |sink: &mut dyn Write| -> QueryResult<()> {
                let mut data = Vec::with_capacity(16 * 1024);
                data.extend_from_slice(SIGNATURE);
                data.extend_from_slice(&0i32.to_be_bytes()); // flags
                data.extend_from_slice(&0i32.to_be_bytes()); // header extension
                let mut rows = 0;
                let mut next = first.take();
                while let Some(chunk) = next {
                    for event in chunk.iter() {
                        encode(event, &mut data)?;
                    }
                    rows += chunk.len();
                    sink.write_all(&data).map_err(io_failed)?;
                    data.clear();
                    if rows >= ROWS_PER_COPY {
                        break;
                    }
                    next = chunks.recv().ok();
                    sender_gone.set(next.is_none());
                }
                data.extend_from_slice(&(-1i16).to_be_bytes()); // end of data
                sink.write_all(&data).map_err(io_failed)
            },
        )
        .with_format(CopyFormat::Binary)
        .execute(conn)?;
    Ok((rows, sender_gone.get()))
}

fn encode(event: &NewAuditEvent, data: &mut Vec<u8>) -> QueryResult<()> {
    data.extend_from_slice(&COLUMNS.to_be_bytes());
    // A timestamp is microseconds since 2000-01-01, as PostgreSQL keeps it.
    let micros = event.at.0.and_utc().timestamp_micros() - POSTGRES_EPOCH_MICROS;
    data.extend_from_slice(&8i32.to_be_bytes());
    data.extend_from_slice(&micros.to_be_bytes());
    let texts = [
        Some(&event.kind),
        Some(&event.actor),
        event.instance.as_ref(),
        event.subject.as_ref(),
        event.connection_id.as_ref(),
        event.scopes.as_ref(),
        event.detail.as_ref(),
    ];
    for text in texts {
        match text {
            Some(text) => {
                let length = i32::try_from(text.len())
                    .map_err(|_| Error::SerializationError("an audit text is too long".into()))?;
                data.extend_from_slice(&length.to_be_bytes());
                data.extend_from_slice(text.as_bytes());
            }
            None => data.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    Ok(())
}

fn io_failed(error: std::io::Error) -> Error {
    Error::SerializationError(Box::new(error))
}
