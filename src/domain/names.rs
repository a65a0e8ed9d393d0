//! Names of instances and services: `^[a-z0-9][a-z0-9-]{0,62}$`, safe in a URL path, a log
//! field and a file name.

use std::fmt;

use super::Invalid;

/// A registered GitLab instance's name; part of its redirect URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceName(String);

/// A service's name: the same rule as an instance's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceName(String);

impl InstanceName {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        parse_slug(input).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl ServiceName {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        parse_slug(input).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn parse_slug(input: &str) -> Result<String, Invalid> {
    let mut chars = input.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if first_ok && rest_ok && input.len() <= 63 {
        Ok(input.to_owned())
    } else {
        Err(Invalid::new(format!(
            "must be 1 to 63 characters of lowercase letters, digits and '-', \
             starting with a letter or digit (got {input:?})"
        )))
    }
}

impl fmt::Display for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_pattern() {
        for ok in ["corp", "0", "git-corp-2", &"a".repeat(63)] {
            assert_eq!(InstanceName::parse(ok).unwrap().as_str(), ok);
            assert_eq!(ServiceName::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "-corp",
            "Corp",
            "corp_git",
            "corp.git",
            "cörp",
            &"a".repeat(64),
        ] {
            let err = InstanceName::parse(bad).unwrap_err();
            assert!(err.0.contains("lowercase letters"), "{bad}: {err}");
        }
    }
}
