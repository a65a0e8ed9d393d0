//! `cargo bench --bench exchange`: workload identity's token exchange (RFC 8693), on SQLite and,
//! when LABGATE_TEST_POSTGRES_URL is set, on PostgreSQL. Two parts, each against a baseline or
//! a bound measured in the same run:
//! 1. `rate`: GitLab CI ID tokens exchanged for service tokens, with the issuer's keys cached,
//!    against `GET /healthz`, both driven by `wrk` (target: exchanges ≥ 0.3 × healthz): one job's
//!    token presented again and again, then tokens each presented once;
//! 2. `storm`: 1,000 tokens with made-up `kid`s sent within a second, after one good exchange;
//!    the requests the issuer sees for its discovery document and keys (target: ≤ 2).
//!
//! labgate and the fake GitLab run in this process as in the integration tests. Knobs:
//! LABGATE_BENCH_SECONDS (each wrk run, default 3); an argument `rate` or `storm` runs one part.

// A benchmark binary has no API: its shared modules are `pub` for one another only.
#![allow(unreachable_pub)]

/// The integration tests' support (database, settings, certificates, the fake GitLab).
#[allow(dead_code, unused_imports)]
#[path = "../tests/support/mod.rs"]
mod support;

#[path = "common/knobs.rs"]
mod knobs;
#[path = "common/wrk.rs"]
mod wrk;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use futures_util::StreamExt;
use labgate::startup::Application;
use serde_json::{Value, json};

use knobs::Parts;
use support::certs::{TestCa, Validity};
use support::database::{Backend, TestDatabase};
use support::fake_gitlab::{Discovery, FakeGitLab, default_application};
use support::{CLIENT_SECRET, settings};

const AUDIENCE: &str = "https://labgate.test";
const PROJECT: &str = "group/app";
const RATE_TARGET: f64 = 0.3;
/// Tokens minted for the every-token-new run, and its length: fewer requests than tokens, so
/// that none is sent twice.
const DISTINCT_TOKENS: usize = 60_000;
const DISTINCT_SECONDS: u64 = 1;
const STORM_TOKENS: usize = 1_000;
const STORM_WINDOW: Duration = Duration::from_secs(1);
const STORM_FETCH_TARGET: usize = 2;
/// The storm's requests in flight at once (sockets, not tokens, are what this bounds).
const STORM_CONNECTIONS: usize = 100;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("exchange benchmark failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let seconds = knobs::number("LABGATE_BENCH_SECONDS", 3)?.max(1);
    let parts = Parts::from_args();
    let backends = knobs::backends();
    for backend in backends {
        println!("== {} ==", backend.name());
        actix_web::rt::System::new()
            .block_on(bench_backend(&backend, seconds, &parts))
            .with_context(|| format!("on {}", backend.name()))?;
        println!();
    }
    Ok(())
}

async fn bench_backend(backend: &Backend, seconds: u64, parts: &Parts) -> anyhow::Result<()> {
    let db = TestDatabase::try_create(backend)?;
    let ca = TestCa::new("Bench Root CA");
    let gitlab = FakeGitLab::start(
        &ca.issue(&["localhost", "127.0.0.1"], Validity::Current),
        Discovery::Correct,
    )
    .await;
    let admin_token = format!("bench-admin-{}", uuid::Uuid::new_v4());
    let mut bench_settings = settings::isolated(&db, &admin_token);
    bench_settings.refresher.enabled = false;
    let app = Application::build(bench_settings).await?;
    let address = format!("http://127.0.0.1:{}", app.port());
    let server = app.handle();
    actix_web::rt::spawn(app.run());

    let outcome = async {
        let client_id = set_up(&address, &admin_token, &ca, &gitlab).await?;
        if parts.runs("rate") {
            rate(&address, &client_id, &gitlab, seconds).await?;
        }
        if parts.runs("storm") {
            storm(&address, &client_id, &gitlab).await?;
        }
        anyhow::Ok(())
    }
    .await;
    server.stop(true).await;
    gitlab.stop().await;
    outcome
}

