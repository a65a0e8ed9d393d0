use std::collections::HashSet;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use proptest::prelude::*;

use super::*;

fn path(s: &str) -> ProjectPath {
    ProjectPath::parse(s).unwrap()
}

fn pattern(s: &str) -> ProjectPattern {
    ProjectPattern::parse(s).unwrap()
}

fn hash_of<T: Hash>(value: &T) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

#[test]
fn accepts_gitlab_full_paths() {
    for ok in [
        "group/app",
        "g/a",
        "Group/Sub-Group/my_app",
        "gitlab-org/gitlab-foss",
        "a1/b.c/d-e_f",
        "0/1",
        "group/app.wiki",
        "group/app.json",
        "x/app.gitlab",
        &format!("{}/{}", "a".repeat(100), "b".repeat(154)),
    ] {
        let parsed = path(ok);
        assert_eq!(parsed.as_str(), ok);
        assert_eq!(parsed.to_string(), ok);
    }
}

#[test]
fn refuses_what_is_not_a_project_path() {
    for (bad, why) in [
        ("", "empty"),
        ("app", "two"),
        ("/group/app", "single '/'"),
        ("group/app/", "single '/'"),
        ("group//app", "single '/'"),
        ("group/../app", "\"..\""),
        ("group/a..b", "\"..\""),
        ("./app", "ends with '.'"),
        ("group/-app", "starts with '-'"),
        ("group/app.", "ends with '.'"),
        ("group/app.git", ".git"),
        ("group/app.GIT", ".git"),
        ("group/app.atom", ".atom"),
        ("group.git/app", ".git"),
        ("group%2Fapp", "percent-encoded"),
        ("group/ap%70", "percent-encoded"),
        ("group/a b", "' '"),
        ("group/a\tb", "'\\t'"),
        ("group/a\nb", "'\\n'"),
        ("group/a\0b", "'\\0'"),
        ("group\\app", "'\\\\'"),
        ("group/a;b", "';'"),
        ("group/a+b", "'+'"),
        ("group/a*", "'*'"),
        ("gröup/app", "'ö'"),
        ("group/app?x", "'?'"),
        ("group/app#x", "'#'"),
        (&format!("{}/{}", "a".repeat(100), "b".repeat(155)), "255"),
    ] {
        let err = ProjectPath::parse(bad).unwrap_err();
        assert!(
            err.0.contains("not a GitLab project path"),
            "{bad:?}: {err}"
        );
        assert!(err.0.contains(why), "{bad:?}: {err} (wanted {why:?})");
    }
}

#[test]
fn paths_may_start_with_an_underscore_or_a_dot_as_in_gitlab() {
    assert_eq!(path("_group/.app").as_str(), "_group/.app");
    assert_eq!(path("group/_app").encoded(), "group%2F_app");
}

#[test]
fn paths_compare_and_hash_without_case() {
    let a = path("Group/App");
    let b = path("group/app");
    assert_eq!(a, b);
    assert_eq!(hash_of(&a), hash_of(&b));
    assert_eq!(
        a.as_str(),
        "Group/App",
        "the spelling given is kept for display"
    );
    assert_ne!(a, path("group/app2"));
    assert!(path("a/b") < path("A/C"));
    let set: HashSet<_> = [a, b, path("GROUP/APP")].into_iter().collect();
    assert_eq!(set.len(), 1);
}

#[test]
fn encoded_is_the_api_id_form() {
    assert_eq!(path("group/sub/app").encoded(), "group%2Fsub%2Fapp");
    assert_eq!(path("g/my.app").encoded(), "g%2Fmy.app");
}

