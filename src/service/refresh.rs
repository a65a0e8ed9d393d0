//! Refreshing tokens without ever losing a grant to GitLab's rotation (GITLAB.md: a refresh
//! revokes the old pair at once, with no grace).
//!
//! - One refresh per connection at a time: a lock per connection within the process, and a
//!   lease on the row (compare-and-set) across every process sharing the database. Waiters
//!   get the new token once it is stored.
//! - The refresh runs in a task of its own, so a caller that goes away (a client hanging up)
//!   cannot cancel it between GitLab's commit and labgate's.
//! - Before the request leaves, the row is marked "refresh in flight"; the mark is cleared
//!   only once the outcome is known. A timeout, a broken or unreadable answer, a 5xx or a crash
//!   leaves it set: GitLab may have rotated the pair without labgate learning the new one.
//! - Such an unknown outcome is never followed by a blind retry. Once GitLab has surely
//!   finished with the request (twice the request timeout), labgate asks GitLab whether the old
//!   access token still works (`/oauth/token/info`): if it does, nothing rotated and a refresh
//!   is safe; if it died before its expiry, the rotation happened and its answer was lost, so
//!   the connection needs re-authorization (recorded, audited).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, TimeDelta, Utc};
use futures_util::StreamExt;
use secrecy::ExposeSecret;

use super::audit::AuditEvent;
use super::connect::Registration;
use super::connections::{open_token, token_field};
use super::{Context, ServiceError};
use crate::config::RefresherSettings;
use crate::db::instances::InstanceRow;
use crate::db::{self, connections::ConnectionRow, connections::RefreshedTokens};
use crate::domain::ConnectionStatus;
use crate::oauth::RefreshOutcome;

/// How often a waiter looks again at a row another process is refreshing.
const POLL: Duration = Duration::from_millis(50);
/// What to tell callers to wait when GitLab gave no `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Per-process coordination: one lock per connection, and this process's lease name.
pub struct Refreshes {
    owner: String,
    /// Refreshes under way in this process, for a shutdown that lets them finish.
    in_flight: AtomicUsize,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    backoff: Mutex<HashMap<String, (Instant, Duration)>>,
}

impl Default for Refreshes {
    fn default() -> Self {
        Self {
            owner: uuid::Uuid::new_v4().to_string(),
            in_flight: AtomicUsize::new(0),
            locks: Mutex::default(),
            backoff: Mutex::default(),
        }
    }
}

#[derive(Debug)]
pub enum RefreshError {
    /// The grant is dead; the person must connect again. The reason is recorded on the row.
    Reauthorization(String),
    /// GitLab cannot refresh now; stored tokens are untouched.
    Unavailable {
        retry_after: Duration,
        reason: String,
    },
    /// The connection is revoked or gone.
    Gone,
    Storage(ServiceError),
}

impl From<ServiceError> for RefreshError {
    fn from(error: ServiceError) -> Self {
        Self::Storage(error)
    }
}

/// Why a token is wanted: to hand it out, or to keep the connection healthy.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A token valid long enough is handed out even while an earlier refresh's outcome is
    /// unknown: the stored tokens are untouched until GitLab says more.
    Handout,
    /// The background refresher also settles unknown outcomes.
    Maintain,
}

