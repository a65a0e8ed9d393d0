//! `cargo bench --bench broker`: labgate's handout path and its background refresher under
//! load, on SQLite and, when LABGATE_TEST_POSTGRES_URL is set, on PostgreSQL.
//!
//! The machine is shared and noisy, so every figure is printed against a baseline measured in
//! the same run on the same server:
//! 1. handout throughput against `GET /healthz` throughput, with `wrk` when installed and with
//!    an in-process client (closed loop, the two alternating); then both sent on a fixed
//!    schedule at half the handout's maximum rate (`common/paced.rs`), for latency;
//! 2. a refresh storm: 10,000 connections due at once, GitLab answering each refresh in 50 ms,
//!    one sweep of the background refresher, against the ideal 10,000 × 50 ms ÷ concurrency.
//!
//! The in-process load comes from a tokio runtime of its own, on threads of its own; labgate
//! and the fake GitLab run as in the integration tests. Knobs: LABGATE_BENCH_SECONDS (length of
//! each measured phase, default 4), LABGATE_BENCH_CLIENTS (connections, default 32); an
//! argument `handout` or `storm` (`cargo bench --bench broker -- storm`) runs only that part;
//! `wrk` runs only the wrk comparison and the paced latency.

// A benchmark binary has no API: its shared modules are `pub` for one another only.
#![allow(unreachable_pub)]

/// The integration tests' support (database, settings, certificates, the fake GitLab); the
/// benchmark uses part of it.
#[allow(dead_code, unused_imports)]
#[path = "../tests/support/mod.rs"]
mod support;

#[path = "common/allocations.rs"]
mod allocations;
#[path = "common/knobs.rs"]
mod knobs;
#[path = "common/paced.rs"]
mod paced;
#[path = "common/wrk.rs"]
mod wrk;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use chrono::{NaiveDateTime, TimeDelta, Utc};
use diesel::Connection;
use labgate::config::Settings;
use labgate::db::{self, connections::ConnectionRow};
use labgate::domain::{ConnectionKind, ConnectionStatus, ScopeSet, TokenLife};
use labgate::service::connection_tokens::{TokenKind, open_token, seal_token};
use labgate::service::{Context, refresh};
use labgate::startup::Application;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use knobs::Parts;
use support::certs::{TestCa, Validity};
use support::database::{Backend, TestDatabase};
use support::fake_gitlab::{self, Discovery, FakeGitLab, default_application};
use support::{CLIENT_SECRET, settings};

/// Counts heap allocations while `allocations::during` runs.
#[global_allocator]
static ALLOCATOR: allocations::Counting = allocations::Counting;

/// Subjects whose fresh connections the handout phase spreads its requests over.
const SUBJECTS: usize = 1_000;
/// Subjects asked for once each: handouts with nothing remembered, for comparison.
const FIRST_TIME_SUBJECTS: usize = 20_000;
/// The storm: connections due at once, GitLab's time per refresh, the sweep's concurrency.
const STORM: usize = 10_000;
const STORM_DELAY: Duration = Duration::from_millis(50);
const STORM_CONCURRENCY: usize = 64;
/// Healthz and handout alternate this many times, so that a burst of noise from the rest of
/// the machine falls on both.
const ROUNDS: u32 = 4;
const WARM_UP: Duration = Duration::from_millis(500);
/// wrk's healthz and handout runs, in pairs: the ratio is each pair's, and their median is the
/// figure. How wrk's and labgate's threads share the two cores settles differently from run to
/// run, and a run where they happen to take turns well answers healthz up to a third faster: on
/// the fourteenth machine such runs moved a ratio of summed rates by ±0.07.
const WRK_PAIRS: usize = 5;
/// The seeded grants leave out `openid`: for such a grant the fake GitLab signs an RS256 ID
/// token with every refresh, under its state lock, and on this machine that signing, not
/// labgate, would set the pace of the storm. labgate does not read ID tokens on refresh.
const GRANTED: [&str; 2] = ["read_api", "read_repository"];

