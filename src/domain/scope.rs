use std::collections::BTreeSet;
use std::fmt;

use super::Invalid;

/// The OAuth scopes GitLab knows (GITLAB.md, "Scopes"). A scope outside this list makes
/// GitLab refuse the authorize request, so it is refused here first.
const GITLAB_SCOPES: &[&str] = &[
    "api",
    "read_api",
    "read_user",
    "read_repository",
    "write_repository",
    "read_registry",
    "write_registry",
    "read_virtual_registry",
    "write_virtual_registry",
    "create_runner",
    "manage_runner",
    "k8s_proxy",
    "ai_features",
    "sudo",
    "admin_mode",
    "openid",
    "profile",
    "email",
];

/// Scopes never counted against a service's limit: those that say who someone is and give no
/// access, and `self_rotate`, an access token's right to rotate itself (which labgate uses),
/// which reaches nothing else.
const UNCOUNTED_SCOPES: &[&str] = &["openid", "profile", "email", "self_rotate"];

/// A set of GitLab scopes, kept sorted so that equal sets compare and print the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScopeSet(BTreeSet<String>);

impl ScopeSet {
    /// Scopes for an instance's application: known to GitLab, at least one, `openid` among them
    /// (labgate always requests it to learn who connected).
    pub fn parse_registered<S: AsRef<str>>(scopes: &[S]) -> Result<Self, Invalid> {
        let set = Self::parse(scopes)?;
        if !set.0.contains("openid") {
            return Err(Invalid::new(
                "must include \"openid\": labgate always requests it to verify who connected, \
                 so tick it in GitLab's application too",
            ));
        }
        Ok(set)
    }

    pub fn parse<S: AsRef<str>>(scopes: &[S]) -> Result<Self, Invalid> {
        let mut set = BTreeSet::new();
        for scope in scopes {
            let scope = scope.as_ref().trim();
            if !GITLAB_SCOPES.contains(&scope) {
                return Err(Invalid::new(format!(
                    "{scope:?} is not a GitLab scope (known: {})",
                    GITLAB_SCOPES.join(", ")
                )));
            }
            set.insert(scope.to_owned());
        }
        if set.is_empty() {
            return Err(Invalid::new("must name at least one scope"));
        }
        Ok(Self(set))
    }

    /// Scopes as GitLab granted them, taken as they are: GitLab may know scopes labgate does not.
    pub fn granted<S: AsRef<str>>(scopes: impl IntoIterator<Item = S>) -> Self {
        Self(
            scopes
                .into_iter()
                .map(|s| s.as_ref().trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        )
    }

    /// Reads the space-separated form this type writes with `Display` (the stored form).
    pub fn from_stored(stored: &str) -> Result<Self, Invalid> {
        Self::parse(&stored.split_whitespace().collect::<Vec<_>>())
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// The scopes of `self` that `allowed` does not hold.
    pub fn outside(&self, allowed: &ScopeSet) -> Vec<&str> {
        self.iter().filter(|s| !allowed.0.contains(*s)).collect()
    }

    /// The access scopes of `self` beyond a service's limit; identity scopes are always allowed.
    pub fn beyond_policy(&self, policy: &ScopeSet) -> Vec<&str> {
        self.outside(policy)
            .into_iter()
            .filter(|s| !UNCOUNTED_SCOPES.contains(s))
            .collect()
    }

    /// Whether every access scope of `self` is within a service's limit: `beyond_policy` is
    /// empty, asked without listing what is beyond.
    pub fn within_policy(&self, policy: &ScopeSet) -> bool {
        self.iter()
            .all(|s| policy.0.contains(s) || UNCOUNTED_SCOPES.contains(&s))
    }

    /// The scopes both sets hold, plus `openid`, which every authorization asks for.
    pub fn common_with_openid(&self, other: &ScopeSet) -> Self {
        let mut common: BTreeSet<String> = self.0.intersection(&other.0).cloned().collect();
        common.insert("openid".to_owned());
        Self(common)
    }

    pub fn with_openid(mut self) -> Self {
        self.0.insert("openid".to_owned());
        self
    }

    /// Whether a token with these scopes can do what `wanted` names, counting what each scope
    /// implies in GitLab (`api` can pull and push; `write_repository` and `read_api` can pull).
    pub fn covers(&self, wanted: &ScopeSet) -> bool {
        wanted.iter().all(|w| {
            self.iter()
                .any(|held| held == w || implied(held).contains(&w))
        })
    }

    /// How much a token with these scopes can do; identity scopes count for nothing.
    pub fn privilege(&self) -> u32 {
        self.iter().map(weight).sum()
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(scope)?;
        }
        Ok(())
    }
}

/// What a scope grants beyond its own name (GITLAB.md, "Scopes").
fn implied(scope: &str) -> &'static [&'static str] {
    match scope {
        "api" => &[
            "read_api",
            "read_user",
            "read_repository",
            "write_repository",
            "read_registry",
            "write_registry",
        ],
        "read_api" => &["read_user", "read_repository"],
        "write_repository" => &["read_repository"],
        "write_registry" => &["read_registry"],
        _ => &[],
    }
}