#[test]
fn patterns_match_as_documented() {
    // (pattern, path, matches)
    let table = [
        ("group/app", "group/app", true),
        ("group/app", "GROUP/App", true),
        ("group/app", "group/app2", false),
        ("group/app", "group/app/sub", false),
        ("group/*", "group/app", true),
        ("group/*", "Group/APP", true),
        ("group/*", "group/sub/app", false),
        ("group/*", "groupie/app", false),
        ("group/*", "other/group", false),
        ("group/**", "group/app", true),
        ("group/**", "group/sub/deeper/app", true),
        ("group/**", "GROUP/Sub/app", true),
        ("group/**", "groupie/app", false),
        ("group/**", "other/group/app", false),
        ("group/sub/*", "group/sub/app", true),
        ("group/sub/*", "group/app", false),
        ("group/sub/**", "group/sub/a/b", true),
        ("group/sub/**", "group/subx/a", false),
        ("**", "any/thing", true),
        ("**", "a/b/c/d", true),
    ];
    for (p, project, expected) in table {
        assert_eq!(
            pattern(p).matches(&path(project)),
            expected,
            "{p} vs {project}"
        );
    }
}

#[test]
fn refuses_patterns_that_are_not_one_of_the_four_forms() {
    for bad in [
        "",
        "*",
        "***",
        "group",
        "gr*up/app",
        "group/*/app",
        "group/**/app",
        "group/a*",
        "group/***",
        "*/app",
        "**/app",
        "/**",
        "/*",
        "group//**",
        "group/**/**",
        "group/../**",
        "-group/*",
        "group /*",
        "group/app.git",
        "group%2F*",
    ] {
        let err = ProjectPattern::parse(bad).unwrap_err();
        assert!(err.0.contains("not a project pattern"), "{bad:?}: {err}");
    }
}

#[test]
fn pattern_sets_sort_dedup_round_trip_and_allow() {
    let set =
        ProjectPatterns::parse(&["team/**", "group/app", "Group/App", "a/*", "team/**"]).unwrap();
    assert_eq!(set.as_strings(), ["a/*", "group/app", "team/**"]);
    assert_eq!(set.to_string(), "a/* group/app team/**");
    assert_eq!(ProjectPatterns::from_stored(&set.to_string()).unwrap(), set);
    assert!(set.allows(&path("team/x/y")));
    assert!(set.allows(&path("GROUP/app")));
    assert!(set.allows(&path("a/b")));
    assert!(!set.allows(&path("a/b/c")));
    assert!(!set.allows(&path("group/other")));

    let everything = ProjectPatterns::default();
    assert_eq!(everything.as_strings(), ["**"]);
    assert_eq!(ProjectPatterns::from_stored("**").unwrap(), everything);
    assert!(everything.allows(&path("x/y")));
}

#[test]
fn pattern_sets_hold_one_to_fifty() {
    let none: [&str; 0] = [];
    assert!(
        ProjectPatterns::parse(&none)
            .unwrap_err()
            .0
            .contains("at least one")
    );
    assert!(ProjectPatterns::from_stored("  ").is_err());
    let fifty: Vec<String> = (0..50).map(|i| format!("g/p{i}")).collect();
    assert_eq!(
        ProjectPatterns::parse(&fifty).unwrap().as_strings().len(),
        50
    );
    let fifty_one: Vec<String> = (0..51).map(|i| format!("g/p{i}")).collect();
    assert!(
        ProjectPatterns::parse(&fifty_one)
            .unwrap_err()
            .0
            .contains("at most 50")
    );
    let err = ProjectPatterns::parse(&["ok/app", "gr*up/x"]).unwrap_err();
    assert!(err.0.contains("\"gr*up/x\""), "{err}");
}

#[test]
fn access_levels() {
    assert_eq!(Access::parse("read").unwrap(), Access::Read);
    assert_eq!(Access::parse("write").unwrap(), Access::Write);
    for bad in ["", "Read", "WRITE", "admin", " read"] {
        assert!(
            Access::parse(bad)
                .unwrap_err()
                .0
                .contains("\"read\" or \"write\"")
        );
    }
    assert_eq!(Access::default(), Access::Read);
    assert_eq!(Access::Write.to_string(), "write");
    assert_eq!(Access::Read.as_str(), "read");
    assert!(Access::Read < Access::Write);
    assert!(Access::Write.covers(Access::Read));
    assert!(Access::Write.covers(Access::Write));
    assert!(Access::Read.covers(Access::Read));
    assert!(!Access::Read.covers(Access::Write));
}

