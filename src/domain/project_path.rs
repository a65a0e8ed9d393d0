//! Which GitLab projects a grant or a service policy names: a project's full path, path
//! patterns (`group/app`, `group/*`, `group/**`, `**`), and the access level (`read`, `write`).
//!
//! GitLab finds a project by its full path without regard to case (`find_by_full_path`), so
//! every comparison here ignores ASCII case; a path keeps the spelling it was given for display.
//! A path is plain ASCII by construction, so ASCII case folding is the whole story.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use super::Invalid;

/// The longest full path GitLab keeps for a project (its `routes.path` column).
const MAX_PATH_LEN: usize = 255;

/// How many patterns one policy may list: enough for real policies, few enough to read.
const MAX_PATTERNS: usize = 50;

/// A GitLab project's full path, `group/sub/app`: at least a namespace and a project name.
///
/// The grammar is GitLab's own (`Gitlab::PathRegex`: letters, digits, `_`, `-`, `.`; no
/// `.git`/`.atom` ending), made stricter where GitLab's leniency only serves tricks: no leading
/// `_`/`.`/`-`, no trailing `.`, no `..`. Everything it admits is safe in a URL path as it is.
#[derive(Debug, Clone)]
pub struct ProjectPath(String);

impl ProjectPath {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let refuse = |why: String| {
            Invalid::new(format!(
                "{input:?} is not a GitLab project path such as group/app: {why}"
            ))
        };
        if input.len() > MAX_PATH_LEN {
            return Err(refuse(format!("longer than {MAX_PATH_LEN} characters")));
        }
        check_namespace_path(input).map_err(refuse)?;
        if !input.contains('/') {
            return Err(refuse(
                "a project lives in a group or a user's namespace, so its path has at least two \
                 segments"
                    .into(),
            ));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form GitLab's REST API takes as a project `:id`: `group%2Fsub%2Fapp`. Only `/` needs
    /// escaping: every other character a path may hold is unreserved in a URL.
    pub fn encoded(&self) -> String {
        self.0.replace('/', "%2F")
    }
}

impl fmt::Display for ProjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq for ProjectPath {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl Eq for ProjectPath {}

impl Hash for ProjectPath {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_caseless(&self.0, state);
    }
}

impl PartialOrd for ProjectPath {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ProjectPath {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_caseless(&self.0, &other.0)
    }
}

/// A set of projects named by path: `group/app` exactly, `group/*` the projects directly in
/// `group`, `group/**` every project anywhere below `group`, `**` every project.
#[derive(Debug, Clone)]
pub struct ProjectPattern {
    text: String,
    kind: PatternKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatternKind {
    Exact,
    /// `prefix/*`: the text minus its last two characters is the namespace.
    Children,
    /// `prefix/**`: the text minus its last three characters is the namespace.
    Below,
    Everything,
}

impl ProjectPattern {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let refuse = |why: String| {
            Invalid::new(format!(
                "{input:?} is not a project pattern (group/app, group/*, group/** or **): {why}"
            ))
        };
        let (kind, namespace) = if input == "**" {
            (PatternKind::Everything, None)
        } else if let Some(namespace) = input.strip_suffix("/**") {
            (PatternKind::Below, Some(namespace))
        } else if let Some(namespace) = input.strip_suffix("/*") {
            (PatternKind::Children, Some(namespace))
        } else {
            (PatternKind::Exact, None)
        };
        match (kind, namespace) {
            (PatternKind::Exact, _) => {
                if input.contains('*') {
                    return Err(refuse(
                        "'*' and '**' may only stand alone as the last segment".into(),
                    ));
                }
                ProjectPath::parse(input).map_err(|e| refuse(e.0))?;
            }
            (_, Some(namespace)) => {
                if namespace.contains('*') {
                    return Err(refuse(
                        "'*' and '**' may only stand alone as the last segment".into(),
                    ));
                }
                if namespace.len() > MAX_PATH_LEN {
                    return Err(refuse(format!("longer than {MAX_PATH_LEN} characters")));
                }
                check_namespace_path(namespace).map_err(refuse)?;
            }
            (_, None) => {}
        }
        Ok(Self {
            text: input.to_owned(),
            kind,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, project: &ProjectPath) -> bool {
        let path = project.as_str();
        match self.kind {
            PatternKind::Everything => true,
            PatternKind::Exact => path.eq_ignore_ascii_case(&self.text),
            PatternKind::Children => below(path, &self.text[..self.text.len() - 2])
                .is_some_and(|rest| !rest.contains('/')),
            PatternKind::Below => below(path, &self.text[..self.text.len() - 3]).is_some(),
        }
    }
}

/// What follows `namespace/` in `path`, if `path` lies below `namespace` (ignoring case).
fn below<'p>(path: &'p str, namespace: &str) -> Option<&'p str> {
    let n = namespace.len();
    let inside = path.len() > n + 1
        && path.as_bytes()[..n].eq_ignore_ascii_case(namespace.as_bytes())
        && path.as_bytes()[n] == b'/';
    inside.then(|| &path[n + 1..])
}

impl fmt::Display for ProjectPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for ProjectPattern {
    fn eq(&self, other: &Self) -> bool {
        self.text.eq_ignore_ascii_case(&other.text)
    }
}

impl Eq for ProjectPattern {}

impl Hash for ProjectPattern {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_caseless(&self.text, state);
    }
}

