//! Per-process coordination and the lease: one refresh per connection in this process (a lock
//! per connection), and one across every process sharing the database (a lease on the row,
//! taken by compare-and-set).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, TimeDelta, Utc};

use super::backoff::InstanceBackoff;
use super::timing::satisfies;
use super::{POLL, Purpose, RefreshError};
use crate::db::instances::InstanceRow;
use crate::db::{self, connections::ConnectionRow};
use crate::domain::ConnectionStatus;
use crate::service::{Context, ServiceError};

/// Per-process coordination: one lock per connection, and this process's lease name.
pub struct Refreshes {
    pub(super) owner: String,
    /// Refreshes under way in this process, for a shutdown that lets them finish.
    in_flight: AtomicUsize,
    locks: Mutex<ConnectionLocks>,
    pub(super) backoff: InstanceBackoff,
}

impl Default for Refreshes {
    fn default() -> Self {
        Self {
            // Names the process in the rotation ledger; unique across processes and restarts.
            owner: format!(
                "pid {} ({})",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            ),
            in_flight: AtomicUsize::new(0),
            locks: Mutex::default(),
            backoff: InstanceBackoff::default(),
        }
    }
}

/// The locks of connections refreshed lately. Unused ones are dropped whenever the map has
/// doubled since the last pruning, so it stays within twice the number in use.
#[derive(Default)]
struct ConnectionLocks {
    by_connection: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
    prune_at: usize,
}

/// Below this many locks the map is never pruned.
const LOCKS_KEPT_WITHOUT_PRUNING: usize = 1024;

