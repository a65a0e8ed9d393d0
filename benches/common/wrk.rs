//! Driving `wrk`, an external load generator in C (far cheaper per request than an in-process
//! client, so the server, not the generator, sets the pace), and reading its figures.

use std::path::Path;

use anyhow::{Context as _, ensure};

/// One wrk run's throughput and 99th percentile latency (as wrk prints it, e.g. `6.24ms`).
pub struct WrkRun {
    pub rate: f64,
    pub p99: String,
    /// Requests completed.
    pub requests: u64,
}

/// Whether `wrk` can be run; says how to get it when not.
pub fn installed() -> bool {
    let found = std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_ok();
    if !found {
        println!("wrk is not installed (apt-get install wrk): its figures are skipped");
    }
    found
}

/// `wrk -t2 -c32` against `url` for `seconds`, keep-alive, with a Lua `script` when given;
/// any non-2xx answer fails the run.
pub async fn run(url: &str, script: Option<&Path>, seconds: u64) -> anyhow::Result<WrkRun> {
    let mut wrk = tokio::process::Command::new("wrk");
    wrk.args(["-t2", "-c32", "-d", &seconds.to_string(), "--latency"]);
    if let Some(script) = script {
        wrk.arg("-s").arg(script);
    }
    let out = wrk.arg(url).output().await?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success() && !text.contains("Non-2xx"),
        "wrk failed or saw errors:\n{text}"
    );
    let field = |label: &str| -> anyhow::Result<String> {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned())
            .with_context(|| format!("no {label:?} in wrk's output:\n{text}"))
    };
    // "  12345 requests in 3.00s, 1.23MB read"
    let requests = text
        .lines()
        .find_map(|line| line.trim().split_once(" requests in "))
        .and_then(|(count, _)| count.trim().parse().ok())
        .with_context(|| format!("no request count in wrk's output:\n{text}"))?;
    Ok(WrkRun {
        rate: field("Requests/sec:")?.parse()?,
        p99: field("99%")?,
        requests,
    })
}
