//! When a token serves: pure rules over a connection's row and the refresher's settings. When a
//! token is due follows its own lifetime (`TokenLife::refresh_due_at`, stored on the row).

use chrono::NaiveDateTime;

use super::Purpose;
use crate::config::RefresherSettings;
use crate::db::connections::ConnectionRow;
use crate::domain::ConnectionStatus;

/// Whether the row's token serves `purpose` until `need_until` without a refresh.
pub fn satisfies(
    refresher: &RefresherSettings,
    row: &ConnectionRow,
    need_until: NaiveDateTime,
    purpose: Purpose,
) -> bool {
    let active = row.status == ConnectionStatus::Active;
    match purpose {
        Purpose::Handout => active && valid_until(refresher, row) >= need_until,
        Purpose::Maintain => {
            active && row.refresh_in_flight_since.is_none() && row.refresh_due_at > need_until
        }
    }
}

/// Until when a token handed out now keeps working: its expiry, or, with the background
/// refresher on, the moment the refresher will rotate it (a refresh revokes the old token at
/// once). Handing out the expiry instead would promise validity the refresher then takes away.
pub fn valid_until(refresher: &RefresherSettings, row: &ConnectionRow) -> NaiveDateTime {
    if refresher.enabled {
        row.refresh_due_at.min(row.expires_at)
    } else {
        row.expires_at
    }
}

/// The longest validity a freshly refreshed token of this connection can promise: a request for
/// more cannot be met by refreshing, however often.
pub fn longest_promise(refresher: &RefresherSettings, row: &ConnectionRow) -> chrono::TimeDelta {
    valid_until(refresher, row) - row.token_issued_at
}
