use proptest::prelude::*;

use super::*;
use crate::domain::project_path::tests::path_strategy;

fn project(path: &str) -> ApiTarget {
    ApiTarget::Project(ProjectRef::Path(ProjectPath::parse(path).unwrap()))
}

fn id(n: u64) -> ApiTarget {
    ApiTarget::Project(ProjectRef::Id(n))
}

#[test]
fn allowed_calls_name_their_project_access_and_rest() {
    // (method, raw path, target, needs, rest, rest decoded)
    let table = [
        ("GET", "/user", ApiTarget::User, Access::Read, "", ""),
        ("HEAD", "/user", ApiTarget::User, Access::Read, "", ""),
        ("GET", "/projects/42", id(42), Access::Read, "", ""),
        (
            "HEAD",
            "/projects/group%2Fapp",
            project("group/app"),
            Access::Read,
            "",
            "",
        ),
        (
            "GET",
            "/projects/group%2fsub%2Fapp",
            project("group/sub/app"),
            Access::Read,
            "",
            "",
        ),
        (
            "GET",
            "/projects/Group%2FApp/issues",
            project("group/app"),
            Access::Read,
            "/issues",
            "/issues",
        ),
        (
            "POST",
            "/projects/7/issues",
            id(7),
            Access::Write,
            "/issues",
            "/issues",
        ),
        (
            "PUT",
            "/projects/7/issues/3",
            id(7),
            Access::Write,
            "/issues/3",
            "/issues/3",
        ),
        (
            "PATCH",
            "/projects/7/merge_requests/1",
            id(7),
            Access::Write,
            "/merge_requests/1",
            "/merge_requests/1",
        ),
        (
            "DELETE",
            "/projects/7/repository/branches/topic",
            id(7),
            Access::Write,
            "/repository/branches/topic",
            "/repository/branches/topic",
        ),
        (
            "GET",
            "/projects/7/repository/files/README.md/raw",
            id(7),
            Access::Read,
            "/repository/files/README.md/raw",
            "/repository/files/README.md/raw",
        ),
        (
            "GET",
            "/projects/7/repository/files/my%20notes.txt",
            id(7),
            Access::Read,
            "/repository/files/my%20notes.txt",
            "/repository/files/my notes.txt",
        ),
        (
            "GET",
            "/projects/7/repository/files/variables.tf/raw",
            id(7),
            Access::Read,
            "/repository/files/variables.tf/raw",
            "/repository/files/variables.tf/raw",
        ),
        (
            "GET",
            "/projects/7/repository/commits/a+b",
            id(7),
            Access::Read,
            "/repository/commits/a+b",
            "/repository/commits/a+b",
        ),
        (
            "GET",
            "/projects/7/protected_branches",
            id(7),
            Access::Read,
            "/protected_branches",
            "/protected_branches",
        ),
        (
            "GET",
            "/projects/7/approval_rules",
            id(7),
            Access::Read,
            "/approval_rules",
            "/approval_rules",
        ),
        (
            "GET",
            "/projects/7/issues.json",
            id(7),
            Access::Read,
            "/issues.json",
            "/issues.json",
        ),
        (
            "GET",
            "/projects/7/pipelines/5/jobs",
            id(7),
            Access::Read,
            "/pipelines/5/jobs",
            "/pipelines/5/jobs",
        ),
        (
            "GET",
            "/projects/group%2Fmy.app/wikis",
            project("group/my.app"),
            Access::Read,
            "/wikis",
            "/wikis",
        ),
        (
            "GET",
            "/projects/18446744073709551615",
            id(u64::MAX),
            Access::Read,
            "",
            "",
        ),
    ];
    for (method, raw, target, needs, rest, rest_decoded) in table {
        let call = judge_api(method, raw).unwrap_or_else(|e| panic!("{method} {raw}: {e}"));
        assert_eq!(call.target, target, "{method} {raw}");
        assert_eq!(call.needs, needs, "{method} {raw}");
        assert_eq!(call.rest, rest, "{method} {raw}");
        assert_eq!(call.rest_decoded, rest_decoded, "{method} {raw}");
    }
}

