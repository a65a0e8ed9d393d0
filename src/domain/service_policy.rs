//! What a service may do: which instances it may use, where it may send people back to.

use std::fmt;

use url::Url;

use super::{InstanceName, Invalid};

/// The instances a service may use: every one (`*`), or those named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceAccess {
    All,
    Named(Vec<InstanceName>),
}

impl InstanceAccess {
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, Invalid> {
        if names.len() == 1 && names[0].as_ref() == "*" {
            return Ok(Self::All);
        }
        if names.is_empty() {
            return Err(Invalid::new(
                "must name at least one instance, or be [\"*\"] for all",
            ));
        }
        let mut parsed = names
            .iter()
            .map(|n| {
                InstanceName::parse(n.as_ref())
                    .map_err(|e| Invalid::new(format!("{:?} {e}", n.as_ref())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        parsed.sort();
        parsed.dedup();
        Ok(Self::Named(parsed))
    }

    /// Reads the form `Display` writes: `*`, or names separated by spaces.
    pub fn from_stored(stored: &str) -> Result<Self, Invalid> {
        Self::parse(&stored.split_whitespace().collect::<Vec<_>>())
    }

    /// As the API lists it: `["*"]`, or the names.
    pub fn as_strings(&self) -> Vec<String> {
        match self {
            Self::All => vec!["*".to_owned()],
            Self::Named(names) => names.iter().map(ToString::to_string).collect(),
        }
    }

    pub fn allows(&self, instance: &InstanceName) -> bool {
        match self {
            Self::All => true,
            Self::Named(names) => names.contains(instance),
        }
    }
}

impl fmt::Display for InstanceAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Named(names) => f.write_str(
                &names
                    .iter()
                    .map(InstanceName::as_str)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        }
    }
}

/// An origin (`scheme://host[:port]`) a service may send people back to after connecting.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReturnOrigin(String);

impl ReturnOrigin {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let url = Url::parse(input)
            .map_err(|e| Invalid::new(format!("{input:?} is not an origin ({e})")))?;
        let origin = url.origin();
        let only_origin =
            matches!(url.path(), "" | "/") && url.query().is_none() && url.fragment().is_none();
        if !origin.is_tuple() || !matches!(url.scheme(), "https" | "http") || !only_origin {
            return Err(Invalid::new(format!(
                "{input:?} must be an origin like https://app.corp.example, with no path"
            )));
        }
        if url.scheme() == "http" && !is_loopback(&url) {
            return Err(Invalid::new(format!(
                "{input:?} must use https (plain http only for localhost)"
            )));
        }
        Ok(Self(origin.ascii_serialization()))
    }

    /// The origin `return_to` would send the browser to, if it may be a return URL at all.
    pub fn of_return_url(return_to: &str) -> Result<(Self, Url), Invalid> {
        let url = Url::parse(return_to)
            .map_err(|e| Invalid::new(format!("is not an absolute URL ({e})")))?;
        if !matches!(url.scheme(), "https" | "http") || url.fragment().is_some() {
            return Err(Invalid::new("must be an http(s) URL without a fragment"));
        }
        Ok((Self(url.origin().ascii_serialization()), url))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_is_all_or_named_instances() {
        assert_eq!(InstanceAccess::parse(&["*"]).unwrap(), InstanceAccess::All);
        let named = InstanceAccess::parse(&["corp", "ci", "corp"]).unwrap();
        assert_eq!(named.to_string(), "ci corp");
        assert!(named.allows(&InstanceName::parse("ci").unwrap()));
        assert!(!named.allows(&InstanceName::parse("other").unwrap()));
        assert_eq!(
            InstanceAccess::from_stored("*").unwrap(),
            InstanceAccess::All
        );
        assert!(InstanceAccess::parse(&["Bad Name"]).is_err());
    }

    #[test]
    fn origins_are_exact_and_return_urls_compare_by_origin() {
        let origin = ReturnOrigin::parse("https://App.Corp.example:443/").unwrap();
        assert_eq!(origin.as_str(), "https://app.corp.example");
        for bad in [
            "https://app.corp.example/path",
            "http://app.corp.example",
            "ftp://x",
            "app.corp",
        ] {
            assert!(ReturnOrigin::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            ReturnOrigin::parse("http://localhost:3000")
                .unwrap()
                .as_str(),
            "http://localhost:3000"
        );

        let (same, _) = ReturnOrigin::of_return_url("https://app.corp.example/done?x=1").unwrap();
        assert_eq!(same, origin);
        let (lookalike, _) =
            ReturnOrigin::of_return_url("https://app.corp.example.evil.test/").unwrap();
        assert_ne!(lookalike, origin);
        let (userinfo, _) =
            ReturnOrigin::of_return_url("https://app.corp.example@evil.test/").unwrap();
        assert_ne!(userinfo, origin);
    }
}
