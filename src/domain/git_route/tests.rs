use proptest::prelude::*;

use super::*;
use crate::domain::project_path::tests::path_strategy;

const UPLOAD: &str = "service=git-upload-pack";
const RECEIVE: &str = "service=git-receive-pack";

fn call(method: &str, raw: &str, query: &str) -> GitCall {
    judge_git(method, raw, query).unwrap_or_else(|e| panic!("{method} {raw}?{query}: {e}"))
}

#[test]
fn the_three_smart_http_endpoints_pass() {
    use GitEndpoint::*;
    use GitService::*;
    // (method, path, query, project, service, endpoint, needs, upstream path)
    let table = [
        (
            "GET",
            "/group/app.git/info/refs",
            UPLOAD,
            "group/app",
            UploadPack,
            InfoRefs,
            Access::Read,
            "/group/app.git/info/refs",
        ),
        (
            "GET",
            "/group/app.git/info/refs",
            RECEIVE,
            "group/app",
            ReceivePack,
            InfoRefs,
            Access::Write,
            "/group/app.git/info/refs",
        ),
        (
            "POST",
            "/group/app.git/git-upload-pack",
            "",
            "group/app",
            UploadPack,
            Rpc,
            Access::Read,
            "/group/app.git/git-upload-pack",
        ),
        (
            "POST",
            "/group/app.git/git-receive-pack",
            "",
            "group/app",
            ReceivePack,
            Rpc,
            Access::Write,
            "/group/app.git/git-receive-pack",
        ),
        (
            "GET",
            "/a/b/c/app.git/info/refs",
            UPLOAD,
            "a/b/c/app",
            UploadPack,
            InfoRefs,
            Access::Read,
            "/a/b/c/app.git/info/refs",
        ),
        // Without `.git`, as GitLab accepts: forwarded to the `.git` form.
        (
            "GET",
            "/group/app/info/refs",
            UPLOAD,
            "group/app",
            UploadPack,
            InfoRefs,
            Access::Read,
            "/group/app.git/info/refs",
        ),
        (
            "POST",
            "/group/app/git-upload-pack",
            "",
            "group/app",
            UploadPack,
            Rpc,
            Access::Read,
            "/group/app.git/git-upload-pack",
        ),
        (
            "POST",
            "/Group/App/git-receive-pack",
            "",
            "group/app",
            ReceivePack,
            Rpc,
            Access::Write,
            "/Group/App.git/git-receive-pack",
        ),
        // A project named `snippets`, or with a dot in its name, is still a project.
        (
            "GET",
            "/group/snippets.git/info/refs",
            UPLOAD,
            "group/snippets",
            UploadPack,
            InfoRefs,
            Access::Read,
            "/group/snippets.git/info/refs",
        ),
        (
            "GET",
            "/group/my.app.git/info/refs",
            UPLOAD,
            "group/my.app",
            UploadPack,
            InfoRefs,
            Access::Read,
            "/group/my.app.git/info/refs",
        ),
    ];
    for (method, raw, query, project, service, endpoint, needs, upstream) in table {
        let git = call(method, raw, query);
        assert_eq!(git.project, ProjectPath::parse(project).unwrap(), "{raw}");
        assert_eq!(git.service, service, "{raw}");
        assert_eq!(git.endpoint, endpoint, "{raw}");
        assert_eq!(git.needs, needs, "{raw}");
        assert_eq!(git.upstream_path(), upstream, "{raw}");
    }
}

#[test]
fn upstream_query_only_for_the_ref_advertisement() {
    let refs = call("GET", "/g/a.git/info/refs", RECEIVE);
    assert_eq!(refs.upstream_query().as_deref(), Some(RECEIVE));
    assert_eq!(
        call("POST", "/g/a.git/git-upload-pack", "").upstream_query(),
        None
    );
    assert_eq!(GitService::UploadPack.as_str(), "git-upload-pack");
}

