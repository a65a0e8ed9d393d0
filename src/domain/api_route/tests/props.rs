//! Property tests: whatever the judge accepts names one project, the same one a lenient front
//! end would see, and nothing under it that no grant may reach.

use proptest::prelude::*;

use super::super::*;
use crate::domain::project_path::tests::path_strategy;

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

/// The start of a path: mostly a project call, sometimes something else.
fn head() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "/projects/group%2Fapp",
        "/projects/Group%2fsub%2Fapp",
        "/projects/1",
        "/projects/12",
        "/projects/group",
        "/projects/",
        "/projects",
        "/user",
        "/",
        "/projects/group%2F",
        "/projects/%2e%2e",
        "/projects/1%2F2",
    ])
}

/// Pieces of the rest of a path: plain segments, names that must stay out of reach, and tricks.
fn piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "/issues",
        "/repository",
        "/files",
        "/raw",
        "/2",
        "/group",
        "/app",
        "/pipelines",
        "/1",
        "/protected_branches",
        "/members",
        "/variables",
        "/hooks",
        "/",
        "/..",
        "/.",
        "..",
        ".",
        "/%2e%2e",
        "%2e",
        "%2E",
        "%2F",
        "%2f",
        "%2F..",
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
        ".JSON",
        "%6D",
        "embers",
        "app",
        "x",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

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
        head in head(),
        pieces in prop::collection::vec(piece(), 0..8),
        method in prop::sample::select(vec!["GET", "POST", "DELETE"]),
    ) {
        let raw = format!("{head}{}", pieces.concat());
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
