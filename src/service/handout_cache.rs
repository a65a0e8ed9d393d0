//! What handouts read (the service, the instance, the subject's connections), remembered until
//! the database changes, so that handing out a fresh token needs no trip to the database. Token
//! exchanges remember what they read under the same generation (`usable_generation`).
//!
//! Validity is one generation number. This process bumps it after every `Context::db` call (the
//! conservative default: anything may have written); `Context::db_read` leaves it alone. A view
//! is used only under the generation it was read in, so it never outlives a change this process
//! made. Changes other processes commit to PostgreSQL bump it when the change feed hears them,
//! normally within its 10 ms poll (`db::changes`): as if that handout had come that much earlier.
//! The feed proves itself alive with a heartbeat every second; while it is down, or silent for
//! `DEAF_AFTER` (a listener stuck on a dead socket), nothing remembered is used. Refreshes never
//! read from here: they read the row under its lease.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use chrono::NaiveDateTime;
use quick_cache::Equivalent;
use quick_cache::sync::Cache;

use super::handed_token::Credentials;
use super::principal::Service;
use crate::crypto::Sealer;
use crate::db::changes::{DEAF_AFTER, Feed};
use crate::db::connections::ConnectionRow;
use crate::db::instances::InstanceSummary;
use crate::domain::ScopeSet;

/// Subjects remembered at once; the least used are forgotten first.
const CAPACITY: usize = 10_000;

pub struct HandoutCache {
    generation: AtomicU64,
    hearing: Hearing,
    views: Cache<HandoutKey, Arc<HandoutView>>,
}

/// How this process learns of every change to the database.
enum Hearing {
    /// It makes them all (SQLite serves one process).
    Alone,
    /// Others' arrive through the change feed: trusted while its heartbeat is recent.
    Feed {
        started: Instant,
        /// Milliseconds from `started` to the last heartbeat heard; 0 while not listening.
        heartbeat_at: AtomicU64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HandoutKey {
    pub service_id: String,
    pub instance: String,
    pub subject: String,
}

/// A `HandoutKey` borrowed from the request, to look a view up without allocating. Its fields
/// hash as the owned key's do (a `&str` as its `String`), in the same order.
#[derive(Debug, Clone, Copy, Hash)]
pub struct HandoutKeyRef<'a> {
    pub service_id: &'a str,
    pub instance: &'a str,
    pub subject: &'a str,
}

impl HandoutKeyRef<'_> {
    pub fn to_key(self) -> HandoutKey {
        HandoutKey {
            service_id: self.service_id.to_owned(),
            instance: self.instance.to_owned(),
            subject: self.subject.to_owned(),
        }
    }
}

impl Equivalent<HandoutKey> for HandoutKeyRef<'_> {
    fn equivalent(&self, key: &HandoutKey) -> bool {
        self.service_id == key.service_id
            && self.instance == key.instance
            && self.subject == key.subject
    }
}

/// A connection as a handout weighs it: its row, and the scopes it grants, parsed once.
pub struct Held {
    pub row: ConnectionRow,
    pub granted: ScopeSet,
    /// What handing out its token gives, built by the first handout: a remembered view is
    /// handed out many times, and it never outlives the row it was read with.
    handed: OnceLock<Arc<Credentials>>,
}

impl Held {
    pub fn new(row: ConnectionRow) -> Self {
        Self {
            granted: ScopeSet::granted(row.scopes.split_whitespace()),
            handed: OnceLock::new(),
            row,
        }
    }

    /// The connection's token on `instance`, opened once per view, promised until `expires_at`
    /// (which the row alone decides).
    pub fn credentials(
        &self,
        sealer: &Sealer,
        expires_at: NaiveDateTime,
        instance: &InstanceSummary,
    ) -> Result<Arc<Credentials>, anyhow::Error> {
        if let Some(handed) = self.handed.get() {
            return Ok(handed.clone());
        }
        let handed = Credentials::open(
            sealer,
            &self.row,
            expires_at,
            self.granted.clone(),
            instance,
        )?;
        Ok(self.handed.get_or_init(|| Arc::new(handed)).clone())
    }
}

/// The database as one handout read it.
pub struct HandoutView {
    /// `None`: deleted.
    pub service: Option<Service>,
    pub instance: Option<InstanceSummary>,
    /// Every connection of the subject on the instance, whatever its status.
    pub held: Vec<Held>,
    generation: u64,
}

impl HandoutCache {
    /// For a database only this process changes.
    pub fn alone() -> Self {
        Self::hearing(Hearing::Alone)
    }

    /// For a database other processes change too: nothing is used until `hear` reports the
    /// change feed listening.
    pub fn with_change_feed() -> Self {
        Self::hearing(Hearing::Feed {
            started: Instant::now(),
            heartbeat_at: AtomicU64::new(0),
        })
    }

    fn hearing(hearing: Hearing) -> Self {
        Self {
            generation: AtomicU64::new(0),
            hearing,
            views: Cache::new(CAPACITY),
        }
    }

