//! Secrets in the settings: given inline or read from a `_file` twin, never both.

use std::fs;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

use super::{ConfigError, RawAdmin, non_empty};

/// A secret given inline or as `{key}_file`; both at once is a mistake worth stopping for.
pub(super) fn secret(
    key: &'static str,
    inline: Option<String>,
    file: Option<PathBuf>,
) -> Result<Option<SecretString>, ConfigError> {
    match (inline.filter(|v| !v.is_empty()), non_empty(file)) {
        (Some(_), Some(_)) => Err(ConfigError::invalid(
            key,
            format!("set either {key} or {key}_file, not both"),
        )),
        (Some(value), None) => Ok(Some(SecretString::from(value))),
        (None, Some(path)) => {
            let contents = fs::read_to_string(&path).map_err(|e| {
                ConfigError::invalid(
                    key,
                    format!(
                        "cannot read the file {} named by {key}_file: {e}",
                        path.display()
                    ),
                )
            })?;
            Ok(Some(SecretString::from(
                contents.trim_end_matches(['\r', '\n']).to_owned(),
            )))
        }
        (None, None) => Ok(None),
    }
}

/// The shortest admin token accepted: it opens every instance's secrets to whoever guesses it.
const ADMIN_TOKEN_MIN_LENGTH: usize = 32;

pub(super) fn admin_token(raw: RawAdmin) -> Result<Option<SecretString>, ConfigError> {
    let token = secret("admin.token", raw.token, raw.token_file)?;
    match &token {
        Some(token) if token.expose_secret().chars().count() < ADMIN_TOKEN_MIN_LENGTH => {
            Err(ConfigError::invalid(
                "admin.token",
                format!(
                    "must be at least {ADMIN_TOKEN_MIN_LENGTH} characters \
                     (make one with `openssl rand -hex 32`)"
                ),
            ))
        }
        _ => Ok(token),
    }
}
