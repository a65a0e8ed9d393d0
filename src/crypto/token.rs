use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A random bearer token: `prefix` (so secret scanners recognise it) then 256 random bits.
pub fn generate_token(prefix: &str) -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    SecretString::from(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// SHA-256 of a bearer token. Generated tokens carry 256 random bits, so a fast hash is
/// enough to make a stolen database useless for signing in.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    pub fn of_secret(token: &SecretString) -> Self {
        Self::of(token.expose_secret())
    }

    pub fn from_hex(encoded: &str) -> Option<Self> {
        hex::decode(encoded).ok()?.try_into().ok().map(Self)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Compares in constant time, so response timing reveals nothing about the stored hash.
    pub fn matches(&self, presented: &str) -> bool {
        Self::of(presented).0.ct_eq(&self.0).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_distinct_and_match_only_their_hash() {
        let a = generate_token("lg_admin_");
        let b = generate_token("lg_admin_");
        assert!(a.expose_secret().starts_with("lg_admin_"));
        assert_ne!(a.expose_secret(), b.expose_secret());
        let hash = TokenHash::of_secret(&a);
        assert!(hash.matches(a.expose_secret()));
        assert!(!hash.matches(b.expose_secret()));
        assert!(TokenHash::from_hex(&hash.to_hex()).unwrap() == hash);
        assert!(TokenHash::from_hex("zz").is_none());
    }
}
