//! Signature checks with ring. One RSA verification is most of what an exchange costs, and ring
//! makes it in tens of microseconds where the pure-Rust big numbers behind jsonwebtoken's
//! `rust_crypto` backend take the better part of a millisecond.

use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use ring::signature::{self as ring_signature, RsaPublicKeyComponents, UnparsedPublicKey};

use super::URL_SAFE_NO_PAD;
use base64::Engine;

/// Every public-key algorithm labgate verifies; the RSA ones first.
pub(super) const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];
const RSA: &[Algorithm] = ASYMMETRIC.split_at(6).0;

/// A public key from a JWKS, as ring wants it.
pub(super) enum VerifyingKey {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed point (`04 ‖ x ‖ y`).
    P256(Vec<u8>),
    P384(Vec<u8>),
    Ed25519(Vec<u8>),
}

impl VerifyingKey {
    /// The key and the algorithms its type allows; `None` for symmetric keys and key types or
    /// curves labgate does not verify.
    pub(super) fn from_jwk(jwk: &Jwk) -> Option<(Self, &'static [Algorithm])> {
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).ok();
        let point = |x: &str, y: &str| {
            let mut point = vec![0x04];
            point.extend(decode(x)?);
            point.extend(decode(y)?);
            Some(point)
        };
        match &jwk.algorithm {
            AlgorithmParameters::RSA(rsa) => Some((
                Self::Rsa {
                    n: decode(&rsa.n)?,
                    e: decode(&rsa.e)?,
                },
                RSA,
            )),
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => {
                    Some((Self::P256(point(&ec.x, &ec.y)?), &[Algorithm::ES256]))
                }
                EllipticCurve::P384 => {
                    Some((Self::P384(point(&ec.x, &ec.y)?), &[Algorithm::ES384]))
                }
                _ => None,
            },
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                Some((Self::Ed25519(decode(&okp.x)?), &[Algorithm::EdDSA]))
            }
            _ => None,
        }
    }

    /// Whether `signature` over `message` verifies under `algorithm` with this key; a key of
    /// another type never does.
    pub(super) fn verifies(&self, algorithm: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        match (self, algorithm) {
            (Self::Rsa { n, e }, _) => {
                let params: &ring_signature::RsaParameters = match algorithm {
                    Algorithm::RS256 => &ring_signature::RSA_PKCS1_2048_8192_SHA256,
                    Algorithm::RS384 => &ring_signature::RSA_PKCS1_2048_8192_SHA384,
                    Algorithm::RS512 => &ring_signature::RSA_PKCS1_2048_8192_SHA512,
                    Algorithm::PS256 => &ring_signature::RSA_PSS_2048_8192_SHA256,
                    Algorithm::PS384 => &ring_signature::RSA_PSS_2048_8192_SHA384,
                    Algorithm::PS512 => &ring_signature::RSA_PSS_2048_8192_SHA512,
                    _ => return false,
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, message, signature)
                    .is_ok()
            }
            (Self::P256(point), Algorithm::ES256) => {
                UnparsedPublicKey::new(&ring_signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, signature)
                    .is_ok()
            }
            (Self::P384(point), Algorithm::ES384) => {
                UnparsedPublicKey::new(&ring_signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, signature)
                    .is_ok()
            }
            (Self::Ed25519(public), Algorithm::EdDSA) => {
                UnparsedPublicKey::new(&ring_signature::ED25519, public)
                    .verify(message, signature)
                    .is_ok()
            }
            _ => false,
        }
    }
}