/// A segment GitLab would accept and labgate too.
pub(crate) fn segment_strategy() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]([a-zA-Z0-9_-]|\\.[a-zA-Z0-9]){0,12}".prop_filter("no .git/.atom ending", |s| {
        let lower = s.to_ascii_lowercase();
        !lower.ends_with(".git") && !lower.ends_with(".atom")
    })
}

pub(crate) fn path_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(segment_strategy(), 2..6).prop_map(|segments| segments.join("/"))
}

/// Flips the case of some letters, as a person typing a path might.
fn recase(s: &str, flips: &[bool]) -> String {
    s.chars()
        .zip(flips.iter().cycle())
        .map(|(c, flip)| {
            if *flip {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

proptest! {
    #[test]
    fn valid_paths_parse_round_trip_and_encode(p in path_strategy()) {
        let parsed = ProjectPath::parse(&p).unwrap();
        prop_assert_eq!(parsed.as_str(), p.as_str());
        let encoded = parsed.encoded();
        prop_assert!(!encoded.contains('/'));
        prop_assert_eq!(encoded.replace("%2F", "/"), p);
    }

    #[test]
    fn case_never_changes_identity(p in path_strategy(), flips in prop::collection::vec(any::<bool>(), 1..8)) {
        let a = ProjectPath::parse(&p).unwrap();
        let b = ProjectPath::parse(&recase(&p, &flips)).unwrap();
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(hash_of(&a), hash_of(&b));
        prop_assert_eq!(a.cmp(&b), Ordering::Equal);
        let exact = ProjectPattern::parse(&recase(&p, &[true])).unwrap();
        prop_assert!(exact.matches(&a));
    }

    #[test]
    fn whatever_parses_is_plain_and_safe(s in "\\PC{0,40}|[a-zA-Z0-9_./%;\\\\ -]{0,40}") {
        if let Ok(p) = ProjectPath::parse(&s) {
            let text = p.as_str();
            prop_assert!(text.split('/').count() >= 2);
            prop_assert!(text.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != ".."));
            prop_assert!(!text.contains(['%', '\\', ';', ' ']));
            prop_assert!(text.bytes().all(|b| b.is_ascii_graphic()));
        }
    }

    #[test]
    fn patterns_nest_as_their_names_say(
        namespace in prop::collection::vec(segment_strategy(), 1..3),
        below in prop::collection::vec(segment_strategy(), 1..4),
        flips in prop::collection::vec(any::<bool>(), 1..8),
    ) {
        let ns = namespace.join("/");
        let project = ProjectPath::parse(&recase(&format!("{ns}/{}", below.join("/")), &flips)).unwrap();
        let children = ProjectPattern::parse(&format!("{ns}/*")).unwrap();
        let all_below = ProjectPattern::parse(&format!("{ns}/**")).unwrap();
        prop_assert!(all_below.matches(&project));
        prop_assert_eq!(children.matches(&project), below.len() == 1);
        prop_assert!(ProjectPattern::parse("**").unwrap().matches(&project));
        // A sibling namespace that merely shares a prefix is never below.
        let sibling = ProjectPath::parse(&format!("{ns}x/{}", below.join("/"))).unwrap();
        prop_assert!(!all_below.matches(&sibling));
        prop_assert!(!children.matches(&sibling));
    }

    #[test]
    fn stored_pattern_sets_round_trip(paths in prop::collection::vec(path_strategy(), 1..10)) {
        let patterns: Vec<String> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| match i % 3 {
                0 => p.clone(),
                1 => format!("{p}/*"),
                _ => format!("{p}/**"),
            })
            .collect();
        let set = ProjectPatterns::parse(&patterns).unwrap();
        prop_assert_eq!(ProjectPatterns::from_stored(&set.to_string()).unwrap(), set.clone());
        prop_assert!(set.allows(&ProjectPath::parse(&paths[0]).unwrap()));
    }
}
