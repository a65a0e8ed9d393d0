use std::fmt;

use url::Url;

use super::Invalid;

/// A GitLab instance's URL: https, a host, an optional port and sub-path, nothing else.
/// Kept without a trailing slash, because GitLab's issuer has none and must match it exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl(Url);

impl BaseUrl {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let url = Url::parse(input.trim())
            .map_err(|e| Invalid::new(format!("is not a URL ({e}): {input:?}")))?;
        if url.scheme() != "https" {
            return Err(Invalid::new(format!(
                "must start with https:// (got {}://): GitLab's OAuth endpoints must be reached over TLS",
                url.scheme()
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(Invalid::new("has no host name"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Invalid::new(
                "must not carry a user name or password: put the client secret in client_secret",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(Invalid::new(
                "must not have a query string or fragment: give GitLab's root URL, e.g. https://git.corp/gitlab",
            ));
        }
        let mut url = url;
        let path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&path);
        Ok(Self(url))
    }

    /// The URL as GitLab's issuer spells it: no trailing slash, even for a root install.
    pub fn as_str(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }

    pub fn host(&self) -> &str {
        self.0.host_str().unwrap_or_default()
    }

    /// The host without the brackets of an IPv6 literal, as DNS and TLS want it.
    pub fn host_for_connect(&self) -> &str {
        self.host().trim_start_matches('[').trim_end_matches(']')
    }

    pub fn port(&self) -> u16 {
        self.0.port_or_known_default().unwrap_or(443)
    }

    /// `suffix` appended under the base, sub-path included: `/.well-known/openid-configuration`.
    pub fn join(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.as_str())
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sub_path_and_drops_trailing_slash() {
        let url = BaseUrl::parse("https://Git.Corp:8443/gitlab/").unwrap();
        assert_eq!(url.as_str(), "https://git.corp:8443/gitlab");
        assert_eq!(
            url.join("/oauth/token"),
            "https://git.corp:8443/gitlab/oauth/token"
        );
        assert_eq!(
            BaseUrl::parse("https://git.corp/").unwrap().as_str(),
            "https://git.corp"
        );
        assert_eq!(BaseUrl::parse("https://git.corp").unwrap().port(), 443);
    }

    #[test]
    fn refuses_what_cannot_be_an_issuer() {
        let cases = [
            ("git.corp", "is not a URL"),
            ("http://git.corp", "must start with https://"),
            ("https://user:pw@git.corp", "user name or password"),
            ("https://git.corp/gitlab?x=1", "query string"),
            ("https://git.corp/gitlab#top", "query string or fragment"),
        ];
        for (input, expected) in cases {
            let err = BaseUrl::parse(input).unwrap_err();
            assert!(err.0.contains(expected), "{input}: {err}");
        }
    }
}
