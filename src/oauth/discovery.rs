use serde::{Deserialize, Serialize};

/// The parts of GitLab's `/.well-known/openid-configuration` labgate relies on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    #[serde(default)]
    pub response_types_supported: Vec<String>,
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// RFC 9207: the provider adds `iss` to every authorization response.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

impl Discovery {
    /// The endpoints labgate will call, by name, for reports and responses.
    pub fn endpoints(&self) -> Vec<(&'static str, &str)> {
        let mut endpoints = vec![
            (
                "authorization_endpoint",
                self.authorization_endpoint.as_str(),
            ),
            ("token_endpoint", self.token_endpoint.as_str()),
            ("jwks_uri", self.jwks_uri.as_str()),
        ];
        let optional = [
            ("userinfo_endpoint", &self.userinfo_endpoint),
            ("revocation_endpoint", &self.revocation_endpoint),
            ("introspection_endpoint", &self.introspection_endpoint),
        ];
        endpoints.extend(
            optional
                .into_iter()
                .filter_map(|(name, url)| Some((name, url.as_deref()?))),
        );
        endpoints
    }

    /// What keeps labgate from running a PKCE authorization-code flow against these endpoints.
    /// Every endpoint must lie under `base_url`, as GitLab's do: the client secret and users'
    /// tokens are sent there, and to nowhere else.
    pub fn problems(&self, base_url: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.response_types_supported.iter().any(|t| t == "code") {
            problems.push("response_types_supported does not list \"code\"".to_owned());
        }
        if !self
            .code_challenge_methods_supported
            .iter()
            .any(|m| m == "S256")
        {
            problems
                .push("code_challenge_methods_supported does not list \"S256\" (PKCE)".to_owned());
        }
        if !self
            .id_token_signing_alg_values_supported
            .iter()
            .any(|a| a == "RS256")
        {
            problems
                .push("id_token_signing_alg_values_supported does not list \"RS256\"".to_owned());
        }
        let prefix = format!("{base_url}/");
        for (name, url) in self.endpoints() {
            if !url.starts_with(&prefix) {
                problems.push(format!("{name} {url:?} is not under base_url {prefix:?}"));
            }
        }
        problems
    }
}