#[test]
fn anything_else_under_a_repository_is_not_git() {
    for (method, raw, query) in [
        // Git LFS and GitLab's LFS storage
        ("POST", "/group/app.git/info/lfs/objects/batch", ""),
        ("POST", "/group/app.git/info/lfs/locks/verify", ""),
        ("GET", "/group/app.git/info/lfs/objects/abc", ""),
        ("GET", "/group/app.git/gitlab-lfs/objects/0123abcd", ""),
        // the dumb protocol
        ("GET", "/group/app.git/info/refs", ""),
        ("GET", "/group/app.git/HEAD", ""),
        ("GET", "/group/app.git/objects/info/packs", ""),
        ("GET", "/group/app.git/objects/ab/cdef", ""),
        // wrong method for the endpoint
        ("POST", "/group/app.git/info/refs", UPLOAD),
        ("HEAD", "/group/app.git/info/refs", UPLOAD),
        ("PUT", "/group/app.git/info/refs", UPLOAD),
        ("GET", "/group/app.git/git-upload-pack", ""),
        ("GET", "/group/app.git/git-receive-pack", ""),
        ("PUT", "/group/app.git/git-receive-pack", ""),
        ("post", "/group/app.git/git-upload-pack", ""),
        // not an endpoint at all
        ("GET", "/group/app.git", ""),
        ("GET", "/group/app", ""),
        ("GET", "/group/app.git/info", ""),
        ("GET", "/group/app.git/info/refs/x", UPLOAD),
        ("POST", "/group/app.git/git-upload-pack/x", ""),
        ("POST", "/group/app.git/Git-Upload-Pack", ""),
        ("GET", "/group/app.git/INFO/refs", UPLOAD),
        // other repositories than a project's own
        ("GET", "/group/app.wiki.git/info/refs", UPLOAD),
        ("GET", "/group/app.wiki/info/refs", UPLOAD),
        ("POST", "/group/app.WIKI.git/git-receive-pack", ""),
        ("GET", "/group/app.design.git/info/refs", UPLOAD),
        ("GET", "/snippets/5.git/info/refs", UPLOAD),
        ("POST", "/group/app/snippets/5.git/git-upload-pack", ""),
        ("GET", "/group/app/Snippets/5/info/refs", UPLOAD),
    ] {
        assert_eq!(
            judge_git(method, raw, query),
            Err(Refused::NotGit),
            "{method} {raw}?{query}"
        );
    }
}

#[test]
fn tricks_and_malformed_paths_are_refused_with_a_reason() {
    for (method, raw, query) in [
        // dot segments
        ("GET", "/group/../other/app.git/info/refs", UPLOAD),
        ("GET", "/group/./app.git/info/refs", UPLOAD),
        (
            "GET",
            "/group/app.git/../../other/app.git/info/refs",
            UPLOAD,
        ),
        ("POST", "/group/app.git/info/../git-receive-pack", ""),
        ("GET", "/../group/app.git/info/refs", UPLOAD),
        // any percent-encoding
        ("GET", "/group%2Fapp.git/info/refs", UPLOAD),
        ("GET", "/group/%2e%2e/app.git/info/refs", UPLOAD),
        ("GET", "/group/app%2Egit/info/refs", UPLOAD),
        ("GET", "/group/app.git/info%2Frefs", UPLOAD),
        ("POST", "/group/app.git/git%2Dupload-pack", ""),
        ("GET", "/group/app%00.git/info/refs", UPLOAD),
        ("GET", "/group/app%252F.git/info/refs", UPLOAD),
        // empty segments, separators, control characters
        ("GET", "//group/app.git/info/refs", UPLOAD),
        ("GET", "/group//app.git/info/refs", UPLOAD),
        ("GET", "/group/app.git//info/refs", UPLOAD),
        ("GET", "/group/app.git/info/refs/", UPLOAD),
        ("GET", "/group/app.git;x/info/refs", UPLOAD),
        ("GET", "/group\\app.git/info/refs", UPLOAD),
        ("GET", "/group/a pp.git/info/refs", UPLOAD),
        ("GET", "/group/app\n.git/info/refs", UPLOAD),
        ("GET", "group/app.git/info/refs", UPLOAD),
        ("GET", "", UPLOAD),
        // not a project
        ("GET", "/app.git/info/refs", UPLOAD),
        ("GET", "/info/refs", UPLOAD),
        ("POST", "/git-upload-pack", ""),
        ("GET", "/group/app.GIT/info/refs", UPLOAD),
        ("GET", "/group/app.git.git/info/refs", UPLOAD),
        ("GET", "/group/-app.git/info/refs", UPLOAD),
        ("GET", "/group.git/app.git/info/refs", UPLOAD),
        // queries other than the one service parameter
        (
            "GET",
            "/group/app.git/info/refs",
            "service=git-upload-archive",
        ),
        (
            "GET",
            "/group/app.git/info/refs",
            "service=git-upload-pack&x=1",
        ),
        (
            "GET",
            "/group/app.git/info/refs",
            "x=1&service=git-upload-pack",
        ),
        (
            "GET",
            "/group/app.git/info/refs",
            "service=git%2Dupload-pack",
        ),
        ("GET", "/group/app.git/info/refs", "service=GIT-UPLOAD-PACK"),
        (
            "GET",
            "/group/app.git/info/refs",
            "service=git-upload-pack&service=git-receive-pack",
        ),
        ("GET", "/group/app.git/info/refs", "service"),
        (
            "POST",
            "/group/app.git/git-upload-pack",
            "service=git-upload-pack",
        ),
        ("POST", "/group/app.git/git-receive-pack", "x"),
    ] {
        let refused = judge_git(method, raw, query);
        assert!(
            matches!(refused, Err(Refused::Malformed(_))),
            "{method} {raw:?}?{query}: {refused:?}"
        );
    }
    let message = |raw: &str| judge_git("GET", raw, UPLOAD).unwrap_err().to_string();
    assert!(message("/group%2Fapp.git/info/refs").contains("percent-encoding"));
    assert!(message("/app.git/info/refs").contains("at least two"));
    assert!(message("/group//app.git/info/refs").contains("empty segment"));
    let query = judge_git("GET", "/g/a.git/info/refs", "x=1").unwrap_err();
    assert!(query.to_string().contains("exactly one query parameter"));
    assert!(Refused::NotGit.to_string().contains("smart-HTTP"));
}