/// Counts a refresh as under way until dropped (a panicking refresh included).
pub(super) struct InFlight(Arc<Refreshes>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Refreshes {
    /// Waits (at most `limit`) for this process's refreshes under way to finish: a refresh cut
    /// off after GitLab's commit would lose its grant.
    pub async fn drain(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
    }

    pub(super) fn count_in_flight(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    pub(super) fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if locks.by_connection.len() >= locks.prune_at {
            // A lock only this map holds guards nothing: no one waits on it or holds it.
            locks
                .by_connection
                .retain(|_, lock| Arc::strong_count(lock) > 1);
            locks.prune_at = (locks.by_connection.len() * 2).max(LOCKS_KEPT_WITHOUT_PRUNING);
        }
        locks
            .by_connection
            .entry(id.to_owned())
            .or_default()
            .clone()
    }

    #[cfg(test)]
    fn locks_held(&self) -> usize {
        self.locks.lock().unwrap().by_connection.len()
    }
}

/// How long storing a new pair may keep trying while the database does not answer.
pub(super) const STORE_BUDGET: Duration = Duration::from_secs(15);

/// Long enough for a probe and a refresh (each bounded by the connect and request timeouts) and
/// for storing the result within `STORE_BUDGET`, with room to spare: the owner stops trying to
/// store before its lease ends, so no other process settles a row its owner may still write.
pub(super) fn lease_length(ctx: &Context) -> Duration {
    (ctx.outbound.request_timeout + ctx.outbound.connect_timeout) * 2
        + STORE_BUDGET
        + Duration::from_secs(5)
}

/// Where a connection stands once this process has asked for its refresh lease.
pub(super) enum Claim {
    /// No refresh is needed (any more), or the row is no longer active: as read now.
    Settled(Box<ConnectionRow>),
    /// Another process holds the lease, or took it over before this claim could mark the row.
    Busy,
    /// This process holds the lease and the row needs a refresh.
    Leased(Box<Leased>),
}

pub(super) struct Leased {
    pub(super) row: ConnectionRow,
    pub(super) instance: Option<InstanceRow>,
    pub(super) mark: Mark,
    /// When this process's lease ends (its own clock).
    pub(super) until: NaiveDateTime,
}

/// Who marked the row "refresh in flight".
pub(super) enum Mark {
    /// This claim, just now.
    Ours,
    /// An earlier refresh, at that time, whose outcome is unknown and must be settled first.
    Earlier(NaiveDateTime),
}

/// In one trip to the database: reads the row; if it needs a refresh, takes the lease (compare
/// and set), reads the row again under it (a refresh may have finished meanwhile), and marks the
/// refresh in flight unless an earlier outcome is pending.
pub(super) async fn claim(
    ctx: &Context,
    id: &str,
    need_until: NaiveDateTime,
    purpose: Purpose,
) -> Result<Claim, RefreshError> {
    let refresher = ctx.refresher.clone();
    let (id, owner) = (id.to_owned(), ctx.refreshes.owner.clone());
    let lease_until = lease_length(ctx);
    let claimed = ctx
        .db_write(move |conn| {
            let needs_refresh = |row: &ConnectionRow| {
                row.status == ConnectionStatus::Active
                    && !satisfies(&refresher, row, need_until, purpose)
            };
            let Some(row) = db::connections::find(conn, &id)? else {
                return Ok(None);
            };
            if !needs_refresh(&row) {
                return Ok(Some(Claim::Settled(Box::new(row))));
            }
            let now = Utc::now().naive_utc();
            let until = now + TimeDelta::from_std(lease_until).unwrap_or(TimeDelta::seconds(60));
            if !db::connections::take_lease(conn, &id, &owner, until, now)? {
                return Ok(Some(Claim::Busy));
            }
            let under_lease = (|| {
                let Some(row) = db::connections::find(conn, &id)? else {
                    return Ok(None);
                };
                if !needs_refresh(&row) {
                    db::connections::release_lease(conn, &id, &owner, false)?;
                    return Ok(Some(Claim::Settled(Box::new(row))));
                }
                let instance = db::instances::find_by_id(conn, &row.instance_id)?;
                let mark = match row.refresh_in_flight_since {
                    Some(since) => Mark::Earlier(since),
                    None if db::connections::mark_in_flight(conn, &id, &owner, now)? => Mark::Ours,
                    None => return Ok(Some(Claim::Busy)),
                };
                Ok(Some(Claim::Leased(Box::new(Leased {
                    row,
                    instance,
                    mark,
                    until,
                }))))
            })();
            if under_lease.is_err() {
                // Nothing was sent. Any mark stays: it may be an earlier refresh's, or ours
                // committed before the error, and a mark only makes the next attempt ask first.
                let _ = db::connections::release_lease(conn, &id, &owner, false);
            }
            under_lease
        })
        .await?;
    claimed.ok_or(RefreshError::Gone)
}

/// Takes the connection's refresh lease, waiting out a refresh in flight, so that a revocation
/// cannot be followed by a new pair. Returns the row as it stands under the lease.
pub(crate) async fn hold_for_revocation(
    ctx: &Context,
    id: &str,
) -> Result<Option<ConnectionRow>, ServiceError> {
    let deadline = Instant::now() + lease_length(ctx);
    let lock = ctx.refreshes.lock_for(id);
    let _held = lock.lock().await;
    loop {
        let now = Utc::now().naive_utc();
        let until = now + TimeDelta::from_std(lease_length(ctx)).unwrap_or(TimeDelta::seconds(60));
        let (owner, lease_id) = (ctx.refreshes.owner.clone(), id.to_owned());
        if ctx
            .db_write(move |conn| db::connections::take_lease(conn, &lease_id, &owner, until, now))
            .await?
            || Instant::now() > deadline
        {
            let owned = id.to_owned();
            return ctx
                .db_read(move |conn| db::connections::find(conn, &owned))
                .await;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// This process's hold on a row's refresh lease.
pub(super) struct Lease<'a> {
    pub(super) ctx: &'a Context,
    pub(super) id: &'a str,
    pub(super) until: NaiveDateTime,
}

impl Lease<'_> {
    /// Gives the lease back; `outcome_known` also clears the in-flight mark.
    pub(super) async fn release(&self, outcome_known: bool) {
        let (id, owner) = (self.id.to_owned(), self.ctx.refreshes.owner.clone());
        if let Err(e) = self
            .ctx
            .db_write(move |conn| db::connections::release_lease(conn, &id, &owner, outcome_known))
            .await
        {
            tracing::warn!(connection.id = %self.id, error.cause = %e, "could not release a refresh lease; it will expire");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_map_keeps_only_locks_in_use_once_it_grows() {
        let refreshes = Refreshes::default();
        let held: Vec<_> = (0..10)
            .map(|i| refreshes.lock_for(&format!("held-{i}")))
            .collect();
        for i in 0..5 * LOCKS_KEPT_WITHOUT_PRUNING {
            drop(refreshes.lock_for(&format!("done-{i}")));
        }
        assert!(refreshes.locks_held() <= 2 * LOCKS_KEPT_WITHOUT_PRUNING);
        // Locks in use survive pruning: a waiter and the holder still share one lock.
        for (i, lock) in held.iter().enumerate() {
            assert!(Arc::ptr_eq(lock, &refreshes.lock_for(&format!("held-{i}"))));
        }
    }
}
