//! One page of a list: how many items, and after which one. The cursor a client holds is
//! opaque (base64url); inside it is the sort key of the last item it saw.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDateTime;

use super::Invalid;

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    /// The sort key of the last item of the previous page.
    pub after: Option<String>,
}

impl Page {
    pub fn limit(limit: Option<i64>) -> Result<i64, Invalid> {
        match limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(n) => Err(Invalid::new(format!(
                "must be from 1 to {MAX_LIMIT}, not {n}"
            ))),
        }
    }

    /// The key inside a cursor this API handed out.
    pub fn after(cursor: Option<&str>) -> Result<Option<String>, Invalid> {
        let Some(cursor) = cursor else {
            return Ok(None);
        };
        URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .filter(|key| !key.is_empty())
            .map(Some)
            .ok_or_else(|| {
                Invalid::new("is not a cursor this API handed out: pass next_cursor back as it is")
            })
    }

    /// The cursor that continues after the item whose sort key is `key`.
    pub fn cursor_after(key: &str) -> String {
        URL_SAFE_NO_PAD.encode(key)
    }
}

/// The sort key of a list ordered newest first by creation, then by id.
pub fn created_key(at: NaiveDateTime, id: &str) -> String {
    format!("{}|{id}", at.format(KEY_TIME))
}

/// The creation and id inside a `created_key`.
pub fn parse_created_key(key: &str) -> Result<(NaiveDateTime, String), Invalid> {
    key.split_once('|')
        .and_then(|(at, id)| Some((NaiveDateTime::parse_from_str(at, KEY_TIME).ok()?, id)))
        .map(|(at, id)| (at, id.to_owned()))
        .ok_or_else(|| Invalid::new("is not a cursor of this list"))
}

const KEY_TIME: &str = "%Y-%m-%dT%H:%M:%S%.f";

/// A page of items and, when more follow, the cursor to the next page.
#[derive(Debug)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Paged<T> {
    /// `fetched` holds up to `limit + 1` items in order; the extra one only says more follow.
    pub fn of(mut fetched: Vec<T>, limit: i64, key: impl Fn(&T) -> String) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = fetched.len() > limit;
        fetched.truncate(limit);
        let next_cursor = more
            .then(|| fetched.last().map(|last| Page::cursor_after(&key(last))))
            .flatten();
        Self {
            items: fetched,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_returns_the_key_it_was_made_from() {
        let cursor = Page::cursor_after("2026-12-04T03:39:29.123|abc");
        assert_eq!(
            Page::after(Some(&cursor)).unwrap().as_deref(),
            Some("2026-12-04T03:39:29.123|abc")
        );
        assert!(Page::after(Some("not base64!")).is_err());
        assert!(Page::after(Some("")).is_err());
    }

    #[test]
    fn a_created_key_keeps_the_time_to_the_nanosecond() {
        let at = chrono::DateTime::from_timestamp(1_764_820_769, 123_456_789)
            .unwrap()
            .naive_utc();
        let key = created_key(at, "3f2a");
        assert_eq!(parse_created_key(&key).unwrap(), (at, "3f2a".to_owned()));
        assert!(parse_created_key("3f2a").is_err());
    }

    #[test]
    fn the_extra_item_fetched_only_says_more_follow() {
        let page = Paged::of(vec![1, 2, 3], 2, ToString::to_string);
        assert_eq!(page.items, [1, 2]);
        assert_eq!(
            Page::after(page.next_cursor.as_deref()).unwrap().as_deref(),
            Some("2")
        );
        let last = Paged::of(vec![1, 2], 2, ToString::to_string);
        assert_eq!(last.next_cursor, None);
        assert!(Page::limit(Some(0)).is_err() && Page::limit(Some(1001)).is_err());
        assert_eq!(Page::limit(None).unwrap(), 100);
    }
}
