//! A connection's two GitLab tokens, sealed at rest and bound to their row. An access-token
//! connection seals an empty refresh token: every sealed column opens alike (key rotation).

use secrecy::{ExposeSecret, SecretString};

use crate::crypto::{SealedColumn, Sealer};
use crate::db::connections::ConnectionRow;
use crate::domain::ConnectionKind;

/// Which of a connection's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    /// The token GitLab revokes a connection's grant by: an OAuth grant's refresh token (which
    /// ends its access token too), or the access token itself.
    pub fn revoking(kind: ConnectionKind) -> Self {
        match kind {
            ConnectionKind::OAuth => Self::Refresh,
            ConnectionKind::AccessToken => Self::Access,
        }
    }

    fn column(self) -> SealedColumn {
        match self {
            Self::Access => SealedColumn::ConnectionAccessToken,
            Self::Refresh => SealedColumn::ConnectionRefreshToken,
        }
    }
}

/// Seals a token for the connection row `connection_id`.
pub fn seal_token(
    sealer: &Sealer,
    connection_id: &str,
    kind: TokenKind,
    token: &SecretString,
) -> Vec<u8> {
    sealer.seal(
        kind.column().of(connection_id),
        token.expose_secret().as_bytes(),
    )
}

/// Opens one of a connection's sealed tokens.
pub fn open_token(
    sealer: &Sealer,
    row: &ConnectionRow,
    kind: TokenKind,
) -> Result<SecretString, anyhow::Error> {
    let sealed = match kind {
        TokenKind::Access => &row.access_token_sealed,
        TokenKind::Refresh => &row.refresh_token_sealed,
    };
    let plain = sealer
        .open(kind.column().of(&row.id), sealed)
        .map_err(|e| anyhow::anyhow!("opening the {kind:?} token of connection {}: {e}", row.id))?;
    Ok(SecretString::from(
        String::from_utf8_lossy(plain.expose_secret()).into_owned(),
    ))
}
