//! A proxied request's path, taken apart the way GitLab's routers see it, and refused whenever
//! an intermediary or GitLab itself could read it as something else.
//!
//! GitLab's routers match the path still percent-encoded: Grape's Mustermann patterns match a
//! literal letter *or* its `%XX` form (`%6Dembers` reaches `members`), a `/` only as itself; Rails
//! and Grape squeeze `//` and drop a trailing `/`; Workhorse cleans `.` and `..` segments before
//! it routes; a front proxy may decode `%2F`. Rather than guess which of these a given
//! installation does, every form on which they could disagree is refused, never normalised:
//! what is accepted means the same thing to all of them.

/// Why a proxied call is refused. The message says what is wrong in words a developer can act
/// on; it quotes at most a path segment, and paths are not secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The path is malformed or plays a routing trick (dot segments, needless or double
    /// percent-encoding, `//`, `;`, `\`, control characters): refused rather than normalised
    /// into something that might name another project or endpoint.
    #[error("{0}")]
    Malformed(String),
    /// Well formed, but never reachable with an access grant: another part of the API, a
    /// method, or a project's settings and secrets.
    #[error("{0}")]
    Outside(String),
    /// Git only: a repository path, but not one of the smart-HTTP endpoints (Git LFS, the dumb
    /// protocol, wikis, snippets, anything else): the proxy answers 404 as for a missing page.
    #[error(
        "labgate forwards only git's smart-HTTP endpoints: GET …/info/refs?service=…, \
         POST …/git-upload-pack and POST …/git-receive-pack"
    )]
    NotGit,
}

impl Refused {
    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Self::Malformed(message.into())
    }

    pub(crate) fn outside(message: impl Into<String>) -> Self {
        Self::Outside(message.into())
    }
}

/// One `/`-separated segment: as received, and percent-decoded once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment<'a> {
    pub(crate) raw: &'a str,
    pub(crate) decoded: String,
}

/// Splits a raw path (`/a/b`, as on the wire, without query) into segments, refusing every
/// trick that does not depend on where a segment stands. A decoded segment may still hold `/`
/// (from `%2F`): whether that is allowed is the caller's call.
pub(crate) fn segments(raw_path: &str) -> Result<Vec<Segment<'_>>, Refused> {
    let Some(path) = raw_path.strip_prefix('/') else {
        return Err(Refused::malformed("the path must start with '/'"));
    };
    path.split('/').map(segment).collect()
}

fn segment(raw: &str) -> Result<Segment<'_>, Refused> {
    if raw.is_empty() {
        return Err(Refused::malformed(
            "the path has an empty segment ('//' or a trailing '/'), which GitLab would squeeze \
             away",
        ));
    }
    if let Some(bad) = raw.bytes().find(|b| !(0x21..=0x7e).contains(b)) {
        return Err(Refused::malformed(format!(
            "the path holds a raw byte 0x{bad:02x}; spaces, control characters and non-ASCII \
             bytes must be percent-encoded"
        )));
    }
    let decoded = decode(raw)?;
    if let Some(bad) = decoded
        .chars()
        .find(|c| c.is_control() || matches!(c, '\\' | ';' | '%'))
    {
        let why = match bad {
            '%' => "a '%' survives decoding once: double encoding is refused".to_owned(),
            '\\' | ';' => {
                format!("segment {raw:?} holds {bad:?}, which some servers treat as a separator")
            }
            _ => format!("segment {raw:?} holds a control character"),
        };
        return Err(Refused::malformed(why));
    }
    if decoded.chars().all(|c| c == '.') {
        return Err(Refused::malformed(format!(
            "segment {raw:?} is a dot segment, which GitLab's front end resolves into another \
             path"
        )));
    }
    Ok(Segment { raw, decoded })
}

/// Decodes `%XX` once. Refuses broken escapes, escapes of characters that need none (GitLab's
/// router matches `%6D` as `m`, a proxy might not), and bytes that are not UTF-8 once decoded.
fn decode(raw: &str) -> Result<String, Refused> {
    if !raw.contains('%') {
        return Ok(raw.to_owned());
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let byte = bytes
            .get(i + 1..i + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .ok_or_else(|| {
                Refused::malformed(format!(
                    "segment {raw:?} holds a '%' that is not followed by two hex digits"
                ))
            })?;
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            return Err(Refused::malformed(format!(
                "segment {raw:?} percent-encodes {:?}, which needs no encoding; send it as it is",
                char::from(byte)
            )));
        }
        out.push(byte);
        i += 3;
    }
    String::from_utf8(out)
        .map_err(|_| Refused::malformed(format!("segment {raw:?} is not UTF-8 once decoded")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(path: &str) -> Vec<String> {
        segments(path)
            .unwrap()
            .into_iter()
            .map(|s| s.decoded)
            .collect()
    }

    #[test]
    fn splits_and_decodes_once() {
        assert_eq!(decoded("/a/b%20c/d%2Fe"), ["a", "b c", "d/e"]);
        assert_eq!(decoded("/x%2fy"), ["x/y"]);
        assert_eq!(decoded("/caf%C3%A9"), ["café"]);
        assert_eq!(decoded("/a+b"), ["a+b"]);
        let seg = &segments("/p%2Fq").unwrap()[0];
        assert_eq!(seg.raw, "p%2Fq");
    }

    #[test]
    fn refuses_tricks_that_do_not_depend_on_position() {
        for bad in [
            "",
            "a",
            "/",
            "//",
            "/a//b",
            "/a/",
            "/.",
            "/..",
            "/a/../b",
            "/a/./b",
            "/...",
            "/%2e",
            "/%2e%2e",
            "/%2E.",
            "/.%2e",
            "/%252F",
            "/%25",
            "/%zz",
            "/%2",
            "/%",
            "/a%2",
            "/%00",
            "/a%0Ab",
            "/%7F",
            "/%C0%AE",
            "/%FF",
            "/a;b",
            "/a%3Bb",
            "/a\\b",
            "/a%5cb",
            "/a%5Cb",
            "/a b",
            "/a\tb",
            "/caf\u{e9}",
            "/%6Dembers",
            "/%41",
            "/%7e",
            "/%5F",
            "/%2D",
            "/%C2%85",
        ] {
            assert!(
                matches!(segments(bad), Err(Refused::Malformed(_))),
                "{bad:?} was not refused"
            );
        }
    }

    #[test]
    fn messages_say_what_is_wrong() {
        let message = |p: &str| segments(p).unwrap_err().to_string();
        assert!(message("/a//b").contains("empty segment"));
        assert!(message("/%252F").contains("double encoding"));
        assert!(message("/%zz").contains("two hex digits"));
        assert!(message("/%6Dembers").contains("needs no encoding"));
        assert!(message("/a/..").contains("dot segment"));
        assert!(message("/%FF").contains("not UTF-8"));
    }
}