/// The connection's row once its token is valid until at least `need_until`, refreshing first
/// when it is not. `seen` is the row as the caller just read it.
pub async fn ensure_fresh(
    ctx: &Context,
    seen: ConnectionRow,
    need_until: NaiveDateTime,
    purpose: Purpose,
) -> Result<ConnectionRow, RefreshError> {
    let deadline = Instant::now() + lease_length(ctx) + Duration::from_secs(2);
    let id = seen.id.clone();
    let mut seen = Some(seen);
    loop {
        let row = match seen.take() {
            Some(row) => usable(row)?,
            None => load(ctx, &id).await?,
        };
        if satisfies(&ctx.refresher, &row, need_until, purpose) {
            return Ok(row);
        }
        // One refresh per connection in this process; the others wait here for its result.
        let lock = ctx.refreshes.lock_for(&id);
        let guard = lock.lock_owned().await;
        // Its own task, lease included: nothing the caller does (hanging up) can cut it off
        // between taking the lease, GitLab's answer and the database.
        let (task_ctx, task_id) = (ctx.clone(), id.clone());
        let task = tokio::spawn(async move {
            let _held = guard;
            let ctx = &task_ctx;
            ctx.refreshes.in_flight.fetch_add(1, Ordering::SeqCst);
            let outcome = match claim(ctx, &task_id, need_until, purpose).await {
                Ok(Claim::Settled(row)) => Some(usable(*row)),
                Ok(Claim::Busy) => None,
                Ok(Claim::Leased(leased)) => Some(refresh_with_lease(ctx, *leased).await),
                Err(e) => Some(Err(e)),
            };
            ctx.refreshes.in_flight.fetch_sub(1, Ordering::SeqCst);
            outcome
        });
        match task.await {
            Ok(Some(outcome)) => return outcome,
            Ok(None) => {}
            Err(e) => return Err(RefreshError::Storage(ServiceError::Internal(e.into()))),
        }
        // Another process holds the lease: wait for its result, or for its lease to run out.
        if Instant::now() > deadline {
            return Err(RefreshError::Unavailable {
                retry_after: Duration::from_secs(1),
                reason: "another labgate process is still refreshing this connection".into(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Where a connection stands once this process has asked for its refresh lease.
enum Claim {
    /// No refresh is needed (any more), or the row is no longer active: as read now.
    Settled(Box<ConnectionRow>),
    /// Another process holds the lease, or took it over before this claim could mark the row.
    Busy,
    /// This process holds the lease and the row needs a refresh.
    Leased(Box<Leased>),
}

struct Leased {
    row: ConnectionRow,
    instance: Option<InstanceRow>,
    mark: Mark,
}

/// Who marked the row "refresh in flight".
enum Mark {
    /// This claim, just now.
    Ours,
    /// An earlier refresh, at that time, whose outcome is unknown and must be settled first.
    Earlier(NaiveDateTime),
}

/// In one trip to the database: reads the row; if it needs a refresh, takes the lease (compare
/// and set), reads the row again under it (a refresh may have finished meanwhile), and marks the
/// refresh in flight unless an earlier outcome is pending.
async fn claim(
    ctx: &Context,
    id: &str,
    need_until: NaiveDateTime,
    purpose: Purpose,
) -> Result<Claim, RefreshError> {
    let refresher = ctx.refresher.clone();
    let (id, owner) = (id.to_owned(), ctx.refreshes.owner.clone());
    let lease_until = lease_length(ctx);
    let claimed = ctx
        .db(move |conn| {
            let needs_refresh = |row: &ConnectionRow| {
                row.status == ConnectionStatus::Active.as_str()
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
pub(super) async fn hold_for_revocation(
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
            .db(move |conn| db::connections::take_lease(conn, &lease_id, &owner, until, now))
            .await?
            || Instant::now() > deadline
        {
            let owned = id.to_owned();
            return ctx
                .db(move |conn| db::connections::find(conn, &owned))
                .await;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One sweep of the background refresher: refreshes active connections due within the margin
/// (plus each one's jitter), and settles earlier unknown outcomes, at most `concurrency` at a
/// time, skipping instances in back-off. Returns how many were refreshed.
pub async fn sweep(ctx: &Context) -> Result<usize, ServiceError> {
    let settings = ctx.refresher.clone();
    let now = Utc::now().naive_utc();
    let horizon = now + TimeDelta::from_std(settings.margin + settings.jitter).unwrap_or_default();
    let due = ctx
        .db(move |conn| db::connections::due_for_refresh(conn, horizon, now, 100_000))
        .await?;
    let due: Vec<ConnectionRow> = due
        .into_iter()
        .filter(|row| {
            let margin = settings.margin + jitter(&row.id, settings.jitter);
            row.refresh_in_flight_since.is_some()
                || row.expires_at < now + TimeDelta::from_std(margin).unwrap_or_default()
        })
        .collect();
    let refreshed = futures_util::stream::iter(due)
        .map(|row| async move {
            let instance_id = row.instance_id.clone();
            if ctx.refreshes.backing_off(&instance_id) {
                return false;
            }
            let need_until =
                Utc::now().naive_utc() + TimeDelta::from_std(settings.margin).unwrap_or_default();
            match ensure_fresh(ctx, row, need_until, Purpose::Maintain).await {
                Ok(_) => {
                    ctx.refreshes.back_off_ends(&instance_id);
                    true
                }
                Err(RefreshError::Unavailable { retry_after, .. }) => {
                    ctx.refreshes.back_off(&instance_id, retry_after);
                    false
                }
                Err(_) => false,
            }
        })
        .buffer_unordered(settings.concurrency)
        .filter(|refreshed| std::future::ready(*refreshed))
        .count()
        .await;
    Ok(refreshed)
}

/// Runs `sweep` every interval until the process ends.
pub async fn run_background(ctx: Context) {
    let mut ticks = tokio::time::interval(ctx.refresher.interval);
    loop {
        ticks.tick().await;
        if let Err(e) = sweep(&ctx).await {
            tracing::warn!(error.cause = %e, "background refresh sweep failed");
        }
    }
}

/// A fixed spread per connection, so that connections made together do not come due together.
fn jitter(id: &str, range: Duration) -> Duration {
    let spread = range.as_millis().max(1) as u64;
    let seed = id
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    Duration::from_millis(seed % spread)
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

    fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        locks.entry(id.to_owned()).or_default().clone()
    }

    fn backing_off(&self, instance_id: &str) -> bool {
        let backoff = self
            .backoff
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        backoff
            .get(instance_id)
            .is_some_and(|(until, _)| Instant::now() < *until)
    }

    fn back_off_ends(&self, instance_id: &str) {
        self.backoff
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(instance_id);
    }

    /// Doubles the instance's back-off (from GitLab's `Retry-After` or 30 s, up to 10 minutes).
    fn back_off(&self, instance_id: &str, retry_after: Duration) {
        let mut backoff = self
            .backoff
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let previous = backoff
            .get(instance_id)
            .map_or(Duration::ZERO, |(_, length)| *length);
        let length = (previous * 2)
            .max(retry_after)
            .min(Duration::from_secs(600));
        backoff.insert(instance_id.to_owned(), (Instant::now() + length, length));
    }
}

/// Long enough for a probe, a refresh (each bounded by the request timeout) and storing the
/// result (bounded by the pool timeout), with room to spare.
fn lease_length(ctx: &Context) -> Duration {
    ctx.outbound.request_timeout * 3 + ctx.outbound.connect_timeout + Duration::from_secs(10)
}

/// After an unknown outcome, how long GitLab may still be working on the request.
fn settle_time(ctx: &Context) -> Duration {
    ctx.outbound.request_timeout * 2
}

/// Whether the row's token serves `purpose` until `need_until` without a refresh.
pub fn satisfies(
    refresher: &RefresherSettings,
    row: &ConnectionRow,
    need_until: NaiveDateTime,
    purpose: Purpose,
) -> bool {
    let active = row.status == ConnectionStatus::Active.as_str();
    match purpose {
        Purpose::Handout => active && valid_until(refresher, row) >= need_until,
        Purpose::Maintain => {
            active && row.refresh_in_flight_since.is_none() && row.expires_at >= need_until
        }
    }
}

/// Until when a token handed out now keeps working: its expiry, or, with the background
/// refresher on, the moment the refresher will rotate it (a refresh revokes the old token at
/// once). Handing out the expiry instead would promise validity the refresher then takes away.
pub fn valid_until(refresher: &RefresherSettings, row: &ConnectionRow) -> NaiveDateTime {
    if !refresher.enabled {
        return row.expires_at;
    }
    let margin = refresher.margin + jitter(&row.id, refresher.jitter);
    row.expires_at - TimeDelta::from_std(margin).unwrap_or_default()
}

async fn load(ctx: &Context, id: &str) -> Result<ConnectionRow, RefreshError> {
    let owned = id.to_owned();
    let row = ctx
        .db(move |conn| db::connections::find(conn, &owned))
        .await?
        .ok_or(RefreshError::Gone)?;
    usable(row)
}

/// The row if it is active; otherwise why no token comes from it.
fn usable(row: ConnectionRow) -> Result<ConnectionRow, RefreshError> {
    match row.status.as_str() {
        "active" => Ok(row),
        "reauthorization_required" => Err(RefreshError::Reauthorization(
            row.status_reason
                .clone()
                .unwrap_or_else(|| "invalid_grant".into()),
        )),
        _ => Err(RefreshError::Gone),
    }
}

/// Holding the lease: resolves an earlier unknown outcome, then refreshes once.
async fn refresh_with_lease(ctx: &Context, leased: Leased) -> Result<ConnectionRow, RefreshError> {
    let Leased {
        row,
        instance,
        mark,
    } = leased;
    let marked = matches!(mark, Mark::Ours);
    let id = row.id.as_str();
    let lease = Lease { ctx, id };
    // Until the request leaves, nothing was sent: giving up clears this claim's own mark.
    let prepared = instance.ok_or(RefreshError::Gone).and_then(|instance| {
        let registration =
            Registration::of(ctx, &instance).map_err(|e| RefreshError::Storage(e.into()))?;
        let http = registration
            .http_client(ctx)
            .map_err(|e| RefreshError::Storage(ServiceError::Internal(anyhow::anyhow!(e))))?;
        let access_token = open_token(&ctx.sealer, &row, "access_token")
            .map_err(|e| RefreshError::Storage(e.into()))?;
        let refresh_token = open_token(&ctx.sealer, &row, "refresh_token")
            .map_err(|e| RefreshError::Storage(e.into()))?;
        Ok((instance, registration, http, access_token, refresh_token))
    });
    let (instance, registration, http, access_token, refresh_token) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => {
            lease.release(marked).await;
            return Err(e);
        }
    };

    if let Mark::Earlier(since) = mark {
        let waited = (Utc::now().naive_utc() - since)
            .to_std()
            .unwrap_or_default();
        if waited < settle_time(ctx) {
            lease.release(false).await;
            return Err(RefreshError::Unavailable {
                retry_after: settle_time(ctx) - waited + Duration::from_millis(100),
                reason: "the outcome of the last refresh is not known yet".into(),
            });
        }
        match registration
            .app()
            .access_token_alive(&http, &access_token)
            .await
        {
            Ok(true) => {}
            // Dead before its expiry: GitLab rotated the pair and its answer was lost.
            Ok(false) if row.expires_at > Utc::now().naive_utc() => {
                let reason = "GitLab rotated the tokens but its answer was lost";
                return Err(reauthorize(
                    ctx,
                    &lease,
                    &row,
                    &instance.name,
                    "refresh_response_lost",
                    reason,
                )
                .await);
            }
            // Expired anyway, so the probe cannot tell. Refreshing is the question GitLab can
            // answer: a rotated (dead) refresh token gets invalid_grant, the same verdict, and
            // GitLab revokes nothing else on reuse (GITLAB.md); a live one refreshes. Marking the
            // grant dead instead would kill grants that a long outage never touched.
            Ok(false) => {}
            Err(e) => {
                lease.release(false).await;
                return Err(unavailable(
                    DEFAULT_RETRY_AFTER,
                    format!("cannot ask GitLab about the last refresh: {e}"),
                ));
            }
        }
        let now = Utc::now().naive_utc();
        let (marked_id, owner) = (id.to_owned(), ctx.refreshes.owner.clone());
        if !ctx
            .db(move |conn| db::connections::mark_in_flight(conn, &marked_id, &owner, now))
            .await?
        {
            return Err(unavailable(
                Duration::from_secs(1),
                "the refresh lease was lost".into(),
            ));
        }
    }
    let started = Instant::now();
    let outcome = registration.app().refresh(&http, &refresh_token).await;
    let seconds = started.elapsed().as_secs_f64();

    match outcome {
        RefreshOutcome::Refreshed {
            access_token,
            refresh_token,
            expires_at,
        } => {
            let tokens = Sealed {
                access: ctx.sealer.seal(
                    token_field(id, "access_token"),
                    access_token.expose_secret().as_bytes(),
                ),
                refresh: ctx.sealer.seal(
                    token_field(id, "refresh_token"),
                    refresh_token.expose_secret().as_bytes(),
                ),
            };
            let stored = store_new_pair(ctx, id, tokens, expires_at.naive_utc()).await?;
            ctx.metrics.refresh(&instance.name, "ok", seconds);
            match stored.ok_or(RefreshError::Gone).and_then(usable) {
                // Revoked (or re-authorized) while GitLab was answering: the new pair must not
                // outlive the decision.
                Err(RefreshError::Gone | RefreshError::Reauthorization(_)) => {
                    if let Err(e) = registration.app().revoke(&http, &refresh_token).await {
                        tracing::warn!(connection.id = %id, error.cause = %e, "could not revoke a pair refreshed after revocation");
                    }
                    Err(RefreshError::Gone)
                }
                other => other,
            }
        }
        RefreshOutcome::InvalidGrant => {
            ctx.metrics
                .refresh(&instance.name, "invalid_grant", seconds);
            let reason = "GitLab refused the refresh token (invalid_grant)";
            Err(reauthorize(ctx, &lease, &row, &instance.name, "invalid_grant", reason).await)
        }
        RefreshOutcome::Throttled { retry_after } => {
            ctx.metrics.refresh(&instance.name, "unavailable", seconds);
            lease.release(true).await;
            Err(unavailable(
                retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
                "GitLab is throttling refreshes (429)".into(),
            ))
        }
        RefreshOutcome::NotSent(reason) | RefreshOutcome::Refused(reason) => {
            ctx.metrics.refresh(&instance.name, "unavailable", seconds);
            lease.release(true).await;
            record_failure(ctx, &row, &instance.name, &reason).await;
            Err(unavailable(
                DEFAULT_RETRY_AFTER,
                format!("GitLab did not refresh: {reason}"),
            ))
        }
        RefreshOutcome::Unknown(reason) => {
            ctx.metrics.refresh(&instance.name, "unknown", seconds);
            tracing::warn!(
                instance.name = %instance.name, connection.id = %id, error.cause = %reason,
                "refresh outcome unknown: GitLab will be asked before anything is retried"
            );
            lease.release(false).await;
            record_failure(
                ctx,
                &row,
                &instance.name,
                &format!("outcome unknown: {reason}"),
            )
            .await;
            Err(unavailable(
                settle_time(ctx),
                format!("GitLab's answer to the refresh was lost: {reason}"),
            ))
        }
    }
}

async fn reauthorize(
    ctx: &Context,
    lease: &Lease<'_>,
    row: &ConnectionRow,
    instance: &str,
    code: &str,
    reason: &str,
) -> RefreshError {
    let (id, status, code_owned) = (
        row.id.clone(),
        ConnectionStatus::ReauthorizationRequired.as_str(),
        code.to_owned(),
    );
    let now = Utc::now().naive_utc();
    if let Err(e) = ctx
        .db(move |conn| db::connections::set_status(conn, &id, status, Some(&code_owned), now))
        .await
    {
        lease.release(false).await;
        return RefreshError::Storage(e);
    }
    tracing::warn!(instance.name = %instance, connection.id = %row.id, reason, "connection needs re-authorization");
    let event = AuditEvent::new("connection_reauthorization_required", "labgate")
        .instance(instance)
        .subject(&row.subject)
        .connection(&row.id)
        .detail(format!("{code}: {reason}"));
    ctx.audit.record(event).await;
    RefreshError::Reauthorization(code.to_owned())
}

async fn record_failure(ctx: &Context, row: &ConnectionRow, instance: &str, reason: &str) {
    let event = AuditEvent::new("refresh_failed", "labgate")
        .instance(instance)
        .subject(&row.subject)
        .connection(&row.id)
        .detail(reason);
    ctx.audit.record(event).await;
}

fn unavailable(retry_after: Duration, reason: String) -> RefreshError {
    RefreshError::Unavailable {
        retry_after,
        reason,
    }
}

struct Sealed {
    access: Vec<u8>,
    refresh: Vec<u8>,
}

/// Stores a pair GitLab has just issued, trying again while the database does not answer: it
/// is the only live pair, and dropping it would lose the grant. Returns the row as stored
/// (`None`: deleted meanwhile). Once stored, it is never written again: by then another refresh
/// may have replaced it.
async fn store_new_pair(
    ctx: &Context,
    id: &str,
    tokens: Sealed,
    expires_at: NaiveDateTime,
) -> Result<Option<ConnectionRow>, RefreshError> {
    let tokens = Arc::new(tokens);
    let mut attempt = 0;
    loop {
        let (stored_id, sealed) = (id.to_owned(), tokens.clone());
        let stored = ctx
            .db(move |conn| {
                let tokens = RefreshedTokens {
                    access_token_sealed: &sealed.access,
                    refresh_token_sealed: &sealed.refresh,
                    expires_at,
                };
                db::connections::store_refresh(conn, &stored_id, tokens, Utc::now().naive_utc())?;
                // Read back in the same trip; a failure here must not store the pair again.
                Ok(db::connections::find(conn, &stored_id).ok())
            })
            .await;
        match stored {
            Ok(Some(row)) => return Ok(row),
            Ok(None) => return Ok(load_stored(ctx, id).await?),
            Err(e) if attempt < 30 => {
                attempt += 1;
                tracing::error!(connection.id = %id, error.cause = %e, attempt, "cannot store a refreshed pair yet; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(RefreshError::Storage(e)),
        }
    }
}

/// The row after its new pair was stored, when reading it back in the same trip failed.
async fn load_stored(ctx: &Context, id: &str) -> Result<Option<ConnectionRow>, ServiceError> {
    let owned = id.to_owned();
    ctx.db_read(move |conn| db::connections::find(conn, &owned))
        .await
}

/// This process's hold on a row's refresh lease.
struct Lease<'a> {
    ctx: &'a Context,
    id: &'a str,
}

impl Lease<'_> {
    /// Gives the lease back; `outcome_known` also clears the in-flight mark.
    async fn release(&self, outcome_known: bool) {
        let (id, owner) = (self.id.to_owned(), self.ctx.refreshes.owner.clone());
        if let Err(e) = self
            .ctx
            .db(move |conn| db::connections::release_lease(conn, &id, &owner, outcome_known))
            .await
        {
            tracing::warn!(connection.id = %self.id, error.cause = %e, "could not release a refresh lease; it will expire");
        }
    }
}
