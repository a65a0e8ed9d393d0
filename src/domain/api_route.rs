//! Judging a GitLab REST API call made through the proxy with an access grant: which project it
//! touches, whether it reads or writes, and whether a grant may ever make it (SPEC, "Scoped
//! access"). Only `GET`/`HEAD /user` and calls on one project pass; the project's settings and
//! secrets never do, at any access level.
//!
//! GitLab facts this relies on (read in GitLab's source):
//! - `lib/api/api.rb`: a project `:id` is one segment (`[^/]+`), so a full path comes as
//!   `group%2Fapp`; `find_project` takes digits (`/^-?\d+$/`) as an id, anything with a `/` as a
//!   full path, and follows the redirects a renamed project leaves behind.
//! - Grape adds an optional format suffix to routes (`(.json)`, `(.:format)`), so
//!   `/projects/1/members.json` reaches `members`: names are compared with such suffixes off.
//! - Rails' default middleware (`Rack::MethodOverride`) turns a `POST` carrying `_method=DELETE`
//!   or `X-HTTP-Method-Override: DELETE` into a `DELETE`, so no write of any method reaches the
//!   project itself.

use super::request_path::{Segment, segments};
use super::{Access, ProjectPath, Refused};

/// A call the proxy may forward once the grant covers its project and access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCall {
    pub target: ApiTarget,
    pub needs: Access,
    /// The path after `/projects/{id}` exactly as received (`""` or starting with `/`), so the
    /// proxy forwards `/projects/{canonical id}{rest}` without re-encoding anything.
    pub rest: String,
    /// `rest` decoded once, for the audit log.
    pub rest_decoded: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiTarget {
    /// `GET /user`: who the grant acts as.
    User,
    Project(ProjectRef),
}

/// How the call names its project. A path still has to be resolved through the person's token:
/// GitLab follows a renamed project's old path to its new home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectRef {
    Path(ProjectPath),
    Id(u64),
}

impl std::fmt::Display for ProjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Path(path) => path.fmt(f),
            Self::Id(id) => id.fmt(f),
        }
    }
}

/// Under a project, first segments that are its settings or hold secrets: refused at any
/// access level. Beyond SPEC's list: everything that hands out or stores credentials (CI
/// triggers, integrations, runners, mirrors, secure files, clusters, Pages certificates, error
/// tracking keys), membership by other doors (invitations, access requests, importing members),
/// the namespaces a project could move or be shared to, and pipeline schedules (a schedule's
/// details carry its variables).
const NEVER: &[&str] = &[
    "access_requests",
    "access_tokens",
    "cluster_agents",
    "clusters",
    "deploy_keys",
    "deploy_tokens",
    "error_tracking",
    "export",
    "export_relations",
    "fork",
    "forks",
    "hooks",
    "import",
    "import_project_members",
    "integrations",
    "invitations",
    "job_token_scope",
    "members",
    "mirror",
    "pages",
    "pipeline_schedules",
    "push_rule",
    "remote_mirrors",
    "runners",
    // Terraform state files commonly hold the credentials of what they describe.
    "terraform",
    "secure_files",
    "services",
    "share",
    "share_locations",
    // Starring answers with the project's full description, runner token included.
    "star",
    "transfer",
    "transfer_locations",
    "triggers",
    "unstar",
    "variables",
];

/// Settings a grant may read (bots check protections and approval rules) but never change,
/// however much it may write: weakening a protection is not "writing to the project".
const READ_ONLY: &[&str] = &[
    "approval_rules",
    "approval_settings",
    "approvals",
    "archive",
    "external_status_checks",
    "freeze_periods",
    "merge_request_approval_setting",
    "protected_branches",
    "protected_environments",
    "protected_tags",
    "restore",
    "unarchive",
];

/// Deeper writes refused however much a grant may write: below `within` and one or more
/// segments naming an item (a branch, an issue, a merge request), a segment in `names` weakens
/// a protection or reaches another project.
struct RefusedWrite {
    within: &'static [&'static str],
    names: &'static [&'static str],
    why: &'static str,
}

const REFUSED_WRITES: &[RefusedWrite] = &[
    RefusedWrite {
        within: &["repository", "branches"],
        names: &["protect", "unprotect"],
        why: "protecting or unprotecting a branch changes the project's protections",
    },
    RefusedWrite {
        within: &["merge_requests"],
        names: &[
            "approval_rules",
            "approvals",
            "reset_approvals",
            "status_check_responses",
        ],
        why: "a merge request's approval rules and status checks are the project's protections",
    },
    RefusedWrite {
        within: &["issues"],
        names: &["move", "clone", "links"],
        why: "moving, cloning or linking an issue writes to another project, which the grant \
              may not name",
    },
];

/// Formats Grape may take off the end of a path (its built-in ones, `atom`, and the few GitLab
/// endpoints declare): `members.json` is `members`.
const FORMAT_SUFFIXES: &[&str] = &[
    "json",
    "xml",
    "txt",
    "binary",
    "serializable_hash",
    "atom",
    "yaml",
    "html",
];