#[test]
fn a_path_keeps_its_spelling_for_display() {
    let call = judge_api("GET", "/projects/Group%2FApp").unwrap();
    let ApiTarget::Project(ProjectRef::Path(path)) = &call.target else {
        panic!("{call:?}");
    };
    assert_eq!(path.as_str(), "Group/App");
    assert_eq!(ProjectRef::Path(path.clone()).to_string(), "Group/App");
    assert_eq!(ProjectRef::Id(9).to_string(), "9");
}

#[test]
fn refuses_other_methods() {
    for method in [
        "OPTIONS", "TRACE", "CONNECT", "PROPFIND", "get", "Post", "", "GET ",
    ] {
        let err = judge_api(method, "/projects/1/issues").unwrap_err();
        assert!(matches!(err, Refused::Outside(_)), "{method:?}: {err:?}");
        assert!(err.to_string().contains("is not forwarded"), "{err}");
    }
}

#[test]
fn refuses_everything_outside_one_project() {
    for (method, raw) in [
        ("POST", "/user"),
        ("DELETE", "/user"),
        ("GET", "/user/keys"),
        ("GET", "/user/emails"),
        ("GET", "/users"),
        ("GET", "/users/1"),
        ("GET", "/projects"),
        ("POST", "/projects"),
        ("GET", "/groups"),
        ("GET", "/groups/g/projects"),
        ("GET", "/search"),
        ("GET", "/snippets"),
        ("GET", "/namespaces"),
        ("GET", "/version"),
        ("GET", "/graphql"),
        ("GET", "/personal_access_tokens"),
        ("GET", "/Projects/1"),
        ("GET", "/user.json"),
        ("GET", "/projects.json"),
        ("GET", "/application/settings"),
    ] {
        let err = judge_api(method, raw).unwrap_err();
        assert!(
            matches!(err, Refused::Outside(_)),
            "{method} {raw}: {err:?}"
        );
    }
}

#[test]
fn refuses_the_projects_settings_and_secrets() {
    let never = [
        "/members",
        "/members/all",
        "/members/5",
        "/access_tokens",
        "/access_tokens/self/rotate",
        "/deploy_keys",
        "/deploy_tokens",
        "/hooks",
        "/hooks/1/test/push_events",
        "/variables",
        "/variables/KEY",
        "/transfer",
        "/transfer_locations",
        "/share",
        "/share/5",
        "/share_locations",
        "/fork",
        "/fork/9",
        "/forks",
        "/export",
        "/export/download",
        "/export_relations",
        "/import",
        "/import_project_members/9",
        "/triggers",
        "/integrations",
        "/integrations/slack",
        "/services/jira",
        "/runners",
        "/invitations",
        "/access_requests",
        "/remote_mirrors",
        "/mirror/pull",
        "/secure_files",
        "/job_token_scope",
        "/cluster_agents",
        "/clusters",
        "/push_rule",
        "/pages",
        "/pages/domains",
        "/error_tracking/client_keys",
        "/pipeline_schedules",
        "/pipeline_schedules/3",
        "/pipelines/5/variables",
        "/pipeline_schedules/3/variables/K",
        "/jobs/1/variables",
        "/anything/variables/x",
        // Grape's format suffix and case do not hide a name.
        "/members.json",
        "/variables.xml",
        "/hooks.JSON",
        "/members.json.json",
        "/MEMBERS",
        "/pipelines/5/Variables.json",
        "/Members/all",
    ];
    for rest in never {
        for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] {
            let raw = format!("/projects/group%2Fapp{rest}");
            let err = judge_api(method, &raw).unwrap_err();
            assert!(
                matches!(err, Refused::Outside(_)),
                "{method} {raw}: {err:?}"
            );
        }
    }
    let message = judge_api("GET", "/projects/1/members")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("members") && message.contains("settings or secrets"),
        "{message}"
    );
}

#[test]
fn settings_may_be_read_but_never_changed() {
    for rest in [
        "/protected_branches",
        "/protected_branches/main",
        "/protected_tags",
        "/protected_environments/production",
        "/approval_rules/1",
        "/approvals",
        "/approval_settings",
        "/archive",
        "/unarchive",
        "/restore",
        "/protected_branches.json",
    ] {
        let raw = format!("/projects/1{rest}");
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            let err = judge_api(method, &raw).unwrap_err();
            assert!(
                matches!(err, Refused::Outside(_)),
                "{method} {raw}: {err:?}"
            );
        }
    }
    assert!(judge_api("GET", "/projects/1/protected_branches/main").is_ok());
}