/// Pieces of a repository path: mostly names, then suffixes and tricks.
fn piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "/group",
        "/group",
        "/group",
        "/app",
        "/app",
        "/app",
        "/sub",
        "/sub",
        "/Group",
        ".git",
        ".git",
        "/",
        "/..",
        "/.",
        "..",
        ".",
        ".GIT",
        "%2e",
        "%2F",
        ";",
        "\\",
        " ",
        "/snippets",
        "/5",
        ".wiki",
        ".design",
        "/info",
        "/refs",
        "-x",
        "_",
        "/-",
        "/_",
    ])
}

/// How a path ends: an endpoint, part of one, or something else under the repository.
fn ending() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "/info/refs",
        "/info/refs",
        "/git-upload-pack",
        "/git-receive-pack",
        "/git-receive-pack",
        "/info/lfs/objects/batch",
        "/HEAD",
        "",
        "/info/refs/",
        "/info/../git-receive-pack",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn never_panics(method in "[A-Z]{0,6}", raw in "\\PC{0,60}", query in "\\PC{0,30}") {
        let _ = judge_git(&method, &raw, &query);
    }

    #[test]
    fn every_project_clones_and_pushes(p in path_strategy(), suffix in any::<bool>()) {
        let project = ProjectPath::parse(&p).unwrap();
        let repo = if suffix { format!("/{p}.git") } else { format!("/{p}") };
        prop_assume!(!p.to_ascii_lowercase().ends_with(".wiki") && !p.to_ascii_lowercase().ends_with(".design"));
        prop_assume!(!p.to_ascii_lowercase().split('/').rev().skip(1).any(|s| s == "snippets"));
        let fetch = judge_git("GET", &format!("{repo}/info/refs"), UPLOAD).unwrap();
        prop_assert_eq!(&fetch.project, &project);
        prop_assert_eq!(fetch.upstream_path(), format!("/{p}.git/info/refs"));
        let push = judge_git("POST", &format!("{repo}/git-receive-pack"), "").unwrap();
        prop_assert_eq!(push.needs, Access::Write);
        prop_assert_eq!(push.upstream_path(), format!("/{p}.git/git-receive-pack"));
    }

    /// Whatever is accepted is forwarded as it was written: the upstream path is the request
    /// path itself (with `.git` added if it was left out), so no reading of it differs.
    #[test]
    fn accepted_paths_are_forwarded_verbatim(
        pieces in prop::collection::vec(piece(), 1..8),
        ending in ending(),
    ) {
        let raw = format!("{}{ending}", pieces.concat());
        for (method, query) in [("GET", UPLOAD), ("POST", "")] {
            if let Ok(git) = judge_git(method, &raw, query) {
                let upstream = git.upstream_path();
                let without_suffix = upstream.replacen(".git/", "/", 1);
                prop_assert!(raw == upstream || raw == without_suffix, "{} vs {}", raw, upstream);
                prop_assert!(!raw.contains(['%', ';', '\\']));
                prop_assert!(raw.split('/').skip(1).all(|s| !s.is_empty() && s != "." && s != ".."));
            }
        }
    }
}