impl PartialOrd for ProjectPattern {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ProjectPattern {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_caseless(&self.text, &other.text)
    }
}

/// The projects a service may ever be granted: 1 to 50 patterns, sorted, without repeats
/// (patterns differing only in case are one pattern).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectPatterns(Vec<ProjectPattern>);

impl ProjectPatterns {
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, Invalid> {
        if patterns.is_empty() {
            return Err(Invalid::new(
                "must name at least one project pattern, or be [\"**\"] for every project",
            ));
        }
        if patterns.len() > MAX_PATTERNS {
            return Err(Invalid::new(format!(
                "may list at most {MAX_PATTERNS} project patterns (got {}); a group/** pattern \
                 covers a whole group",
                patterns.len()
            )));
        }
        let mut parsed = patterns
            .iter()
            .map(|p| ProjectPattern::parse(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        parsed.sort();
        parsed.dedup();
        Ok(Self(parsed))
    }

    /// Reads the form `Display` writes: patterns separated by spaces.
    pub fn from_stored(stored: &str) -> Result<Self, Invalid> {
        Self::parse(&stored.split_whitespace().collect::<Vec<_>>())
    }

    pub fn allows(&self, project: &ProjectPath) -> bool {
        self.0.iter().any(|pattern| pattern.matches(project))
    }

    pub fn as_strings(&self) -> Vec<String> {
        self.0.iter().map(|p| p.text.clone()).collect()
    }
}

impl Default for ProjectPatterns {
    /// Every project: what services registered before patterns existed may reach.
    fn default() -> Self {
        Self(vec![ProjectPattern {
            text: "**".to_owned(),
            kind: PatternKind::Everything,
        }])
    }
}

impl fmt::Display for ProjectPatterns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, pattern) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(&pattern.text)?;
        }
        Ok(())
    }
}

/// How much a grant may do in a project: `read` (clone, GET) or `write` (also push, change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Access {
    #[default]
    Read,
    Write,
}

impl Access {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        match input {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            _ => Err(Invalid::new(format!(
                "{input:?} is not an access level: use \"read\" or \"write\""
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }

    /// Whether holding `self` is enough for something that needs `wanted`.
    pub fn covers(self, wanted: Access) -> bool {
        self >= wanted
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks `/`-separated segments against GitLab's path grammar; says what is wrong, if anything.
fn check_namespace_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("it is empty".into());
    }
    if path.contains('%') {
        return Err("it is percent-encoded; give the path plainly, as group/app".into());
    }
    if path.starts_with('/') || path.ends_with('/') || path.contains("//") {
        return Err("segments are separated by single '/', with none before or after".into());
    }
    path.split('/').try_for_each(check_segment)
}

/// One group or project name: GitLab's rules, plus no leading `_`/`.` and no `..` anywhere.
fn check_segment(segment: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if let Some(bad) = segment.chars().find(|c| !allowed(*c)) {
        return Err(format!(
            "{segment:?} holds {bad:?}; a segment may hold only letters, digits, '_', '-' and '.'"
        ));
    }
    // GitLab's rule: "cannot start with '-'"; '_' and '.' may start a path.
    if segment.starts_with('-') {
        return Err(format!(
            "{segment:?} starts with '-', which GitLab does not allow"
        ));
    }
    if segment.ends_with('.') || segment.contains("..") {
        return Err(format!(
            "{segment:?} ends with '.' or holds \"..\", which GitLab does not allow"
        ));
    }
    let lower = segment.to_ascii_lowercase();
    if lower.ends_with(".git") || lower.ends_with(".atom") {
        return Err(format!(
            "{segment:?} ends with \".git\" or \".atom\"; name the project without the suffix"
        ));
    }
    Ok(())
}

fn cmp_caseless(a: &str, b: &str) -> Ordering {
    let a = a.bytes().map(|b| b.to_ascii_lowercase());
    a.cmp(b.bytes().map(|b| b.to_ascii_lowercase()))
}

fn hash_caseless<H: Hasher>(s: &str, state: &mut H) {
    for b in s.bytes() {
        state.write_u8(b.to_ascii_lowercase());
    }
    state.write_u8(0xff);
}

/// Also the strategies the route judges' property tests build paths with.
#[cfg(test)]
pub(crate) mod tests;
