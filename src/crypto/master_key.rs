use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::{Digest, Sha256};

use crate::private_files::create_private_dir;

/// The 32-byte key every secret at rest is sealed under.
pub struct MasterKey {
    bytes: SecretBox<[u8; 32]>,
    id: KeyId,
}

/// A short public name for a key, stored beside everything sealed with it, so that a
/// database sealed under another key is recognised instead of failing as "corrupt".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyId([u8; 8]);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("is not base64: {0}")]
    NotBase64(base64::DecodeError),
    #[error("must be 32 bytes once base64-decoded, got {0}")]
    WrongLength(usize),
    #[error("cannot read or create {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

impl MasterKey {
    pub fn from_base64(encoded: &SecretString) -> Result<Self, KeyError> {
        let decoded = STANDARD
            .decode(encoded.expose_secret().trim())
            .map_err(KeyError::NotBase64)?;
        let bytes: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::WrongLength(decoded.len()))?;
        Ok(Self::from_bytes(bytes))
    }

    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// Reads an existing key file; never creates one.
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        let encoded = fs::read_to_string(path).map_err(|source| KeyError::File {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_base64(&SecretString::from(encoded))
    }

    /// Reads the key file at `path`, or creates it (mode 0600, base64) when there is none.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let file_error = |source| KeyError::File {
            path: path.display().to_string(),
            source,
        };
        match fs::read_to_string(path) {
            Ok(encoded) => Self::from_base64(&SecretString::from(encoded)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    create_private_dir(dir).map_err(file_error)?;
                }
                let key = Self::generate();
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(file_error)?;
                writeln!(file, "{}", STANDARD.encode(key.bytes.expose_secret()))
                    .map_err(file_error)?;
                file.sync_all().map_err(file_error)?;
                Ok(key)
            }
            Err(e) => Err(file_error(e)),
        }
    }

    fn from_bytes(bytes: [u8; 32]) -> Self {
        let digest = Sha256::new_with_prefix(b"labgate key id\0")
            .chain_update(bytes)
            .finalize();
        let id = KeyId(
            digest[..8]
                .try_into()
                .expect("a SHA-256 digest has 32 bytes"),
        );
        Self {
            bytes: SecretBox::new(Box::new(bytes)),
            id,
        }
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    pub(super) fn expose(&self) -> &[u8; 32] {
        self.bytes.expose_secret()
    }
}

impl KeyId {
    pub fn from_bytes(bytes: [u8; 8]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_private_key_file_once_and_reads_it_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/master.key");
        let created = MasterKey::load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(MasterKey::load_or_create(&path).unwrap().id(), created.id());
    }

    #[test]
    fn refuses_keys_of_the_wrong_size_or_encoding() {
        let short = SecretString::from(STANDARD.encode([1u8; 16]));
        assert!(matches!(
            MasterKey::from_base64(&short),
            Err(KeyError::WrongLength(16))
        ));
        let garbage = SecretString::from("not base64!".to_owned());
        assert!(matches!(
            MasterKey::from_base64(&garbage),
            Err(KeyError::NotBase64(_))
        ));
    }
}