#[test]
fn the_project_itself_is_read_only() {
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        for raw in ["/projects/1", "/projects/group%2Fapp"] {
            let err = judge_api(method, raw).unwrap_err();
            assert!(
                matches!(err, Refused::Outside(_)),
                "{method} {raw}: {err:?}"
            );
        }
    }
}

#[test]
fn refuses_path_tricks() {
    let tricks = [
        // dot segments, raw or encoded
        "/projects/1/../2",
        "/projects/1/./issues",
        "/projects/1/issues/..",
        "/projects/..",
        "/projects/1/%2e%2e/2",
        "/projects/1/%2E%2E/2",
        "/projects/1/%2E./2",
        "/projects/1/.%2e/2",
        "/projects/group%2F..%2Fother",
        "/projects/group%2F.%2Fapp",
        "/projects/%2E%2E%2Fx",
        "/projects/1/...",
        "/projects/1/%C0%AE%C0%AE/2",
        // empty segments
        "/projects//1",
        "/projects/1//issues",
        "/projects/1/",
        "/projects/1/issues/",
        "//user",
        "/user/",
        "/",
        // separators some servers honour
        "/projects/1;x/issues",
        "/projects/1/issues;jsessionid=1",
        "/projects/1%3B/issues",
        "/projects/1/a\\b",
        "/projects/1/a%5cb",
        "/projects/1/a%5Cb",
        "/projects/group%5Capp",
        // NUL and control characters
        "/projects/1/a%00",
        "/projects/1%00",
        "/projects/12%0Agroup%2Fapp",
        "/projects/1/a%0d%0a",
        "/projects/1/a%7f",
        "/projects/1/\u{7}",
        "/projects/1/a b",
        // double and broken encoding, non-UTF-8
        "/projects/group%252Fapp",
        "/projects/1/a%2525",
        "/projects/1/%zz",
        "/projects/1/%2",
        "/projects/1/%",
        "/projects/group%2",
        "/projects/1/%FF",
        "/projects/1/%C3",
        // needless encoding GitLab's router would read as the letter itself
        "/projects/1/%6Dembers",
        "/projects/1/%6dembers",
        "/projects/%31",
        "/%75ser",
        "/%70rojects/1",
        "/projects/group%2F%61pp",
        // an encoded slash outside the id
        "/projects/1/repository/files/a%2Fb",
        "/projects/1/repository/files/a%2fb/raw",
        "/projects/1/x%2F..%2F..%2Fmembers",
        "/user%2Fkeys",
        "/projects%2F1",
        // ids that are not one project
        "/projects/group",
        "/projects/group%2F",
        "/projects/%2Fgroup%2Fapp",
        "/projects/group%2F%2Fapp",
        "/projects/0",
        "/projects/007",
        "/projects/-1",
        "/projects/+1",
        "/projects/1.0",
        "/projects/18446744073709551616",
        "/projects/99999999999999999999999",
        "/projects/group%2Fapp%20",
        "/projects/group%2Fap%2Bp",
        "/projects/group%2Fapp+x",
        // format suffixes GitLab might take off the id
        "/projects/123.json",
        "/projects/group%2Fapp.json",
        "/projects/group%2Fapp.JSON",
        "/projects/group%2Fapp.xml",
        "/projects/group%2Fapp.txt",
        "/projects/group%2Fapp.binary",
        "/projects/group%2Fapp.atom",
        "/projects/group%2Fapp.json/issues",
        // not a path at all
        "",
        "projects/1",
        "/projects/caf\u{e9}%2Fx",
    ];
    for raw in tricks {
        for method in ["GET", "POST"] {
            let err = judge_api(method, raw).unwrap_err();
            assert!(
                matches!(err, Refused::Malformed(_) | Refused::Outside(_)),
                "{method} {raw:?}"
            );
        }
    }
    // The ones that look like a project call are refused as malformed, not as outside.
    for raw in [
        "/projects/1/../2",
        "/projects/group%252Fapp",
        "/projects/1/a%2Fb",
        "/projects/group%2Fapp.json",
        "/projects/123.json",
        "/projects/007",
        "/projects/1/%6Dembers",
    ] {
        assert!(
            matches!(judge_api("GET", raw), Err(Refused::Malformed(_))),
            "{raw}"
        );
    }
}

