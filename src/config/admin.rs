//! `[admin] sign_in_instance`, `admin_groups`, `admin_users`: administrators sign in with
//! GitLab through one registered instance, if they are among the named groups or users.

use secrecy::SecretString;

use super::{ConfigError, RawAdmin};

/// The admin pages' and API's ways in: the admin token, and sign-in with GitLab.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub token: Option<SecretString>,
    /// Sign-in with GitLab (`sign_in_instance`), and who may.
    pub gitlab_sign_in: Option<GitLabSignIn>,
}

/// Who may sign in to the admin pages with GitLab, and through which instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitLabSignIn {
    /// The registered instance whose OAuth application and redirect URL are used.
    pub instance: String,
    /// Full paths of GitLab groups, as the ID token's `groups_direct` lists them.
    pub groups: Vec<String>,
    /// GitLab usernames (`preferred_username`).
    pub users: Vec<String>,
}

impl GitLabSignIn {
    /// Whether a GitLab user with these direct groups is an administrator. Usernames and group
    /// paths are case-insensitive in GitLab.
    pub fn admits(&self, username: &str, groups_direct: &[String]) -> bool {
        self.users.iter().any(|u| u.eq_ignore_ascii_case(username))
            || groups_direct
                .iter()
                .any(|g| self.groups.iter().any(|a| a.eq_ignore_ascii_case(g)))
    }
}

pub(super) fn gitlab_sign_in(raw: &RawAdmin) -> Result<Option<GitLabSignIn>, ConfigError> {
    let cleaned = |values: &Option<Vec<String>>| -> Vec<String> {
        values
            .iter()
            .flatten()
            .map(|v| v.trim().trim_matches('/').to_owned())
            .filter(|v| !v.is_empty())
            .collect()
    };
    let (groups, users) = (cleaned(&raw.admin_groups), cleaned(&raw.admin_users));
    let instance = raw
        .sign_in_instance
        .as_deref()
        .map(str::trim)
        .filter(|i| !i.is_empty());
    match instance {
        None if !groups.is_empty() || !users.is_empty() => Err(ConfigError::invalid(
            "admin.sign_in_instance",
            "admin_groups or admin_users is set, but no instance to sign in with: \
             name a registered instance",
        )),
        None => Ok(None),
        Some(_) if groups.is_empty() && users.is_empty() => Err(ConfigError::invalid(
            "admin.sign_in_instance",
            "is set, but neither admin.admin_groups nor admin.admin_users names who may \
             sign in: with neither, no one could",
        )),
        Some(instance) => Ok(Some(GitLabSignIn {
            instance: instance.to_owned(),
            groups,
            users,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(instance: Option<&str>, groups: &[&str], users: &[&str]) -> RawAdmin {
        let list = |v: &[&str]| Some(v.iter().map(|s| (*s).to_owned()).collect());
        RawAdmin {
            sign_in_instance: instance.map(str::to_owned),
            admin_groups: list(groups),
            admin_users: list(users),
            ..RawAdmin::default()
        }
    }

    #[test]
    fn an_instance_needs_someone_allowed_and_the_lists_need_an_instance() {
        let none = gitlab_sign_in(&raw(Some("corp"), &[], &[])).unwrap_err();
        assert!(
            none.to_string().contains("admin.sign_in_instance"),
            "{none}"
        );
        assert!(none.to_string().contains("admin_groups"), "{none}");
        let orphan = gitlab_sign_in(&raw(None, &["platform"], &[])).unwrap_err();
        assert!(orphan.to_string().contains("admin.sign_in_instance"));
        assert_eq!(gitlab_sign_in(&raw(None, &[], &[])).unwrap(), None);
        let set = gitlab_sign_in(&raw(Some("corp"), &["platform/"], &["alice"]))
            .unwrap()
            .unwrap();
        assert!(set.admits("Alice", &[]));
        assert!(set.admits("bob", &["platform".to_owned()]));
        assert!(!set.admits("bob", &["platform/sub".to_owned()]));
    }
}
