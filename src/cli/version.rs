//! `labgate version`: what this binary is, for bug reports and for matching `labgate_build_info`.

/// The version, the platform it was built for, and how it was built.
pub(super) fn describe() -> String {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    format!(
        "labgate {}\ntarget: {}-{}\nprofile: {profile}\ndatabases: sqlite (bundled), postgresql (bundled libpq)\n",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS,
    )
}
