//! Key material and what is done with it: sealing secrets at rest, hashing bearer tokens.

mod master_key;
mod sealing;
mod token;

pub use master_key::{KeyError, KeyId, MasterKey};
pub use sealing::{SealError, SealedField, Sealer};
pub use token::{TokenHash, generate_token};
