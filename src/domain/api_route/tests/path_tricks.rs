//! Paths GitLab would route elsewhere than they read: each is refused, never normalised.

use super::*;

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
        // an encoded slash outside the id that decodes into an empty or dot segment
        "/projects/1/repository/files/a%2F..%2Fb",
        "/projects/1/repository/files/%2Fb/raw",
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
        "/projects/1/a%2F..",
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
