//! When a GitLab token is due for refresh. GitLab lets administrators set access-token lifetimes
//! from 300 to 7200 s (GITLAB.md), so every rule follows the token's own lifetime, never a
//! constant: a token is refreshed once the last third of its life has begun (at least 60 s
//! before expiry), spread by a jitter proportional to its lifetime, so that connections made
//! together do not come due together.

use chrono::{NaiveDateTime, TimeDelta};

/// However short the lifetime, refresh at least this long before expiry.
const MIN_MARGIN: TimeDelta = TimeDelta::seconds(60);
/// An access token rotates once this much, or the last third of its life, is left.
const ACCESS_TOKEN_MARGIN: TimeDelta = TimeDelta::days(7);

/// A token's life as labgate knows it: from when it was issued (labgate's clock, the moment the
/// request left, so never later than GitLab's own) to when it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLife {
    pub issued_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

impl TokenLife {
    pub fn lifetime(&self) -> TimeDelta {
        (self.expires_at - self.issued_at).max(TimeDelta::zero())
    }

    /// When the background refresher rotates this token: the last third of its lifetime (at
    /// least 60 s, at most all of it) before expiry, less a spread of up to a tenth of the
    /// lifetime that is fixed per `spread_key` (a connection id).
    pub fn refresh_due_at(&self, spread_key: &str) -> NaiveDateTime {
        let lifetime = self.lifetime();
        let margin = (lifetime / 3).max(MIN_MARGIN).min(lifetime);
        let spread_ms = (lifetime.num_milliseconds() / 10).max(1) as u64;
        let jitter = TimeDelta::milliseconds((stable_hash(spread_key) % spread_ms) as i64);
        (self.expires_at - margin - jitter).max(self.issued_at)
    }

    /// When labgate rotates a GitLab access token (SPEC): once a third of its lifetime or 7 days
    /// are left, whichever comes first, but never in the first half of its life, so that a
    /// token shorter than two weeks does not rotate again as soon as it is made. Access tokens
    /// live days, not minutes: no spread is needed.
    pub fn rotation_due_at(&self) -> NaiveDateTime {
        let lifetime = self.lifetime();
        let margin = (lifetime / 3).max(ACCESS_TOKEN_MARGIN).min(lifetime / 2);
        self.expires_at - margin
    }
}

/// A hash that is the same in every process and release, unlike the standard library's.
fn stable_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;

    fn life(seconds: i64) -> TokenLife {
        let issued_at = DateTime::from_timestamp(1_800_000_000, 0)
            .unwrap()
            .naive_utc();
        TokenLife {
            issued_at,
            expires_at: issued_at + TimeDelta::seconds(seconds),
        }
    }

    #[test]
    fn a_token_is_due_in_the_last_third_of_its_life_spread_by_a_tenth() {
        for seconds in [300, 301, 600, 900, 1800, 3600, 7200] {
            let life = life(seconds);
            for id in [
                "a",
                "b",
                "connection-1",
                "0f4c0d3e-7d4e-4c55-9d33-8a0a4f1b2c3d",
            ] {
                let due = life.refresh_due_at(id);
                let left = (life.expires_at - due).num_milliseconds();
                let third = seconds * 1000 / 3;
                assert!(
                    left >= third.max(60_000) && left <= third.max(60_000) + seconds * 100,
                    "{seconds} s token {id:?}: due {left} ms before expiry"
                );
            }
        }
    }

    #[test]
    fn an_access_token_rotates_with_a_third_or_a_week_left_never_in_its_first_half() {
        let day = 86_400;
        for (days, left) in [
            (365, 365 * day / 3),
            (30, 10 * day),
            (21, 7 * day),
            (14, 7 * day),
            (10, 5 * day),
            (1, day / 2),
        ] {
            let life = life(days * day);
            assert_eq!(
                (life.expires_at - life.rotation_due_at()).num_seconds(),
                left,
                "{days} days"
            );
        }
    }

    #[test]
    fn the_spread_differs_between_connections_and_is_stable_for_one() {
        let life = life(7200);
        let dues: std::collections::BTreeSet<_> = (0..50)
            .map(|i| life.refresh_due_at(&format!("connection-{i}")))
            .collect();
        assert!(
            dues.len() > 40,
            "50 connections share {} due times",
            dues.len()
        );
        assert_eq!(life.refresh_due_at("x"), life.refresh_due_at("x"));
    }

    #[test]
    fn very_short_or_broken_lifetimes_are_due_at_once_never_before_issue() {
        for seconds in [0, 1, 30, 60, 90] {
            let life = life(seconds);
            let due = life.refresh_due_at("c");
            assert!(
                due >= life.issued_at && due <= life.expires_at,
                "{seconds} s"
            );
        }
        let backwards = TokenLife {
            issued_at: life(0).issued_at,
            expires_at: life(0).issued_at - TimeDelta::seconds(5),
        };
        assert_eq!(backwards.lifetime(), TimeDelta::zero());
        assert_eq!(backwards.refresh_due_at("c"), backwards.issued_at);
    }
}