/// A rough order of power, for choosing the least privileged of several connections.
fn weight(scope: &str) -> u32 {
    match scope {
        "openid" | "profile" | "email" => 0,
        "read_user" => 1,
        "read_repository" | "read_registry" | "read_virtual_registry" => 10,
        "read_api" => 40,
        "write_repository" | "write_registry" | "write_virtual_registry" => 50,
        "api" => 1_000,
        "sudo" | "admin_mode" => 10_000,
        _ => 100,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_dedups_and_round_trips() {
        let set = ScopeSet::parse_registered(&["read_api", "openid", "read_api"]).unwrap();
        assert_eq!(set.to_string(), "openid read_api");
        assert_eq!(ScopeSet::from_stored(&set.to_string()).unwrap(), set);
    }

    #[test]
    fn policy_checks_ignore_identity_scopes() {
        let policy = ScopeSet::parse(&["read_api", "read_repository"]).unwrap();
        let asked = ScopeSet::parse(&["openid", "email", "read_api", "write_repository"]).unwrap();
        assert_eq!(asked.beyond_policy(&policy), ["write_repository"]);
        assert!(!asked.within_policy(&policy));
        let identity_and_read = ScopeSet::parse(&["openid", "email", "read_api"]).unwrap();
        assert!(identity_and_read.within_policy(&policy));
        assert_eq!(
            asked.outside(&policy),
            ["email", "openid", "write_repository"]
        );
        let registered = ScopeSet::parse(&["openid", "read_api", "api"]).unwrap();
        assert_eq!(
            policy.common_with_openid(&registered).to_string(),
            "openid read_api"
        );
        assert_eq!(
            policy.with_openid().to_string(),
            "openid read_api read_repository"
        );
    }

    #[test]
    fn coverage_counts_what_scopes_imply_and_privilege_ignores_identity() {
        let set = |names: &[&str]| ScopeSet::parse(names).unwrap();
        assert!(set(&["api", "openid"]).covers(&set(&["read_repository", "write_repository"])));
        assert!(set(&["write_repository"]).covers(&set(&["read_repository"])));
        assert!(!set(&["read_repository"]).covers(&set(&["write_repository"])));
        assert!(!set(&["read_api"]).covers(&set(&["api"])));
        assert!(
            set(&["openid", "api"]).privilege()
                > set(&["openid", "profile", "email", "read_api", "read_repository"]).privilege()
        );
        assert_eq!(set(&["openid", "profile", "email"]).privilege(), 0);
    }

    #[test]
    fn refuses_unknown_empty_and_missing_openid() {
        let unknown = ScopeSet::parse(&["read_api", "write_everything"]).unwrap_err();
        assert!(
            unknown
                .0
                .contains("\"write_everything\" is not a GitLab scope")
        );
        let empty: [&str; 0] = [];
        assert!(
            ScopeSet::parse(&empty)
                .unwrap_err()
                .0
                .contains("at least one")
        );
        let no_openid = ScopeSet::parse_registered(&["read_api"]).unwrap_err();
        assert!(no_openid.0.contains("must include \"openid\""));
    }
}
