use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::SecretSlice;

use super::{KeyId, MasterKey};

/// Layout of a sealed value: `version (1) | key id (8) | nonce (24) | ciphertext + tag`.
const VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 8 + 24;

/// Seals secrets at rest with XChaCha20-Poly1305 under the master key. The associated data
/// names the table, column and row, so a ciphertext copied into another row does not open.
/// During a master-key rotation it also opens values sealed under the other key.
pub struct Sealer {
    key_id: KeyId,
    cipher: XChaCha20Poly1305,
    /// The other key of a rotation: opens, never seals.
    also_opens: Option<(KeyId, XChaCha20Poly1305)>,
}

/// Every column that holds a sealed value: the one list of the table and column names bound
/// into ciphertexts (changing a name makes every value sealed under it unopenable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedColumn {
    ConnectionAccessToken,
    ConnectionRefreshToken,
    InstanceClientSecret,
    ConnectSessionPkceVerifier,
    /// The PKCE verifier of an admin sign-in with GitLab on its way.
    AdminSignInPkceVerifier,
    /// The secret a service's webhook deliveries are signed with.
    WebhookSecret,
    /// That secret, kept by a pending delivery when its service is deleted.
    DeliverySecret,
    /// The key that signs service tokens, kept in `labgate_meta`.
    MetaValue,
}

impl SealedColumn {
    fn table_and_column(self) -> (&'static str, &'static str) {
        match self {
            Self::ConnectionAccessToken => ("connections", "access_token"),
            Self::ConnectionRefreshToken => ("connections", "refresh_token"),
            Self::InstanceClientSecret => ("instances", "client_secret"),
            Self::ConnectSessionPkceVerifier => ("connect_sessions", "pkce_verifier"),
            Self::AdminSignInPkceVerifier => ("admin_sign_ins", "pkce_verifier"),
            Self::WebhookSecret => ("service_webhooks", "secret"),
            Self::DeliverySecret => ("webhook_deliveries", "secret"),
            Self::MetaValue => ("labgate_meta", "value"),
        }
    }

    /// The value of this column in one row.
    pub fn of(self, row_id: &str) -> SealedField<'_> {
        SealedField {
            column: self,
            row_id,
        }
    }
}

/// Where a sealed value lives; bound into the ciphertext as associated data.
#[derive(Debug, Clone, Copy)]
pub struct SealedField<'a> {
    pub column: SealedColumn,
    pub row_id: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("sealed under key {found}, but the configured master key is {configured}")]
    OtherKey { found: KeyId, configured: KeyId },
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value does not open: tampered with, or moved from another row")]
    Forged,
}

impl Sealer {
    pub fn new(key: &MasterKey) -> Self {
        Self {
            key_id: key.id(),
            cipher: XChaCha20Poly1305::new(key.expose().into()),
            also_opens: None,
        }
    }

