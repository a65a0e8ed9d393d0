//! `cargo bench --bench proxy`: labgate's git and REST API proxy against the same calls made
//! straight to GitLab, in the same run, on the same repository.
//!
//! labgate runs as a child process (the release binary cargo builds beside this program), so
//! that its memory is measured alone; the fake GitLab of the integration tests (real TLS with a
//! throwaway CA, `git http-backend` behind it) runs in this process. Three parts, each printed
//! against its direct baseline:
//! 1. `clone`: a repository of thousands of files and tens of MB, cloned with real `git`
//!    straight from GitLab and through labgate, alternately; median wall times and their ratio
//!    (target: proxy ≤ 1.10 × direct);
//! 2. `api`: `GET /api/v4/projects/:id` one after another on a kept-alive connection, straight
//!    and through labgate in alternating blocks; p50/p90/p99 and the median's difference
//!    (target: ≤ 0.5 ms added);
//! 3. `push`: a commit of incompressible data pushed through labgate while its resident memory
//!    (VmRSS of the child) is sampled every 20 ms; the rise over its level before the push
//!    (target: < 20 MB), and the same size pushed straight for the time.
//!
//! An argument runs one part: `cargo bench --bench proxy -- clone` (or `api`, `push`). Knobs:
//! LABGATE_BENCH_ROUNDS (clones of each kind, default 3), LABGATE_BENCH_FILES (small files in
//! the repository, 3000), LABGATE_BENCH_RANDOM_MB (incompressible MB in it, 36),
//! LABGATE_BENCH_REQUESTS (API calls of each kind, 3000), LABGATE_BENCH_PUSH_MB (200).

// A benchmark binary has no API: its shared modules are `pub` for one another only.
#![allow(unreachable_pub)]

/// The integration tests' support (certificates, the fake GitLab, the person's browser).
#[allow(dead_code, unused_imports)]
#[path = "../tests/support/mod.rs"]
mod support;

#[path = "proxy/world.rs"]
mod world;

#[path = "common/knobs.rs"]
mod knobs;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::ensure;
use rand::RngCore;

use knobs::Parts;
use world::{World, git};

const CLONE_RATIO_TARGET: f64 = 1.10;
const API_ADDED_P50_TARGET_MS: f64 = 0.5;
const PUSH_RSS_RISE_TARGET_MB: f64 = 20.0;
/// API calls of each kind sent before measuring, and per alternating block.
const API_WARM_UP: usize = 200;
const API_BLOCK: usize = 100;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("proxy benchmark failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let options = Options::from_env()?;
    actix_web::rt::System::new().block_on(async {
        let world = World::start().await?;
        let outcome = async {
            if options.runs("clone") {
                clone(&world, &options).await?;
            }
            if options.runs("api") {
                api(&world, &options).await?;
            }
            if options.runs("push") {
                push(&world, &options).await?;
            }
            anyhow::Ok(())
        }
        .await;
        world.stop().await;
        outcome
    })
}

struct Options {
    rounds: usize,
    files: usize,
    random_mb: usize,
    requests: usize,
    push_mb: usize,
    /// `clone`, `api` or `push` on the command line runs only that part.
    parts: Parts,
}

impl Options {
    fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            rounds: knobs::number("LABGATE_BENCH_ROUNDS", 3)?.max(1),
            files: knobs::number("LABGATE_BENCH_FILES", 3000)?,
            random_mb: knobs::number("LABGATE_BENCH_RANDOM_MB", 36)?,
            requests: knobs::number("LABGATE_BENCH_REQUESTS", 3000)?.max(API_BLOCK),
            push_mb: knobs::number("LABGATE_BENCH_PUSH_MB", 200)?.max(1),
            parts: Parts::from_args(),
        })
    }

    fn runs(&self, part: &str) -> bool {
        self.parts.runs(part)
    }
}

