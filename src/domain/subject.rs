use std::fmt;

use super::Invalid;

/// A service's own opaque id for one of its end users: any printable text up to 255 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject(String);

impl Subject {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        if input.is_empty() || input.len() > 255 || input.chars().any(char::is_control) {
            return Err(Invalid::new(
                "must be 1 to 255 bytes of printable text, e.g. the user's id in your service",
            ));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