/// Judges `method` on `raw_path`: the request path after `/gitlab/{instance}/api/v4`, exactly as
/// received (still percent-encoded, starting with `/`, without query).
pub fn judge_api(method: &str, raw_path: &str) -> Result<ApiCall, Refused> {
    let needs = match method {
        "GET" | "HEAD" => Access::Read,
        "POST" | "PUT" | "PATCH" | "DELETE" => Access::Write,
        _ => {
            return Err(Refused::outside(format!(
                "method {method:?} is not forwarded: use GET, HEAD, POST, PUT, PATCH or DELETE"
            )));
        }
    };
    let segments = segments(raw_path)?;
    let is_user = segments.len() == 1 && segments[0].raw == "user";
    if is_user {
        if needs != Access::Read {
            return Err(Refused::outside("/user may only be read (GET or HEAD)"));
        }
        return Ok(ApiCall {
            target: ApiTarget::User,
            needs,
            rest: String::new(),
            rest_decoded: String::new(),
        });
    }
    if segments.len() < 2 || segments[0].raw != "projects" {
        return Err(Refused::outside(
            "only GET /user and /projects/{id}/… are forwarded: lists and searches across \
             projects, groups and users are not",
        ));
    }
    let project = project_ref(&segments[1])?;
    let rest = &segments[2..];
    // GitLab's router never splits on an encoded '/' (file paths and branch names carry one),
    // but a front end that decodes it would: the rest is judged on both readings.
    let as_gitlab_reads: Vec<&str> = rest.iter().map(|s| s.decoded.as_str()).collect();
    let as_decoded: Vec<&str> = as_gitlab_reads.iter().flat_map(|s| s.split('/')).collect();
    if let Some(bad) = as_decoded
        .iter()
        .find(|part| part.is_empty() || part.chars().all(|c| c == '.'))
    {
        return Err(Refused::malformed(format!(
            "an encoded '/' (%2F) next to {bad:?} would make an empty or dot segment once \
             decoded"
        )));
    }
    judge_under_project(needs, &as_gitlab_reads)?;
    judge_under_project(needs, &as_decoded)?;
    Ok(ApiCall {
        target: ApiTarget::Project(project),
        needs,
        rest: rest.iter().map(|s| format!("/{}", s.raw)).collect(),
        rest_decoded: rest.iter().map(|s| format!("/{}", s.decoded)).collect(),
    })
}

/// The project `:id`: a numeric id (digits only, as GitLab's own links write it) or a full path.
fn project_ref(id: &Segment<'_>) -> Result<ProjectRef, Refused> {
    let text = id.decoded.as_str();
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u64>() {
            Ok(n) if !text.starts_with('0') => Ok(ProjectRef::Id(n)),
            _ => Err(Refused::malformed(format!(
                "project id {text:?} must be a positive number without leading zeros that \
                 fits in 64 bits"
            ))),
        };
    }
    if !text.contains('/') {
        return Err(Refused::malformed(format!(
            "project id {text:?} is neither a numeric id nor a URL-encoded full path such as \
             group%2Fapp"
        )));
    }
    let path = ProjectPath::parse(text).map_err(|e| Refused::malformed(e.0))?;
    let name = text.rsplit('/').next().unwrap_or(text);
    if strip_formats(name).len() != name.len() {
        return Err(Refused::malformed(format!(
            "project {text:?} ends in a format suffix that GitLab's router may take off; use \
             the project's numeric id"
        )));
    }
    Ok(ProjectRef::Path(path))
}

fn judge_under_project(needs: Access, rest: &[&str]) -> Result<(), Refused> {
    if rest.is_empty() {
        return match needs {
            Access::Read => Ok(()),
            Access::Write => Err(Refused::outside(
                "the project itself (its settings, its deletion) is never changed through a \
                 grant; only what lies under it",
            )),
        };
    }
    let name_at = |i: usize| route_name(rest[i], i + 1 == rest.len());
    let first_name = name_at(0);
    if NEVER.contains(&first_name.as_str()) {
        return Err(Refused::outside(format!(
            "/projects/{{id}}/{first_name} is the project's settings or secrets; no grant \
             reaches it"
        )));
    }
    if needs == Access::Write && READ_ONLY.contains(&first_name.as_str()) {
        return Err(Refused::outside(format!(
            "/projects/{{id}}/{first_name} may be read through a grant, never changed"
        )));
    }
    if needs == Access::Write {
        let names: Vec<String> = (0..rest.len()).map(name_at).collect();
        for rule in REFUSED_WRITES {
            let below = rule.within.len() + 1;
            let inside = names.len() > below
                && names
                    .iter()
                    .zip(rule.within)
                    .all(|(name, want)| name == want);
            if inside
                && names[below..]
                    .iter()
                    .any(|n| rule.names.contains(&n.as_str()))
            {
                return Err(Refused::outside(format!(
                    "writing to /projects/{{id}}/{} through a grant is refused: {}",
                    names.join("/"),
                    rule.why
                )));
            }
        }
    }
    if (0..rest.len()).any(|i| name_at(i) == "variables") {
        return Err(Refused::outside(
            "CI/CD variables hold secrets; no grant reaches them",
        ));
    }
    Ok(())
}

/// The name a route would see for this segment: lowercased (for comparison only), and, for
/// the last segment, without the format suffixes Grape takes off.
fn route_name(decoded: &str, last: bool) -> String {
    let name = if last {
        strip_formats(decoded)
    } else {
        decoded
    };
    name.to_ascii_lowercase()
}

fn strip_formats(mut name: &str) -> &str {
    while let Some((base, ext)) = name.rsplit_once('.') {
        if !FORMAT_SUFFIXES.iter().any(|f| ext.eq_ignore_ascii_case(f)) {
            break;
        }
        name = base;
    }
    name
}

#[cfg(test)]
mod tests;