/// Fills the repository, then clones it straight and through labgate, alternately.
async fn clone(world: &World, options: &Options) -> anyhow::Result<()> {
    let work = world.scratch("clone-work");
    git(
        world,
        &work,
        &["clone", "--quiet", &world.direct_git_url(), "."],
    )
    .await?;
    for i in 0..options.files {
        let folder = work.join(format!("src/part{:03}", i / 100));
        std::fs::create_dir_all(&folder)?;
        let text: String = (0..8)
            .map(|line| format!("file {i}, line {line}: the quick brown fox jumps over {i}\n"))
            .collect();
        std::fs::write(folder.join(format!("file{i:05}.txt")), text)?;
    }
    let blobs = 4;
    for blob in 0..blobs {
        let size = options.random_mb.saturating_mul(1 << 20) / blobs;
        std::fs::write(work.join(format!("data{blob}.bin")), random_bytes(size))?;
    }
    git(world, &work, &["add", "-A"]).await?;
    git(world, &work, &["commit", "--quiet", "-m", "bench content"]).await?;
    git(world, &work, &["push", "--quiet", "origin", "HEAD:main"]).await?;
    let objects = git(world, &work, &["rev-list", "--objects", "--all"])
        .await?
        .lines()
        .count();

    let mut direct = Vec::new();
    let mut proxied = Vec::new();
    let mut pack_kib = 0;
    for round in 0..options.rounds {
        let kinds = [
            ("direct", world.direct_git_url()),
            ("proxy", world.proxy_git_url()),
        ];
        // Alternating which goes first, so that a warm cache favours neither.
        let order: Vec<_> = if round % 2 == 0 {
            kinds.iter().collect()
        } else {
            kinds.iter().rev().collect()
        };
        for (kind, url) in order {
            let target = world.scratch(&format!("clone-{kind}-{round}"));
            let started = Instant::now();
            git(world, &target, &["clone", "--quiet", url, "."]).await?;
            let took = started.elapsed();
            let counted = git(world, &target, &["count-objects", "-v"]).await?;
            pack_kib = counted
                .lines()
                .find_map(|l| l.strip_prefix("size-pack: "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
            std::fs::remove_dir_all(&target)?;
            match *kind {
                "direct" => direct.push(took),
                _ => proxied.push(took),
            }
        }
    }
    let (direct, proxied) = (median(&mut direct), median(&mut proxied));
    let ratio = proxied.as_secs_f64() / direct.as_secs_f64();
    println!("== clone ==");
    println!(
        "repository: {objects} objects, pack {:.1} MB; {} rounds",
        pack_kib as f64 / 1024.0,
        options.rounds
    );
    println!(
        "median wall time: direct {:.2} s, through labgate {:.2} s",
        direct.as_secs_f64(),
        proxied.as_secs_f64()
    );
    println!(
        "proxy ÷ direct: {ratio:.3} (target ≤ {CLONE_RATIO_TARGET:.2}: {})\n",
        verdict(ratio <= CLONE_RATIO_TARGET)
    );
    Ok(())
}

/// `GET /projects/:id`, straight and through labgate, in alternating blocks.
async fn api(world: &World, options: &Options) -> anyhow::Result<()> {
    let direct_url = format!("{}/api/v4/projects/{}", world.gitlab_base, world.project_id);
    let proxy_url = format!(
        "{}/gitlab/corp/api/v4/projects/{}",
        world.address, world.project_id
    );
    let direct = || {
        world
            .gitlab_client
            .get(&direct_url)
            .bearer_auth(&world.person_token)
    };
    let proxied = || world.client.get(&proxy_url).bearer_auth(&world.grant_token);
    let one = |request: reqwest::RequestBuilder| async move {
        let started = Instant::now();
        let response = request.send().await?;
        let status = response.status();
        response.bytes().await?;
        ensure!(status == 200, "GET /projects/:id answered {status}");
        anyhow::Ok(started.elapsed())
    };
    for _ in 0..API_WARM_UP {
        one(direct()).await?;
        one(proxied()).await?;
    }
    let mut direct_times = Vec::with_capacity(options.requests);
    let mut proxy_times = Vec::with_capacity(options.requests);
    while direct_times.len() < options.requests {
        for _ in 0..API_BLOCK {
            direct_times.push(one(direct()).await?);
        }
        for _ in 0..API_BLOCK {
            proxy_times.push(one(proxied()).await?);
        }
    }
    let direct = Percentiles::of(&mut direct_times);
    let proxied = Percentiles::of(&mut proxy_times);
    let added = proxied.p50 - direct.p50;
    println!("== api: GET /projects/:id ==");
    println!(
        "{} requests of each kind, one at a time",
        direct_times.len()
    );
    println!("direct:         {direct}");
    println!("through labgate: {proxied}");
    println!(
        "added at the median: {added:.3} ms (target ≤ {API_ADDED_P50_TARGET_MS} ms: {})\n",
        verdict(added <= API_ADDED_P50_TARGET_MS)
    );
    Ok(())
}

/// One large push straight (for the time) and one through labgate (time and memory); each
/// carries data of its own, so that neither finds the other's objects already there.
async fn push(world: &World, options: &Options) -> anyhow::Result<()> {
    let work = world.scratch("push-work");
    git(
        world,
        &work,
        &["clone", "--quiet", &world.direct_git_url(), "."],
    )
    .await?;
    for kind in ["direct", "proxy"] {
        git(
            world,
            &work,
            &["checkout", "--quiet", "-B", kind, "origin/main"],
        )
        .await?;
        let file = format!("{kind}.bin");
        std::fs::write(work.join(&file), random_bytes(options.push_mb << 20))?;
        git(world, &work, &["add", &file]).await?;
        git(world, &work, &["commit", "--quiet", "-m", kind]).await?;
    }

    let started = Instant::now();
    let refspec = "direct:refs/heads/push-direct";
    git(
        world,
        &work,
        &["push", "--quiet", &world.direct_git_url(), refspec],
    )
    .await?;
    let direct = started.elapsed();

    let before = world.labgate_rss_kib()?;
    let sampling = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU64::new(before));
    let sampler = {
        let (sampling, peak, pid) = (sampling.clone(), peak.clone(), world.labgate_pid);
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                if let Ok(rss) = world::rss_kib(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let started = Instant::now();
    let refspec = "proxy:refs/heads/push-proxy";
    let pushed = git(
        world,
        &work,
        &["push", "--quiet", &world.proxy_git_url(), refspec],
    )
    .await;
    let proxied = started.elapsed();
    sampling.store(false, Ordering::Relaxed);
    sampler.join().expect("the sampler does not panic");
    pushed?;
    let peak = peak.load(Ordering::Relaxed);
    let rise_mb = peak.saturating_sub(before) as f64 / 1024.0;
    println!("== push: {} MB of incompressible data ==", options.push_mb);
    println!(
        "wall time: direct {:.2} s, through labgate {:.2} s ({:.3}×)",
        direct.as_secs_f64(),
        proxied.as_secs_f64(),
        proxied.as_secs_f64() / direct.as_secs_f64()
    );
    println!(
        "labgate's RSS: {:.1} MB before, {:.1} MB at its peak: a rise of {rise_mb:.1} MB \
         (target < {PUSH_RSS_RISE_TARGET_MB} MB: {})\n",
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
        verdict(rise_mb < PUSH_RSS_RISE_TARGET_MB)
    );
    Ok(())
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Latencies in milliseconds.
struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
}

impl Percentiles {
    fn of(times: &mut [Duration]) -> Self {
        times.sort();
        let at = |q: f64| {
            let index = ((times.len() as f64 * q) as usize).min(times.len() - 1);
            times[index].as_secs_f64() * 1000.0
        };
        Self {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
        }
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms",
            self.p50, self.p90, self.p99
        )
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}