/// The instance `corp` on the fake GitLab, and a service trusting its CI jobs of `group/app` on
/// protected refs, bound to the person who started the job; returns the service's client ID.
async fn set_up(
    address: &str,
    admin_token: &str,
    ca: &TestCa,
    gitlab: &FakeGitLab,
) -> anyhow::Result<String> {
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        client
            .post(format!("{address}{path}"))
            .bearer_auth(admin_token)
            .json(&body)
            .send()
    };
    let registered = post(
        "/api/v1/instances",
        json!({
            "name": "corp",
            "base_url": gitlab.base_url(),
            "client_id": default_application().client_id,
            "client_secret": CLIENT_SECRET,
            "ca_pem": ca.pem(),
            "scopes": default_application().scopes,
        }),
    )
    .await?;
    ensure!(registered.status() == 201, "registering the instance");
    let created = post(
        "/api/v1/services",
        json!({
            "name": "ci-bot", "instances": ["corp"], "scopes": ["read_api"],
            "identities": [{
                "issuer": "corp", "audience": AUDIENCE, "subject_claim": "user_login",
                "claims": {"project_path": PROJECT, "ref_protected": "true"},
            }],
        }),
    )
    .await?;
    ensure!(created.status() == 201, "creating the service");
    let created: Value = created.json().await?;
    Ok(created["client_id"]
        .as_str()
        .context("no client_id")?
        .to_owned())
}

fn exchange_form(client_id: &str, subject_token: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair(
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        )
        .append_pair("client_id", client_id)
        .append_pair("subject_token", subject_token)
        .append_pair("subject_token_type", "urn:ietf:params:oauth:token-type:jwt")
        .finish()
}

