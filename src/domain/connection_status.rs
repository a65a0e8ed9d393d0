use std::fmt;
use std::str::FromStr;

use super::Invalid;

/// Where a connection stands: usable, waiting for its person to connect again, or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStatus {
    Active,
    ReauthorizationRequired,
    Revoked,
}

impl ConnectionStatus {
    pub const ALL: [Self; 3] = [Self::Active, Self::ReauthorizationRequired, Self::Revoked];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::ReauthorizationRequired => "reauthorization_required",
            Self::Revoked => "revoked",
        }
    }
}

impl FromStr for ConnectionStatus {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Invalid> {
        match s {
            "active" => Ok(Self::Active),
            "reauthorization_required" => Ok(Self::ReauthorizationRequired),
            "revoked" => Ok(Self::Revoked),
            other => Err(Invalid::new(format!(
                "{other:?} is not a status (active, reauthorization_required, revoked)"
            ))),
        }
    }
}

/// As stored in a text column.
impl TryFrom<String> for ConnectionStatus {
    type Error = Invalid;

    fn try_from(stored: String) -> Result<Self, Invalid> {
        stored.parse()
    }
}

impl From<ConnectionStatus> for String {
    fn from(status: ConnectionStatus) -> Self {
        status.as_str().to_owned()
    }
}

impl fmt::Display for ConnectionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
