use super::*;

fn project(path: &str) -> ApiTarget {
    ApiTarget::Project(ProjectRef::Path(ProjectPath::parse(path).unwrap()))
}

fn id(n: u64) -> ApiTarget {
    ApiTarget::Project(ProjectRef::Id(n))
}

const R: Access = Access::Read;
const W: Access = Access::Write;

#[test]
fn allowed_calls_name_their_project_and_access() {
    let table = [
        ("GET", "/user", ApiTarget::User, R),
        ("HEAD", "/user", ApiTarget::User, R),
        ("GET", "/projects/42", id(42), R),
        ("HEAD", "/projects/group%2Fapp", project("group/app"), R),
        (
            "GET",
            "/projects/group%2fsub%2Fapp",
            project("group/sub/app"),
            R,
        ),
        (
            "GET",
            "/projects/Group%2FApp/issues",
            project("group/app"),
            R,
        ),
        (
            "GET",
            "/projects/group%2Fmy.app/wikis",
            project("group/my.app"),
            R,
        ),
        ("POST", "/projects/7/issues", id(7), W),
        ("PUT", "/projects/7/issues/3", id(7), W),
        ("PATCH", "/projects/7/merge_requests/1", id(7), W),
        ("DELETE", "/projects/7/repository/branches/topic", id(7), W),
        (
            "GET",
            "/projects/7/repository/files/README.md/raw",
            id(7),
            R,
        ),
        (
            "GET",
            "/projects/7/repository/files/variables.tf/raw",
            id(7),
            R,
        ),
        ("GET", "/projects/7/repository/commits/a+b", id(7), R),
        ("GET", "/projects/7/protected_branches", id(7), R),
        ("GET", "/projects/7/approval_rules", id(7), R),
        ("GET", "/projects/7/issues.json", id(7), R),
        ("GET", "/projects/7/pipelines/5/jobs", id(7), R),
        ("GET", "/projects/18446744073709551615", id(u64::MAX), R),
    ];
    for (method, raw, target, needs) in table {
        let call = judge_api(method, raw).unwrap_or_else(|e| panic!("{method} {raw}: {e}"));
        assert_eq!(call.target, target, "{method} {raw}");
        assert_eq!(call.needs, needs, "{method} {raw}");
        // What follows `/projects/{id}`, exactly as received.
        let after_id = raw.splitn(4, '/').nth(3).map(|r| format!("/{r}"));
        if call.target != ApiTarget::User {
            assert_eq!(call.rest, after_id.unwrap_or_default(), "{method} {raw}");
        }
    }
}

#[test]
fn the_rest_is_kept_as_received_and_decoded_for_the_audit() {
    let user = judge_api("GET", "/user").unwrap();
    assert_eq!((user.rest.as_str(), user.rest_decoded.as_str()), ("", ""));
    let root = judge_api("GET", "/projects/group%2Fapp").unwrap();
    assert_eq!((root.rest.as_str(), root.rest_decoded.as_str()), ("", ""));
    let file = judge_api("GET", "/projects/7/repository/files/my%20notes%3F.txt/raw").unwrap();
    assert_eq!(file.rest, "/repository/files/my%20notes%3F.txt/raw");
    assert_eq!(file.rest_decoded, "/repository/files/my notes?.txt/raw");
    let unicode = judge_api("GET", "/projects/7/repository/branches/caf%C3%A9").unwrap();
    assert_eq!(unicode.rest_decoded, "/repository/branches/café");
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
        "/star",
        "/unstar.json",
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
        "/merge_request_approval_setting",
        "/external_status_checks/2",
        "/freeze_periods/1",
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
fn writes_that_weaken_protections_or_reach_other_projects_are_refused() {
    for rest in [
        "/repository/branches/main/protect",
        "/repository/branches/feature%2Fx/unprotect",
        "/repository/branches/a/b/protect",
        "/merge_requests/4/approval_rules",
        "/merge_requests/4/approval_rules/7",
        "/merge_requests/4/approvals",
        "/merge_requests/4/reset_approvals",
        "/merge_requests/4/status_check_responses",
        "/issues/3/move",
        "/issues/3/clone.json",
        "/issues/3/links",
        "/issues/3/links/9",
        "/Issues/3/MOVE",
    ] {
        let raw = format!("/projects/group%2Fapp{rest}");
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            let err = judge_api(method, &raw).unwrap_err();
            assert!(
                matches!(err, Refused::Outside(_)),
                "{method} {raw}: {err:?}"
            );
        }
        // Reading them is reading the project.
        assert!(judge_api("GET", &raw).is_ok(), "GET {raw}");
    }
    let message = judge_api("POST", "/projects/1/issues/3/move")
        .unwrap_err()
        .to_string();
    assert!(message.contains("another project"), "{message}");
    // Ordinary writes on the same items still pass.
    for rest in [
        "/repository/branches",
        "/repository/branches/protect",
        "/merge_requests/4/approve",
        "/merge_requests/4/notes",
        "/issues/3/notes",
        "/issues",
    ] {
        let raw = format!("/projects/1{rest}");
        assert!(judge_api("POST", &raw).is_ok(), "POST {raw}");
    }
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
fn encoded_slashes_below_the_project_pass_as_gitlab_reads_them() {
    // File paths and branch names carry %2F, and GitLab's router never splits on it.
    let call = judge_api("GET", "/projects/1/repository/files/dir%2Ffile.txt/raw").unwrap();
    assert_eq!(call.rest, "/repository/files/dir%2Ffile.txt/raw");
    assert_eq!(call.rest_decoded, "/repository/files/dir/file.txt/raw");
    // Judged on the decoded reading too: what a decoding front end would route is refused.
    for hidden in [
        "/projects/1/members%2F5",
        "/projects/1/pipelines%2F5%2Fvariables",
        "/projects/1/hooks%2F1",
    ] {
        assert!(
            matches!(judge_api("GET", hidden), Err(Refused::Outside(_))),
            "{hidden}"
        );
    }
}

#[test]
fn refusal_messages_point_at_the_fix() {
    let message = |raw: &str| judge_api("GET", raw).unwrap_err().to_string();
    assert!(message("/projects/group%2Fapp.json").contains("numeric id"));
    assert!(message("/projects/group").contains("group%2Fapp"));
    assert!(message("/projects/1/a%2F..%2Fb").contains("%2F"));
    assert!(message("/projects/007").contains("leading zeros"));
    assert!(message("/projects/group%2F-app").contains("starts with '-'"));
    assert!(message("/groups").contains("/projects/{id}"));
}

mod path_tricks;
mod props;