    /// Seals under `key`, and opens values sealed under `key` or `other`.
    pub fn with_other(key: &MasterKey, other: &MasterKey) -> Self {
        let mut sealer = Self::new(key);
        if other.id() != key.id() {
            sealer.also_opens = Some((other.id(), XChaCha20Poly1305::new(other.expose().into())));
        }
        sealer
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The key a sealed value was sealed under, read from its header.
    pub fn sealed_under(sealed: &[u8]) -> Option<KeyId> {
        if sealed.len() < HEADER_LEN || sealed[0] != VERSION {
            return None;
        }
        sealed[1..9].try_into().ok().map(KeyId::from_bytes)
    }

    pub fn seal(&self, field: SealedField<'_>, plaintext: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut sealed = Vec::with_capacity(HEADER_LEN + plaintext.len() + 16);
        sealed.push(VERSION);
        sealed.extend_from_slice(self.key_id.as_bytes());
        let aad = field.associated_data(&sealed);
        sealed.extend_from_slice(&nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    pub fn open(
        &self,
        field: SealedField<'_>,
        sealed: &[u8],
    ) -> Result<SecretSlice<u8>, SealError> {
        if sealed.len() < HEADER_LEN || sealed[0] != VERSION {
            return Err(SealError::Malformed);
        }
        let found = Self::sealed_under(sealed).ok_or(SealError::Malformed)?;
        let cipher = match &self.also_opens {
            _ if found == self.key_id => &self.cipher,
            Some((other, cipher)) if found == *other => cipher,
            _ => {
                return Err(SealError::OtherKey {
                    found,
                    configured: self.key_id,
                });
            }
        };
        let nonce = XNonce::from_slice(&sealed[9..HEADER_LEN]);
        let aad = field.associated_data(&sealed[..9]);
        cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[HEADER_LEN..],
                    aad: &aad,
                },
            )
            .map(SecretSlice::from)
            .map_err(|_| SealError::Forged)
    }
}

impl SealedField<'_> {
    /// The place the value belongs to, and the header (version, key id) it was sealed with.
    fn associated_data(&self, header: &[u8]) -> Vec<u8> {
        let (table, column) = self.column.table_and_column();
        let mut aad = format!("labgate/{table}.{column}/{}/", self.row_id).into_bytes();
        aad.extend_from_slice(header);
        aad
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn field(row_id: &str) -> SealedField<'_> {
        SealedColumn::InstanceClientSecret.of(row_id)
    }

    #[test]
    fn opens_what_it_sealed_and_hides_the_plaintext() {
        let sealer = Sealer::new(&MasterKey::generate());
        let sealed = sealer.seal(field("row-1"), b"gloas-secret");
        assert!(!sealed.windows(12).any(|w| w == b"gloas-secret"));
        assert_eq!(
            sealer
                .open(field("row-1"), &sealed)
                .unwrap()
                .expose_secret(),
            b"gloas-secret"
        );
    }

    #[test]
    fn refuses_a_value_moved_to_another_row_or_column() {
        let sealer = Sealer::new(&MasterKey::generate());
        let sealed = sealer.seal(field("row-1"), b"gloas-secret");
        assert!(matches!(
            sealer.open(field("row-2"), &sealed),
            Err(SealError::Forged)
        ));
        let other_column = SealedColumn::ConnectionAccessToken.of("row-1");
        assert!(matches!(
            sealer.open(other_column, &sealed),
            Err(SealError::Forged)
        ));
    }

    #[test]
    fn refuses_tampering_and_names_a_foreign_key() {
        let sealer = Sealer::new(&MasterKey::generate());
        let mut sealed = sealer.seal(field("row-1"), b"gloas-secret");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(matches!(
            sealer.open(field("row-1"), &sealed),
            Err(SealError::Forged)
        ));

        let foreign = Sealer::new(&MasterKey::generate()).seal(field("row-1"), b"x");
        match sealer.open(field("row-1"), &foreign) {
            Err(SealError::OtherKey { configured, .. }) => assert_eq!(configured, sealer.key_id()),
            other => panic!("expected OtherKey, got {other:?}"),
        }
        assert!(matches!(
            sealer.open(field("row-1"), b"short"),
            Err(SealError::Malformed)
        ));
    }

    #[test]
    fn during_a_rotation_opens_under_either_key_and_seals_under_its_own() {
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let under_old = Sealer::new(&old).seal(field("row-1"), b"a");
        let both = Sealer::with_other(&new, &old);
        let under_new = both.seal(field("row-1"), b"b");
        assert_eq!(Sealer::sealed_under(&under_new), Some(new.id()));
        assert_eq!(
            both.open(field("row-1"), &under_old)
                .unwrap()
                .expose_secret(),
            b"a"
        );
        assert_eq!(
            both.open(field("row-1"), &under_new)
                .unwrap()
                .expose_secret(),
            b"b"
        );
        assert!(matches!(
            Sealer::new(&old).open(field("row-1"), &under_new),
            Err(SealError::OtherKey { .. })
        ));
    }
}