/// Exchanges against healthz, alternating: first one job's token presented again and again (its
/// steps, each `git` call through the credential helper: the signature verified once), then
/// tokens each presented once (a fleet of jobs: every exchange verifies a signature).
async fn rate(
    address: &str,
    client_id: &str,
    gitlab: &FakeGitLab,
    seconds: u64,
) -> anyhow::Result<()> {
    if !wrk::installed() {
        return Ok(());
    }
    let form = "application/x-www-form-urlencoded";
    let repeated = tempfile::NamedTempFile::new()?;
    std::fs::write(
        repeated.path(),
        format!(
            "wrk.method = \"POST\"\nwrk.body = \"{}\"\nwrk.headers[\"Content-Type\"] = \"{form}\"\n",
            exchange_form(client_id, &gitlab.ci_token(AUDIENCE, PROJECT).sign())
        ),
    )?;
    let started = Instant::now();
    let bodies: Vec<String> = std::thread::scope(|scope| {
        let minters: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    (0..DISTINCT_TOKENS / 2)
                        .map(|_| {
                            exchange_form(client_id, &gitlab.ci_token(AUDIENCE, PROJECT).sign())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        minters
            .into_iter()
            .flat_map(|minter| minter.join().expect("minting tokens"))
            .collect()
    });
    println!(
        "({} distinct CI tokens minted in {:.0} s)",
        bodies.len(),
        started.elapsed().as_secs_f64()
    );
    let bodies_file = tempfile::NamedTempFile::new()?;
    std::fs::write(bodies_file.path(), bodies.join("\n"))?;
    let distinct = tempfile::NamedTempFile::new()?;
    std::fs::write(
        distinct.path(),
        format!(
            r#"-- Every request built once, in `init` (once wrk has set the Host header): the script's
-- work per request is a table lookup, so that wrk, sharing the machine, takes as little of it
-- as it can. wrk's two threads take every other body: each is sent once until they run out.
local requests, n, id = {{}}, 0, 0
function setup(thread) thread:set("id", id); id = id + 1 end
function init(args)
  local headers = {{["Content-Type"] = "{form}"}}
  for line in io.lines("{}") do
    requests[#requests + 1] = wrk.format("POST", nil, headers, line)
  end
end
function request()
  n = n + 1
  return requests[((n - 1) * 2 + id) % #requests + 1]
end
"#,
            bodies_file.path().display()
        ),
    )?;

    let healthz = format!("{address}/healthz");
    let token_url = format!("{address}/api/v1/service-token");
    let baseline = wrk::run(&healthz, None, seconds).await?;
    let again = wrk::run(&token_url, Some(repeated.path()), seconds).await?;
    let baseline_2 = wrk::run(&healthz, None, DISTINCT_SECONDS).await?;
    let fresh = wrk::run(&token_url, Some(distinct.path()), DISTINCT_SECONDS).await?;
    let repeats = fresh.requests.saturating_sub(bodies.len() as u64);
    let again_ratio = again.rate / baseline.rate;
    let fresh_ratio = fresh.rate / baseline_2.rate;
    println!(
        "wrk -t2 -c32, keep-alive, each exchange run after its healthz run:\n  \
         GET /healthz ({seconds} s)                         {:>8.0} req/s  p99 {}\n  \
         exchange, one job's token again ({seconds} s)      {:>8.0} req/s  p99 {}\n  \
         exchange ÷ healthz                          {again_ratio:>8.2}        (target ≥ {RATE_TARGET}: {})\n  \
         GET /healthz ({DISTINCT_SECONDS} s)                         {:>8.0} req/s  p99 {}\n  \
         exchange, every token new ({DISTINCT_SECONDS} s)            {:>8.0} req/s  p99 {}  ({repeats} of {} sent twice)\n  \
         exchange ÷ healthz                          {fresh_ratio:>8.2}        (target ≥ {RATE_TARGET}: {})",
        baseline.rate,
        baseline.p99,
        again.rate,
        again.p99,
        verdict(again_ratio >= RATE_TARGET),
        baseline_2.rate,
        baseline_2.p99,
        fresh.rate,
        fresh.p99,
        fresh.requests,
        verdict(fresh_ratio >= RATE_TARGET),
    );
    Ok(())
}

/// One good exchange warms the keys; then 1,000 tokens with made-up `kid`s, as fast as 100
/// connections send them.
async fn storm(address: &str, client_id: &str, gitlab: &FakeGitLab) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let token_url = format!("{address}/api/v1/service-token");
    let send = |subject_token: String| {
        client
            .post(&token_url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(exchange_form(client_id, &subject_token))
            .send()
    };
    let warm = send(gitlab.ci_token(AUDIENCE, PROJECT).sign()).await?;
    ensure!(
        warm.status() == 200,
        "the warm-up exchange: {}",
        warm.text().await?
    );
    let before = gitlab.seen().key_fetches();
    let tokens: Vec<String> = (0..STORM_TOKENS)
        .map(|i| {
            gitlab
                .ci_token(AUDIENCE, PROJECT)
                .header("kid", format!("made-up-{i}"))
                .sign()
        })
        .collect();
    let started = Instant::now();
    let answers: Vec<_> = futures_util::stream::iter(tokens.into_iter().map(send))
        .buffer_unordered(STORM_CONNECTIONS)
        .collect()
        .await;
    let took = started.elapsed();
    let mut refused = 0;
    for answer in answers {
        let answer = answer?;
        let body: Value = answer.json().await?;
        if body["error_description"]
            .as_str()
            .is_some_and(|d| d.starts_with("key:"))
        {
            refused += 1;
        }
    }
    let fetches = gitlab.seen().key_fetches() - before;
    println!(
        "{STORM_TOKENS} tokens with unknown kids, sent at once, answered in {:.2} s (within {} s: {}):\n  \
         refused for their key  {refused}\n  \
         requests to the issuer {fetches}        (target ≤ {STORM_FETCH_TARGET}: {})",
        took.as_secs_f64(),
        STORM_WINDOW.as_secs(),
        verdict(took <= STORM_WINDOW),
        verdict(fetches <= STORM_FETCH_TARGET && refused == STORM_TOKENS)
    );
    Ok(())
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}