const HANDOUT_RATIO_TARGET: f64 = 0.5;
const WRK_RATIO_TARGET: f64 = 0.6;
/// Paced at half the handout's maximum rate.
const PACED_P99_TARGET: Duration = Duration::from_millis(2);
const STORM_RATIO_TARGET: f64 = 1.2;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("broker benchmark failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let options = Options::from_env()?;
    // The load generator's runtime: separate from labgate's, on threads of its own.
    let load = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-load")
        .enable_all()
        .build()?;
    let backends = knobs::backends();
    for backend in backends {
        let started = Instant::now();
        println!("== {} ==", backend.name());
        actix_web::rt::System::new()
            .block_on(bench_backend(&backend, &options, load.handle().clone()))
            .with_context(|| format!("on {}", backend.name()))?;
        println!(
            "({} done in {:.0} s)\n",
            backend.name(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

struct Options {
    phase: Duration,
    clients: usize,
    /// `handout` or `storm` on the command line runs only that part.
    parts: Parts,
}

impl Options {
    fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            phase: Duration::from_secs(knobs::number("LABGATE_BENCH_SECONDS", 4)?.max(1)),
            clients: knobs::number("LABGATE_BENCH_CLIENTS", 32)?.max(1),
            parts: Parts::from_args(),
        })
    }

    fn runs(&self, part: &str) -> bool {
        self.parts.runs(part)
    }
}

async fn bench_backend(
    backend: &Backend,
    options: &Options,
    load: tokio::runtime::Handle,
) -> anyhow::Result<()> {
    let db = TestDatabase::try_create(backend)?;
    let ca = TestCa::new("Bench Root CA");
    let gitlab = FakeGitLab::start(
        &ca.issue(&["localhost", "127.0.0.1"], Validity::Current),
        Discovery::Correct,
    )
    .await;
    let admin_token = format!("bench-admin-{}", uuid::Uuid::new_v4());
    let app = Application::build(bench_settings(&db, &admin_token)).await?;
    let address = format!("http://127.0.0.1:{}", app.port());
    let ctx = app.context().clone();
    let server = app.handle();
    actix_web::rt::spawn(app.run());

    let world = World::set_up(&address, &admin_token, &ca, &gitlab, &ctx).await?;
    let outcome = async {
        if options.runs("handout") {
            handouts(&world, options, &load).await?;
        } else if options.runs("wrk") {
            // The wrk comparison alone: the quick way to judge a change to the handout path.
            let subjects: Vec<String> = (0..SUBJECTS).map(|i| format!("user-{i:05}")).collect();
            let fresh_until = Utc::now().naive_utc() + TimeDelta::hours(2);
            world.seed(subjects.iter().cloned(), fresh_until).await?;
            if let Some((figures, rate)) = wrk_ratio(&world, SUBJECTS, options).await? {
                print!("{figures}");
                print!(
                    "{}",
                    paced_latency(&world, SUBJECTS, rate / 2.0, options, &load).await?
                );
            }
        }
        if options.runs("storm") {
            world.ctx.audit.flush().await;
            storm(&world).await?;
        }
        anyhow::Ok(())
    }
    .await;
    server.stop(true).await;
    gitlab.stop().await;
    outcome
}

/// labgate with an instance `corp` on the fake GitLab and a service allowed to use it.
struct World<'a> {
    address: String,
    ctx: &'a Context,
    gitlab: &'a FakeGitLab,
    service_token: String,
    service_id: String,
    instance_id: String,
}

