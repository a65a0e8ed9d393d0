use std::fmt;
use std::str::FromStr;

use super::Invalid;
use super::token_timing::TokenLife;

/// What a connection holds: an OAuth grant (an access token kept fresh with its refresh token),
/// or a GitLab access token (personal, project or group) that rotates itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionKind {
    OAuth,
    AccessToken,
}

impl ConnectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OAuth => "oauth",
            Self::AccessToken => "access_token",
        }
    }

    /// When the background refresher renews a token of this kind with this life.
    pub fn renewal_due_at(self, life: &TokenLife, spread_key: &str) -> chrono::NaiveDateTime {
        match self {
            Self::OAuth => life.refresh_due_at(spread_key),
            Self::AccessToken => life.rotation_due_at(),
        }
    }
}

impl FromStr for ConnectionKind {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Invalid> {
        match s {
            "oauth" => Ok(Self::OAuth),
            "access_token" => Ok(Self::AccessToken),
            other => Err(Invalid::new(format!(
                "{other:?} is not a connection kind (oauth, access_token)"
            ))),
        }
    }
}

/// As stored in a text column.
impl TryFrom<String> for ConnectionKind {
    type Error = Invalid;

    fn try_from(stored: String) -> Result<Self, Invalid> {
        stored.parse()
    }
}

impl From<ConnectionKind> for String {
    fn from(kind: ConnectionKind) -> Self {
        kind.as_str().to_owned()
    }
}

impl fmt::Display for ConnectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
