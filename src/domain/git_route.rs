//! Judging a git smart-HTTP call made through the proxy (`/git/{instance}/{project}.git/…`):
//! only the three endpoints of the smart protocol (v0 and v2 alike) pass; Git LFS, the dumb
//! protocol and anything else under a repository do not.
//!
//! GitLab facts this relies on (`config/routes/git_http.rb`, `lib/gitlab/path_regex.rb`):
//! - the endpoints are `GET {repo}.git/info/refs`, `POST {repo}.git/git-upload-pack` and
//!   `POST {repo}.git/git-receive-pack`; LFS lives under `info/lfs/` and `gitlab-lfs/`;
//! - `GET {project}/info/refs` without `.git` is redirected to the `.git` form, so git then
//!   talks to the `.git` URL. labgate accepts both forms for all three endpoints (git keeps
//!   using whichever URL it was given) and always forwards to the `.git` form;
//! - the same routes serve other repositories than a project's: `{project}.wiki.git` (its
//!   wiki), `{project}.design.git` (its designs), `snippets/{id}.git` and
//!   `{project}/snippets/{id}.git` (snippets). A grant names projects, so those are refused.

use super::request_path::segments;
use super::{Access, ProjectPath, Refused};

/// A git call the proxy may forward once the grant covers its project and access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitCall {
    pub project: ProjectPath,
    pub service: GitService,
    pub endpoint: GitEndpoint,
    /// `write` for anything of `git-receive-pack` (a push), even its ref advertisement: a
    /// read grant learns at the first request that it cannot push.
    pub needs: Access,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitService {
    /// Fetch and clone.
    UploadPack,
    /// Push.
    ReceivePack,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitEndpoint {
    /// `GET …/info/refs?service=…`: the ref advertisement.
    InfoRefs,
    /// `POST …/git-upload-pack` or `POST …/git-receive-pack`: the exchange itself.
    Rpc,
}

impl GitService {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UploadPack => "git-upload-pack",
            Self::ReceivePack => "git-receive-pack",
        }
    }
}

impl GitCall {
    /// The path to ask GitLab for, below the instance's base URL, built from the parsed project
    /// (never from the raw request): `/{project}.git/info/refs` or `/{project}.git/{service}`.
    pub fn upstream_path(&self) -> String {
        match self.endpoint {
            GitEndpoint::InfoRefs => format!("/{}.git/info/refs", self.project),
            GitEndpoint::Rpc => format!("/{}.git/{}", self.project, self.service.as_str()),
        }
    }

    /// The query to send with [`Self::upstream_path`]: `service=…` for the ref advertisement.
    pub fn upstream_query(&self) -> Option<String> {
        (self.endpoint == GitEndpoint::InfoRefs)
            .then(|| format!("service={}", self.service.as_str()))
    }
}

/// Judges `method` on `raw_path` (after `/git/{instance}`, as received, starting with `/`) with
/// the raw query string (without `?`, empty if none).
pub fn judge_git(method: &str, raw_path: &str, query: &str) -> Result<GitCall, Refused> {
    if raw_path.contains('%') {
        return Err(Refused::malformed(
            "git paths are plain: percent-encoding is refused (the project is group/app, not \
             group%2Fapp)",
        ));
    }
    let segments = segments(raw_path)?;
    let names: Vec<&str> = segments.iter().map(|s| s.raw).collect();
    let (endpoint, service, repo) = match names.as_slice() {
        [repo @ .., "info", "refs"] => (GitEndpoint::InfoRefs, info_refs_service(query)?, repo),
        [repo @ .., "git-upload-pack"] => (GitEndpoint::Rpc, GitService::UploadPack, repo),
        [repo @ .., "git-receive-pack"] => (GitEndpoint::Rpc, GitService::ReceivePack, repo),
        _ => return Err(Refused::NotGit),
    };
    let expected_method = match endpoint {
        GitEndpoint::InfoRefs => "GET",
        GitEndpoint::Rpc => "POST",
    };
    if method != expected_method {
        return Err(Refused::NotGit);
    }
    if endpoint == GitEndpoint::Rpc && !query.is_empty() {
        return Err(Refused::malformed(format!(
            "{} takes no query string",
            service.as_str()
        )));
    }
    let project = repository_project(repo)?;
    let needs = match service {
        GitService::UploadPack => Access::Read,
        GitService::ReceivePack => Access::Write,
    };
    Ok(GitCall {
        project,
        service,
        endpoint,
        needs,
    })
}

/// The one parameter `info/refs` takes. Without it git asks for the dumb protocol, which
/// GitLab does not serve either.
fn info_refs_service(query: &str) -> Result<GitService, Refused> {
    match query {
        "service=git-upload-pack" => Ok(GitService::UploadPack),
        "service=git-receive-pack" => Ok(GitService::ReceivePack),
        "" => Err(Refused::NotGit),
        _ => Err(Refused::malformed(
            "info/refs takes exactly one query parameter: service=git-upload-pack or \
             service=git-receive-pack",
        )),
    }
}

/// The project whose own repository `repo` (the segments before the endpoint) names.
fn repository_project(repo: &[&str]) -> Result<ProjectPath, Refused> {
    let Some((last, namespace)) = repo.split_last() else {
        return Err(Refused::malformed("the path names no repository"));
    };
    let name = last.strip_suffix(".git").unwrap_or(last);
    let lower = name.to_ascii_lowercase();
    let snippet = namespace
        .iter()
        .any(|segment| segment.eq_ignore_ascii_case("snippets"));
    if snippet || lower.ends_with(".wiki") || lower.ends_with(".design") {
        return Err(Refused::NotGit);
    }
    let mut path = namespace.join("/");
    if !path.is_empty() {
        path.push('/');
    }
    path.push_str(name);
    ProjectPath::parse(&path).map_err(|e| Refused::malformed(e.0))
}

#[cfg(test)]
mod tests;