    /// To be read before the database is: a change that commits after this is then sure to
    /// outdate the view.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Something a handout reads may have changed: every view read so far is outdated.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// What the change feed reports.
    pub fn hear(&self, feed: Feed) {
        let Hearing::Feed {
            started,
            heartbeat_at,
        } = &self.hearing
        else {
            return;
        };
        let now = || feed_clock(started);
        match feed {
            // Changes before it may have gone unheard: outdate first, then trust.
            Feed::Listening => {
                self.changed();
                heartbeat_at.store(now(), Ordering::SeqCst);
            }
            Feed::Heard { change, heartbeat } => {
                if change {
                    self.changed();
                }
                if heartbeat {
                    heartbeat_at.store(now(), Ordering::SeqCst);
                }
            }
            Feed::Lost => {
                heartbeat_at.store(0, Ordering::SeqCst);
                self.changed();
            }
        }
    }

    /// Whether every change committed so far has been heard, as far as this process can tell
    /// `now_ms` after the feed's start.
    fn hearing_all_changes_at(&self, now_ms: u64) -> bool {
        match &self.hearing {
            Hearing::Alone => true,
            Hearing::Feed { heartbeat_at, .. } => match heartbeat_at.load(Ordering::SeqCst) {
                0 => false,
                at => now_ms <= at + DEAF_AFTER.as_millis() as u64,
            },
        }
    }

    /// The generation, when what was read in it may be used: every change committed so far
    /// has been heard. `None` while the change feed is down or silent.
    pub fn usable_generation(&self) -> Option<u64> {
        let now_ms = match &self.hearing {
            Hearing::Alone => 0,
            Hearing::Feed { started, .. } => feed_clock(started),
        };
        self.hearing_all_changes_at(now_ms)
            .then(|| self.generation())
    }

    pub fn get(&self, key: &HandoutKeyRef<'_>) -> Option<Arc<HandoutView>> {
        let generation = self.usable_generation()?;
        self.views
            .get(key)
            .filter(|view| view.generation == generation)
    }

    /// Remembers a view read under `generation` (taken before reading), and returns it.
    pub fn remember(
        &self,
        key: HandoutKey,
        generation: u64,
        service: Option<Service>,
        instance: Option<InstanceSummary>,
        held: Vec<ConnectionRow>,
    ) -> Arc<HandoutView> {
        let held = held.into_iter().map(Held::new).collect();
        let view = Arc::new(HandoutView {
            service,
            instance,
            held,
            generation,
        });
        if generation == self.generation() {
            self.views.insert(key, view.clone());
        }
        view
    }
}

/// Milliseconds since the feed's start; never 0, which means "not listening".
fn feed_clock(started: &Instant) -> u64 {
    started.elapsed().as_millis().max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: HandoutKeyRef<'static> = HandoutKeyRef {
        service_id: "svc",
        instance: "corp",
        subject: "17",
    };

    fn key() -> HandoutKey {
        KEY.to_key()
    }

    #[test]
    fn a_borrowed_key_finds_what_the_owned_key_stored_and_nothing_else() {
        let cache = HandoutCache::alone();
        cache.remember(key(), cache.generation(), None, None, Vec::new());
        assert!(cache.get(&KEY).is_some());
        let other = HandoutKeyRef {
            subject: "18",
            ..KEY
        };
        assert!(cache.get(&other).is_none());
    }

    #[test]
    fn a_view_is_used_only_in_the_generation_it_was_read_in() {
        let cache = HandoutCache::alone();
        let read_in = cache.generation();
        cache.remember(key(), read_in, None, None, Vec::new());
        assert!(cache.get(&KEY).is_some());
        cache.changed();
        assert!(cache.get(&KEY).is_none());
    }

    #[test]
    fn a_view_read_across_a_change_is_not_remembered() {
        let cache = HandoutCache::alone();
        let read_in = cache.generation();
        cache.changed(); // a write committed while the view was being read
        cache.remember(key(), read_in, None, None, Vec::new());
        assert!(cache.get(&KEY).is_none());
    }

    #[test]
    fn nothing_is_used_while_the_change_feed_is_down() {
        let cache = HandoutCache::with_change_feed();
        cache.remember(key(), cache.generation(), None, None, Vec::new());
        assert!(cache.get(&KEY).is_none(), "not listening yet");
        cache.hear(Feed::Listening);
        cache.remember(key(), cache.generation(), None, None, Vec::new());
        assert!(cache.get(&KEY).is_some());
        cache.hear(Feed::Heard {
            change: true,
            heartbeat: false,
        });
        assert!(
            cache.get(&KEY).is_none(),
            "another process changed something"
        );
        cache.remember(key(), cache.generation(), None, None, Vec::new());
        cache.hear(Feed::Lost);
        assert!(cache.get(&KEY).is_none());
    }

    #[test]
    fn a_silent_change_feed_is_not_trusted() {
        let cache = HandoutCache::with_change_feed();
        cache.hear(Feed::Listening);
        let heard_at = match &cache.hearing {
            Hearing::Feed { heartbeat_at, .. } => heartbeat_at.load(Ordering::SeqCst),
            Hearing::Alone => unreachable!("made with a change feed"),
        };
        let deaf_after = DEAF_AFTER.as_millis() as u64;
        assert!(cache.hearing_all_changes_at(heard_at + deaf_after));
        // The listener stuck on a dead socket: no heartbeat, no report, yet no trust.
        assert!(!cache.hearing_all_changes_at(heard_at + deaf_after + 1));
    }
}
