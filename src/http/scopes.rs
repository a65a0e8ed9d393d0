//! GitLab's OAuth scopes as GitLab's own application form describes them: for the admin
//! pages' checkboxes, and for the person asked to connect.

/// Every scope labgate accepts, in the order GitLab's form lists them, with GitLab's wording.
pub(super) const GITLAB_SCOPES: &[(&str, &str)] = &[
    (
        "api",
        "Grants complete read/write access to the API, including all groups and projects, the \
         container registry, the dependency proxy, and the package registry.",
    ),
    (
        "read_api",
        "Grants read access to the API, including all groups and projects, the container \
         registry, and the package registry.",
    ),
    (
        "read_user",
        "Grants read-only access to your profile through the /user API endpoint, which includes \
         username, public email, and full name. Also grants access to read-only API endpoints \
         under /users.",
    ),
    (
        "read_repository",
        "Grants read-only access to repositories on private projects using Git-over-HTTP or the \
         Repository Files API.",
    ),
    (
        "write_repository",
        "Grants read-write access to repositories on private projects using Git-over-HTTP (not \
         using the API).",
    ),
    (
        "read_registry",
        "Grants read-only access to container registry images on private projects.",
    ),
    (
        "write_registry",
        "Grants write access to container registry images on private projects.",
    ),
    (
        "read_virtual_registry",
        "Grants read-only access to container images through the dependency proxy.",
    ),
    (
        "write_virtual_registry",
        "Grants read, write, and delete access to container images through the dependency proxy.",
    ),
    ("create_runner", "Grants create access to the runners."),
    ("manage_runner", "Grants access to manage the runners."),
    (
        "k8s_proxy",
        "Grants permission to perform Kubernetes API calls using the agent for Kubernetes.",
    ),
    (
        "ai_features",
        "Grants access to GitLab Duo related API endpoints.",
    ),
    (
        "sudo",
        "Grants permission to perform API actions as any user in the system, when authenticated \
         as an admin user.",
    ),
    (
        "admin_mode",
        "Grants permission to perform API actions as an administrator, when Admin Mode is enabled.",
    ),
    (
        "openid",
        "Grants permission to authenticate with GitLab using OpenID Connect. Also gives read-only \
         access to the user's profile and group memberships. Required by labgate.",
    ),
    (
        "profile",
        "Grants read-only access to the user's profile data using OpenID Connect.",
    ),
    (
        "email",
        "Grants read-only access to the user's primary email address using OpenID Connect.",
    ),
];

/// What a new instance's form starts with ticked.
pub(super) const DEFAULT_INSTANCE_SCOPES: &[&str] = &["openid", "read_api", "read_repository"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ScopeSet;

    #[test]
    fn every_listed_scope_is_one_labgate_accepts() {
        for (scope, description) in GITLAB_SCOPES {
            assert!(ScopeSet::parse(&[*scope]).is_ok(), "{scope}");
            assert!(!description.is_empty());
        }
        assert!(ScopeSet::parse_registered(DEFAULT_INSTANCE_SCOPES).is_ok());
    }
}
