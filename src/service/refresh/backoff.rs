//! The background refresher's back-off per instance: one GitLab throttling or failing does not
//! hold up the others, and is not hammered while it recovers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Instances whose GitLab asked the refresher to wait (429, 5xx, unreachable).
#[derive(Default)]
pub(super) struct InstanceBackoff {
    /// Per instance id: until when, and how long the last wait was.
    waits: Mutex<HashMap<String, (Instant, Duration)>>,
}

impl InstanceBackoff {
    fn waits(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Duration)>> {
        self.waits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn active(&self, instance_id: &str) -> bool {
        self.waits()
            .get(instance_id)
            .is_some_and(|(until, _)| Instant::now() < *until)
    }

    pub(super) fn end(&self, instance_id: &str) {
        self.waits().remove(instance_id);
    }

    /// Doubles the instance's back-off (from GitLab's `Retry-After` or 30 s, up to 10 minutes).
    pub(super) fn lengthen(&self, instance_id: &str, retry_after: Duration) {
        let mut waits = self.waits();
        let previous = waits
            .get(instance_id)
            .map_or(Duration::ZERO, |(_, length)| *length);
        let length = (previous * 2)
            .max(retry_after)
            .min(Duration::from_secs(600));
        waits.insert(instance_id.to_owned(), (Instant::now() + length, length));
    }
}