impl<'a> World<'a> {
    async fn set_up(
        address: &str,
        admin_token: &str,
        ca: &TestCa,
        gitlab: &'a FakeGitLab,
        ctx: &'a Context,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::new();
        let admin = |path: &str| {
            client
                .post(format!("{address}{path}"))
                .bearer_auth(admin_token)
        };
        let registered = admin("/api/v1/instances")
            .json(&json!({
                "name": "corp",
                "base_url": gitlab.base_url(),
                "client_id": default_application().client_id,
                "client_secret": CLIENT_SECRET,
                "ca_pem": ca.pem(),
                "scopes": default_application().scopes,
            }))
            .send()
            .await?;
        ensure!(
            registered.status() == 201,
            "registering the instance: {}",
            registered.text().await?
        );
        let created = admin("/api/v1/services")
            .json(&json!({
                "name": "bench-bot",
                "instances": ["corp"],
                "scopes": ["read_api", "read_repository", "write_repository"],
                "return_origins": ["https://bot.corp.example"],
            }))
            .send()
            .await?;
        ensure!(created.status() == 201, "creating the service");
        let created: Value = created.json().await?;
        let answer: Value = client
            .post(format!("{address}/api/v1/service-token"))
            .basic_auth(
                created["client_id"].as_str().unwrap_or_default(),
                created["client_secret"].as_str(),
            )
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await?
            .json()
            .await?;
        let service_token = answer["access_token"]
            .as_str()
            .context("no service token")?
            .to_owned();
        let (service_id, instance_id) = ctx
            .db_read(|conn| {
                let service = db::services::find_by_name(conn, "bench-bot")?;
                let instance = db::instances::find_by_name(conn, "corp")?;
                Ok(service.zip(instance).map(|(s, i)| (s.id, i.id)))
            })
            .await?
            .context("the service or the instance is not stored")?;
        Ok(Self {
            address: address.to_owned(),
            ctx,
            gitlab,
            service_token,
            service_id,
            instance_id,
        })
    }

    /// Stores one connection per subject, tokens sealed, the matching grants live at the
    /// fake GitLab; returns their ids.
    async fn seed(
        &self,
        subjects: impl Iterator<Item = String>,
        expires_at: NaiveDateTime,
    ) -> anyhow::Result<Vec<String>> {
        let now = Utc::now().naive_utc();
        let scopes = ScopeSet::granted(GRANTED).to_string();
        let lifetime = (expires_at - now).to_std().unwrap_or_default();
        let rows: Vec<ConnectionRow> = subjects
            .map(|subject| {
                let id = uuid::Uuid::new_v4().to_string();
                let (access, refresh) = self.gitlab.seed_grant(&GRANTED, lifetime);
                let seal = |kind, token: String| {
                    seal_token(&self.ctx.sealer, &id, kind, &SecretString::from(token))
                };
                // Seeded as GitLab's default two-hour tokens, of which `lifetime` is left.
                let life = TokenLife {
                    issued_at: expires_at - TimeDelta::hours(2),
                    expires_at,
                };
                ConnectionRow {
                    token_issued_at: life.issued_at,
                    refresh_due_at: life.refresh_due_at(&id),
                    access_token_sealed: seal(TokenKind::Access, access),
                    refresh_token_sealed: seal(TokenKind::Refresh, refresh),
                    service_id: self.service_id.clone(),
                    instance_id: self.instance_id.clone(),
                    subject,
                    scopes: scopes.clone(),
                    gitlab_user_id: fake_gitlab::USER_ID.to_string(),
                    gitlab_username: fake_gitlab::USERNAME.to_owned(),
                    expires_at,
                    status: ConnectionStatus::Active,
                    created_at: now,
                    updated_at: now,
                    refreshed_at: None,
                    refresh_lease_owner: None,
                    refresh_lease_until: None,
                    refresh_in_flight_since: None,
                    status_reason: None,
                    kind: ConnectionKind::OAuth,
                    access_token_id: None,
                    rotation_impossible: false,
                    expiry_announced_at: None,
                    id,
                }
            })
            .collect();
        let ids = rows.iter().map(|row| row.id.clone()).collect();
        self.ctx
            .db_write(move |conn| {
                conn.transaction(|conn| {
                    rows.iter()
                        .try_for_each(|row| db::connections::insert(conn, row))
                })
            })
            .await?;
        Ok(ids)
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Handout throughput and latency

#[derive(Clone)]
enum Target {
    Healthz {
        url: String,
    },
    Handout {
        url: String,
        token: Arc<str>,
        subjects: Arc<[String]>,
    },
}

impl Target {
    /// Sends request number `n`; `Ok` only for a 200 whose body arrived whole.
    async fn send(&self, client: &reqwest::Client, n: usize) -> anyhow::Result<()> {
        let response = match self {
            Target::Healthz { url } => client.get(url).send().await?,
            Target::Handout {
                url,
                token,
                subjects,
            } => {
                let subject = &subjects[n % subjects.len()];
                client
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"instance": "corp", "subject": subject}))
                    .send()
                    .await?
            }
        };
        let status = response.status();
        let body = response.bytes().await?;
        if status != 200 {
            bail!("{status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(())
    }
}

/// Completed requests and their latencies.
#[derive(Default)]
struct Sample {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Sample {
    fn merge(&mut self, other: Sample) {
        self.latencies.extend(other.latencies);
        self.elapsed += other.elapsed;
    }

    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&mut self, p: f64) -> Duration {
        self.latencies.sort_unstable();
        let last = self.latencies.len().saturating_sub(1);
        self.latencies
            .get(((self.latencies.len() as f64 * p) as usize).min(last))
            .copied()
            .unwrap_or_default()
    }

