//! Key material and what is done with it: sealing secrets at rest, hashing bearer tokens.

mod master_key;
mod sealing;
mod service_token;
mod token;
mod webhook_signature;

pub use master_key::{KeyError, KeyId, MasterKey};
pub use sealing::{SealError, SealedColumn, SealedField, Sealer};
pub use service_token::{
    AUDIENCE, LIFETIME_SECONDS, ServiceClaims, ServiceTokenKeys, TokenRejected,
};
pub use token::{TokenHash, generate_token};
pub use webhook_signature::{SIGNATURE_HEADER, webhook_signature};