#[test]
fn refusal_messages_point_at_the_fix() {
    let message = |raw: &str| judge_api("GET", raw).unwrap_err().to_string();
    assert!(message("/projects/group%2Fapp.json").contains("numeric id"));
    assert!(message("/projects/group").contains("group%2Fapp"));
    assert!(message("/projects/1/a%2Fb").contains("%2F"));
    assert!(message("/projects/007").contains("leading zeros"));
    assert!(message("/projects/group%2F-app").contains("starts with '-'"));
    assert!(message("/groups").contains("/projects/{id}"));
}

/// What a lenient front end might make of a path: decode until nothing changes (so `%2F` becomes
/// a separator), treat `\` and `;` as separators, squeeze `//`, resolve `.` and `..`.
fn lenient(raw: &str) -> Vec<String> {
    let mut text = raw.to_owned();
    loop {
        let next = percent_encoding::percent_decode_str(&text)
            .decode_utf8_lossy()
            .into_owned();
        if next == text {
            break;
        }
        text = next;
    }
    let mut out: Vec<String> = Vec::new();
    for seg in text.split(['/', '\\', ';']) {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s.to_ascii_lowercase()),
        }
    }
    out
}

fn token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "/",
        "/",
        "/",
        "..",
        ".",
        "%2e",
        "%2E",
        "%2F",
        "%2f",
        "%252F",
        "%25",
        ";",
        "\\",
        "%5c",
        "%00",
        "%0A",
        "+",
        "%20",
        ".json",
        "projects",
        "projects",
        "user",
        "members",
        "variables",
        "hooks",
        "issues",
        "group",
        "app",
        "other",
        "1",
        "2",
        "0",
        "%6D",
    ])
}

proptest! {
    #[test]
    fn never_panics(method in "[A-Z]{0,7}", raw in "\\PC{0,60}") {
        let _ = judge_api(&method, &raw);
    }

    #[test]
    fn encoded_paths_name_their_project(p in path_strategy(), lower_hex in any::<bool>()) {
        let project = ProjectPath::parse(&p).unwrap();
        let mut id = project.encoded();
        if lower_hex {
            id = id.replace("%2F", "%2f");
        }
        let call = judge_api("GET", &format!("/projects/{id}/issues")).unwrap();
        prop_assert_eq!(call.target, ApiTarget::Project(ProjectRef::Path(project)));
        prop_assert_eq!(call.rest, "/issues");
    }

    /// Whatever is accepted means the same to a lenient front end as to labgate: the same
    /// project, and nothing under it that a grant may not reach.
    #[test]
    fn accepted_paths_survive_lenient_readings(
        tokens in prop::collection::vec(token(), 1..12),
        method in prop::sample::select(vec!["GET", "POST", "DELETE"]),
    ) {
        let raw = format!("/{}", tokens.concat());
        let Ok(call) = judge_api(method, &raw) else { return Ok(()) };
        let seen = lenient(&raw);
        match &call.target {
            ApiTarget::User => prop_assert_eq!(seen, vec!["user".to_owned()]),
            ApiTarget::Project(reference) => {
                let name: Vec<String> = match reference {
                    ProjectRef::Id(n) => vec![n.to_string()],
                    ProjectRef::Path(p) => p.as_str().to_ascii_lowercase().split('/').map(str::to_owned).collect(),
                };
                prop_assert_eq!(&seen[0], "projects");
                prop_assert_eq!(&seen[1..=name.len()], &name[..]);
                let under = &seen[name.len() + 1..];
                if let Some(first) = under.first() {
                    prop_assert!(!NEVER.contains(&route_name(first, under.len() == 1).as_str()));
                }
                prop_assert!(under.iter().all(|s| s != "variables"));
                prop_assert!(!call.rest_decoded.contains(['%', '\\', ';']));
            }
        }
    }
}
