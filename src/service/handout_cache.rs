//! What handouts read (the service, the instance, the subject's connections), remembered until
//! the database changes, so that handing out a fresh token needs no trip to the database.
//!
//! Validity is one generation number. This process bumps it after every `Context::db` call (the
//! conservative default: anything may have written); `Context::db_read` leaves it alone. Changes
//! other processes commit to PostgreSQL bump it when the change feed hears them (at most a poll
//! later, see `db::changes`), and while the feed is down nothing remembered is used. A view is
//! used only under the generation it was read in, so it never outlives a change this process
//! made, and outlives another process's change by at most the feed's poll: as if that handout had
//! come that much earlier. Refreshes never read from here: they read the row under its lease.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use quick_cache::sync::Cache;

use super::services::Service;
use crate::db::connections::ConnectionRow;
use crate::db::instances::InstanceSummary;

/// Subjects remembered at once; the least used are forgotten first.
const CAPACITY: usize = 10_000;

pub struct HandoutCache {
    generation: AtomicU64,
    /// Whether every change to the database is heard (always, for SQLite's one process).
    hearing_all_changes: AtomicBool,
    views: Cache<HandoutKey, Arc<HandoutView>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HandoutKey {
    pub service_id: String,
    pub instance: String,
    pub subject: String,
}

/// The database as one handout read it.
pub struct HandoutView {
    /// `None`: deleted.
    pub service: Option<Service>,
    pub instance: Option<InstanceSummary>,
    /// Every connection of the subject on the instance, whatever its status.
    pub held: Vec<ConnectionRow>,
    generation: u64,
}

impl HandoutCache {
    /// `hearing_all_changes`: whether every change is made by this process or heard from the
    /// change feed from the start.
    pub fn new(hearing_all_changes: bool) -> Self {
        Self {
            generation: AtomicU64::new(0),
            hearing_all_changes: AtomicBool::new(hearing_all_changes),
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

    /// The change feed is up (`true`, after which earlier views are outdated) or down.
    pub fn hearing_all_changes(&self, hearing: bool) {
        self.hearing_all_changes.store(hearing, Ordering::SeqCst);
        self.changed();
    }

    pub fn get(&self, key: &HandoutKey) -> Option<Arc<HandoutView>> {
        if !self.hearing_all_changes.load(Ordering::SeqCst) {
            return None;
        }
        self.views
            .get(key)
            .filter(|view| view.generation == self.generation())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> HandoutKey {
        HandoutKey {
            service_id: "svc".into(),
            instance: "corp".into(),
            subject: "17".into(),
        }
    }

    #[test]
    fn a_view_is_used_only_in_the_generation_it_was_read_in() {
        let cache = HandoutCache::new(true);
        let read_in = cache.generation();
        cache.remember(key(), read_in, None, None, Vec::new());
        assert!(cache.get(&key()).is_some());
        cache.changed();
        assert!(cache.get(&key()).is_none());
    }

    #[test]
    fn a_view_read_across_a_change_is_not_remembered() {
        let cache = HandoutCache::new(true);
        let read_in = cache.generation();
        cache.changed(); // a write committed while the view was being read
        cache.remember(key(), read_in, None, None, Vec::new());
        assert!(cache.get(&key()).is_none());
    }

    #[test]
    fn nothing_is_used_while_changes_go_unheard() {
        let cache = HandoutCache::new(false);
        cache.remember(key(), cache.generation(), None, None, Vec::new());
        assert!(cache.get(&key()).is_none());
        cache.hearing_all_changes(true);
        cache.remember(key(), cache.generation(), None, None, Vec::new());
        assert!(cache.get(&key()).is_some());
        cache.hearing_all_changes(false);
        assert!(cache.get(&key()).is_none());
    }
}