    fn latency(&mut self) -> String {
        format!(
            "p50 {:>6.2} ms  p99 {:>6.2} ms",
            millis(self.percentile(0.50)),
            millis(self.percentile(0.99))
        )
    }
}

/// `clients` concurrent clients, each with its own keep-alive connection, sending one request
/// after the other for `length`, or until `requests` were sent.
async fn closed_loop(
    target: Target,
    clients: usize,
    length: Duration,
    requests: Option<usize>,
) -> anyhow::Result<Sample> {
    let started = Instant::now();
    let deadline = started + length;
    let mut workers = Vec::with_capacity(clients);
    for first in 0..clients {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()?;
        let target = target.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = first;
            while Instant::now() < deadline && requests.is_none_or(|last| n < last) {
                let sent = Instant::now();
                target.send(&client, n).await?;
                latencies.push(sent.elapsed());
                n += clients;
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut sample = Sample::default();
    for worker in workers {
        sample.latencies.extend(worker.await??);
    }
    sample.elapsed = started.elapsed();
    Ok(sample)
}

async fn handouts(
    world: &World<'_>,
    options: &Options,
    load: &tokio::runtime::Handle,
) -> anyhow::Result<()> {
    let subjects: Vec<String> = (0..SUBJECTS).map(|i| format!("user-{i:05}")).collect();
    let fresh_until = Utc::now().naive_utc() + TimeDelta::hours(2);
    world.seed(subjects.iter().cloned(), fresh_until).await?;
    let healthz = Target::Healthz {
        url: format!("{}/healthz", world.address),
    };
    let handout = Target::Handout {
        url: format!("{}/api/v1/credentials", world.address),
        token: world.service_token.as_str().into(),
        subjects: subjects.into(),
    };
    let refreshes_before = world.gitlab.seen().refreshes;

    let clients = options.clients;
    let (mut health, mut hand) = (Sample::default(), Sample::default());
    for target in [&healthz, &handout] {
        load.spawn(closed_loop(target.clone(), clients, WARM_UP, None))
            .await??;
    }
    let round = options.phase / ROUNDS;
    for _ in 0..ROUNDS {
        health.merge(
            load.spawn(closed_loop(healthz.clone(), clients, round, None))
                .await??,
        );
        hand.merge(
            load.spawn(closed_loop(handout.clone(), clients, round, None))
                .await??,
        );
    }
    let ratio = hand.rate() / health.rate();
    let wrk = wrk_ratio(world, SUBJECTS, options).await?;
    if let Some((figures, _)) = &wrk {
        print!("{figures}");
    }
    println!(
        "closed loop, {clients} clients on keep-alive connections, {ROUNDS} × {:.1} s each, alternating:",
        round.as_secs_f64()
    );
    println!(
        "  GET /healthz              {:>8.0} req/s  {}",
        health.rate(),
        health.latency()
    );
    println!(
        "  POST /api/v1/credentials  {:>8.0} req/s  {}",
        hand.rate(),
        hand.latency()
    );
    println!(
        "  handout ÷ healthz         {ratio:>8.2}        (target ≥ {HANDOUT_RATIO_TARGET}: {})",
        verdict(ratio >= HANDOUT_RATIO_TARGET)
    );
    // Half the maximum rate: as wrk measured it, which the in-process client cannot reach.
    let maximum = wrk.map_or(hand.rate(), |(_, rate)| rate);
    print!(
        "{}",
        paced_latency(world, SUBJECTS, maximum / 2.0, options, load).await?
    );
    // Every subject asked for once: each handout reads the database (no target; for comparison).
    let first_time: Vec<String> = (0..FIRST_TIME_SUBJECTS)
        .map(|i| format!("first-{i:05}"))
        .collect();
    world.seed(first_time.iter().cloned(), fresh_until).await?;
    let first_handout = Target::Handout {
        url: format!("{}/api/v1/credentials", world.address),
        token: world.service_token.as_str().into(),
        subjects: first_time.into(),
    };
    let mut first = load
        .spawn(closed_loop(
            first_handout,
            clients,
            options.phase,
            Some(FIRST_TIME_SUBJECTS),
        ))
        .await??;
    println!(
        "closed loop over {} subjects asked for once each, nothing remembered (no target):\n  POST /api/v1/credentials  {:>8.0} req/s  {}  (÷ healthz {:.2})",
        first.latencies.len(),
        first.rate(),
        first.latency(),
        first.rate() / health.rate()
    );
    let refreshed = world.gitlab.seen().refreshes - refreshes_before;
    ensure!(
        refreshed == 0,
        "fresh tokens were refreshed {refreshed} times"
    );
    Ok(())
}

/// Handout ÷ healthz as `wrk` measures it (an external load generator in C, far cheaper per
/// request than the in-process client), in `WRK_PAIRS` pairs of runs: the figures, and the
/// handout's mean rate; `None` without `wrk`.
async fn wrk_ratio(
    world: &World<'_>,
    subjects: usize,
    options: &Options,
) -> anyhow::Result<Option<(String, f64)>> {
    if !wrk::installed() {
        return Ok(None);
    }
    let script = tempfile::NamedTempFile::new()?;
    std::fs::write(
        script.path(),
        format!(
            r#"-- Every request built once, in `init` (once wrk has set the Host header): the script's
-- work per request is a table lookup, so that wrk, sharing the machine, takes as little of it
-- as it can.
local requests = {{}}
init = function(args)
  local headers = {{["Authorization"] = "Bearer {token}", ["Content-Type"] = "application/json"}}
  for i = 1, {subjects} do
    local body = string.format('{{"instance":"corp","subject":"user-%05d"}}', i - 1)
    requests[i] = wrk.format("POST", "/api/v1/credentials", headers, body)
  end
end
local n = 0
request = function()
  n = n % {subjects} + 1
  return requests[n]
end
"#,
            token = world.service_token
        ),
    )?;
    let seconds = (options.phase.as_secs() / 2).max(2);
    let (healthz, credentials) = (
        format!("{}/healthz", world.address),
        format!("{}/api/v1/credentials", world.address),
    );
    let mut pairs = Vec::with_capacity(WRK_PAIRS);
    for _ in 0..WRK_PAIRS {
        let health = wrk::run(&healthz, None, seconds).await?;
        let hand = wrk::run(&credentials, Some(script.path()), seconds).await?;
        pairs.push((health, hand));
    }
    let mean = |rate: fn(&(wrk::WrkRun, wrk::WrkRun)) -> f64| {
        pairs.iter().map(rate).sum::<f64>() / pairs.len() as f64
    };
    let (health, hand) = (mean(|pair| pair.0.rate), mean(|pair| pair.1.rate));
    let handed: u64 = pairs.iter().map(|pair| pair.1.requests).sum();
    let mut ratios: Vec<f64> = pairs.iter().map(|(h, c)| c.rate / h.rate).collect();
    let listed = ratios
        .iter()
        .map(|r| format!("{r:.2}"))
        .collect::<Vec<_>>()
        .join(", ");
    ratios.sort_by(f64::total_cmp);
    let ratio = ratios[ratios.len() / 2];
    let p99s = |which: fn(&(wrk::WrkRun, wrk::WrkRun)) -> &str| {
        pairs.iter().map(which).collect::<Vec<_>>().join(" ")
    };
    let (health_p99, hand_p99) = (p99s(|pair| &pair.0.p99), p99s(|pair| &pair.1.p99));
    // Counted in runs of their own: the shared counter slows every allocation.
    let per_answer = |(run, count): (anyhow::Result<wrk::WrkRun>, u64)| {
        run.map(|run| count as f64 / run.requests.max(1) as f64)
    };
    let health_allocations = per_answer(allocations::during(wrk::run(&healthz, None, 2)).await)?;
    let hand_allocations =
        per_answer(allocations::during(wrk::run(&credentials, Some(script.path()), 2)).await)?;
    let figures = format!(
        "wrk -t2 -c32, keep-alive, {WRK_PAIRS} pairs of {seconds} s runs, healthz then handout \
         ({handed} handouts over {subjects} subjects):\n  \
         GET /healthz              {health:>8.0} req/s  p99 {health_p99}\n  \
         POST /api/v1/credentials  {hand:>8.0} req/s  p99 {hand_p99}\n  \
         handout ÷ healthz by pair {listed}\n  \
         handout ÷ healthz         {ratio:>8.3}        (the pairs' median; target ≥ {WRK_RATIO_TARGET}: {})\n  \
         heap allocations per answer, counted in one more 2 s run of each: \
         healthz {health_allocations:.1}, handout {hand_allocations:.1}\n",
        verdict(ratio >= WRK_RATIO_TARGET)
    );
    Ok(Some((figures, hand)))
}

/// Healthz, then the handout (for `subjects` subjects in turn), each sent at `rate` a second
/// by the paced generator on a thread of the load runtime; healthz's latency is the floor this
/// machine and the generator set.
async fn paced_latency(
    world: &World<'_>,
    subjects: usize,
    rate: f64,
    options: &Options,
    load: &tokio::runtime::Handle,
) -> anyhow::Result<String> {
    let address: std::net::SocketAddr = world.address.trim_start_matches("http://").parse()?;
    let host = format!("Host: {address}\r\n");
    let healthz: Arc<[Vec<u8>]> =
        [format!("GET /healthz HTTP/1.1\r\n{host}\r\n").into_bytes()].into();
    let handouts: Arc<[Vec<u8>]> = (0..subjects)
        .map(|i| {
            let body = format!(r#"{{"instance":"corp","subject":"user-{i:05}"}}"#);
            format!(
                "POST /api/v1/credentials HTTP/1.1\r\n{host}Authorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                world.service_token,
                body.len()
            )
            .into_bytes()
        })
        .collect();
    let clients = options.clients;
    let paced = |requests: &Arc<[Vec<u8>]>, length| {
        let requests = requests.clone();
        load.spawn_blocking(move || paced::run(address, &requests, rate, clients, length))
    };
    // Each run starts with the audit events of the one before written out: otherwise their
    // writing would be measured as the next run's latency.
    world.ctx.audit.flush().await;
    paced(&handouts, WARM_UP).await??;
    world.ctx.audit.flush().await;
    let health = paced(&healthz, options.phase).await??;
    let hand = paced(&handouts, options.phase).await??;
    let line = |run: &paced::PacedRun| {
        format!(
            "{:>8.0} req/s  p50 {:>6.3} ms  p99 {:>6.3} ms  (as read {:>6.3} ms)",
            run.rate,
            millis(run.server.percentile(0.50)),
            millis(run.server.percentile(0.99)),
            millis(run.as_read.percentile(0.99))
        )
    };
    let p99 = hand.server.percentile(0.99);
    Ok(format!(
        "paced at {rate:.0} req/s (half the maximum), {clients} connections, {:.0} s each, latency from when each request was due, less the generator's own delays; as read: with them ({} handouts):\n  \
         GET /healthz              {}\n  \
         POST /api/v1/credentials  {}   (target p99 ≤ {} ms: {})\n",
        options.phase.as_secs_f64(),
        hand.server.count(),
        line(&health),
        line(&hand),
        PACED_P99_TARGET.as_millis(),
        verdict(p99 <= PACED_P99_TARGET)
    ))
}

// ---------------------------------------------------------------------------------------------
// 2. Refresh storm

async fn storm(world: &World<'_>) -> anyhow::Result<()> {
    let now = Utc::now().naive_utc();
    let ids = world
        .seed((0..STORM).map(|i| format!("storm-{i:05}")), now)
        .await?;
    world.gitlab.behave(|b| b.refresh_delay = STORM_DELAY);
    let before = world.gitlab.seen().refreshes;
    ensure!(
        world.ctx.refresher.concurrency == STORM_CONCURRENCY,
        "the refresher's concurrency is not {STORM_CONCURRENCY}"
    );

    let started = Instant::now();
    let swept = refresh::sweep(world.ctx).await?;
    let wall = started.elapsed();
    let calls = world.gitlab.seen().refreshes - before;
    world.gitlab.behave(|b| b.refresh_delay = Duration::ZERO);

    let ideal = STORM_DELAY * STORM as u32 / STORM_CONCURRENCY as u32;
    let ratio = wall.as_secs_f64() / ideal.as_secs_f64();
    println!(
        "refresh storm: {STORM} connections due at once, GitLab answering in {} ms, one sweep at concurrency {STORM_CONCURRENCY}:",
        STORM_DELAY.as_millis()
    );
    println!(
        "  wall {:.2} s, ideal {:.2} s ({STORM} × {} ms ÷ {STORM_CONCURRENCY}), ratio {ratio:.2}×  (target ≤ {STORM_RATIO_TARGET}×: {})",
        wall.as_secs_f64(),
        ideal.as_secs_f64(),
        STORM_DELAY.as_millis(),
        verdict(ratio <= STORM_RATIO_TARGET)
    );
    println!(
        "  refresh calls at GitLab {calls}, sweep reports {swept} refreshed  (must be exactly {STORM}: {})",
        verdict(calls == STORM && swept == STORM)
    );

    let (fresh, live) = check_storm(world, ids).await?;
    println!(
        "  afterwards: {fresh}/{STORM} connections active and fresh, {live}/{STORM} access tokens live at GitLab"
    );
    ensure!(
        calls == STORM && swept == STORM && fresh == STORM && live == STORM,
        "the storm lost or repeated refreshes"
    );
    Ok(())
}

/// How many of the storm's connections are active, settled and valid past the refresher's
/// margin, and how many of their stored access tokens GitLab accepts.
async fn check_storm(world: &World<'_>, ids: Vec<String>) -> anyhow::Result<(usize, usize)> {
    let rows = world
        .ctx
        .db_read(move |conn| {
            ids.iter()
                .map(|id| db::connections::find(conn, id))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    let now = Utc::now().naive_utc();
    let mut fresh = 0;
    let mut live = 0;
    for row in rows.into_iter().flatten() {
        if row.status == ConnectionStatus::Active
            && row.refresh_due_at > now
            && row.refresh_in_flight_since.is_none()
            && row.refresh_lease_owner.is_none()
            && row.refreshed_at.is_some()
        {
            fresh += 1;
        }
        let access = open_token(&world.ctx.sealer, &row, TokenKind::Access)?;
        if world.gitlab.access_token_works(access.expose_secret()) {
            live += 1;
        }
    }
    Ok((fresh, live))
}

// ---------------------------------------------------------------------------------------------
// Settings

/// labgate's configuration, isolated: its defaults for pool, workers and timeouts; the
/// refresher left to the storm's one sweep.
fn bench_settings(db: &TestDatabase, admin_token: &str) -> Settings {
    let mut settings = settings::isolated(db, admin_token);
    settings.refresher.enabled = false;
    settings.refresher.concurrency = STORM_CONCURRENCY;
    settings
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}
