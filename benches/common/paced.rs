//! An open-loop load generator timed to the microsecond: request `n` is due at `n ÷ rate`,
//! goes out on the keep-alive connection idle the longest, and its latency counts from when it
//! was due, as wrk2 counts it, so a stall is charged to every request it held back.
//!
//! Why not wrk2 or tokio: both wake on millisecond timers (epoll's timeout, tokio's wheel), so
//! each request leaves up to a millisecond late and that lateness is counted as latency; wrk2
//! measured `/healthz` at a quarter of its capacity with a p50 of 1.05 ms here. This generator
//! sleeps on a timerfd with 1 ns of slack, on one thread of its own, and handles HTTP/1.1 only as
//! far as its answers need (a status and a Content-Length).
//!
//! The generator shares the machine with the server, and its thread is preempted too (on the
//! 2-core VMs here, by the kernel's `kdamond` and `khugepaged` and by the VM's agent, for 2-7 ms
//! at a time, while the other core idled). Time it lost so is its own, not the server's, and is taken out of the
//! server's latency: an answer counts as come when the kernel received it (`SO_TIMESTAMPNS`),
//! not when the generator got round to reading it, and a request the generator sent late while
//! a connection stood free is charged only from when it went out. Time a request waited because
//! every connection was busy stays charged. Both figures are kept.

use std::collections::VecDeque;
use std::io::{IoSliceMut, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd as _;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{
    ClockId as TimerClock, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags,
};
use nix::time::{ClockId, clock_gettime};

/// The epoll token of the timer; connections are numbered from 0.
const TIMER: u64 = u64::MAX;
/// A run fails rather than hang when no answer (and no due request) comes for this long.
const SILENCE_MS: u16 = 30_000;

/// The latencies of one paced run, and the rate it reached.
pub struct PacedRun {
    /// The server's: from when each request was due, less the generator's own delays.
    pub server: Latencies,
    /// From when each request was due to when the generator read its answer, its own delays
    /// included.
    pub as_read: Latencies,
    pub rate: f64,
}

/// Sorted, shortest first.
pub struct Latencies(Vec<Duration>);

impl Latencies {
    fn sorted(mut latencies: Vec<Duration>) -> Self {
        latencies.sort_unstable();
        Self(latencies)
    }

    pub fn percentile(&self, p: f64) -> Duration {
        let last = self.0.len().saturating_sub(1);
        self.0
            .get(((self.0.len() as f64 * p) as usize).min(last))
            .copied()
            .unwrap_or_default()
    }

    pub fn count(&self) -> usize {
        self.0.len()
    }
}

/// Sends `requests` (whole HTTP/1.1 requests, taken in turn) to `address` at `rate` a second
/// over `connections` keep-alive connections for `length`, on the calling thread; any answer
/// but a 200 fails the run.
pub fn run(
    address: SocketAddr,
    requests: &[Vec<u8>],
    rate: f64,
    connections: usize,
    length: Duration,
) -> anyhow::Result<PacedRun> {
    ensure!(!requests.is_empty() && rate > 0.0 && connections > 0);
    // Timers on this thread fire when due, not up to 50 µs later.
    nix::sys::prctl::set_timerslack(1)?;
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    let timer = TimerFd::new(
        TimerClock::CLOCK_MONOTONIC,
        TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
    )?;
    epoll.add(&timer, EpollEvent::new(EpollFlags::EPOLLIN, TIMER))?;
    let mut open = Vec::with_capacity(connections);
    for token in 0..connections {
        let stream = TcpStream::connect(address)?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        setsockopt(&stream, sockopt::ReceiveTimestampns, &true)?;
        epoll.add(&stream, EpollEvent::new(EpollFlags::EPOLLIN, token as u64))?;
        open.push(Connection {
            stream,
            due: None,
            held: 0,
            free_since: 0,
            answer: Vec::new(),
            arrived: None,
        });
    }
    let clocks = Clocks::read();

    let count = (rate * length.as_secs_f64()) as u64;
    let period = 1e9 / rate;
    let start = now() + 1_000_000;
    let due = |n: u64| start + (n as f64 * period) as u64;
    // Longest idle first: every connection stays in use, so none outlives the server's
    // keep-alive timeout (5 s) unused, as the most recently idle first would let them.
    let mut idle: VecDeque<usize> = (0..connections).collect();
    // Requests due while every connection was busy, oldest first.
    let mut waiting = VecDeque::new();
    let (mut scheduled, mut sent) = (0u64, 0usize);
    // The request the timer is set for.
    let mut armed = None;
    let mut server = Vec::with_capacity(count as usize);
    let mut as_read = Vec::with_capacity(count as usize);
    let mut events = [EpollEvent::empty(); 64];
    let mut read_buffer = vec![0u8; 64 * 1024];
    while (server.len() as u64) < count {
        let time = now();
        while scheduled < count && due(scheduled) <= time {
            waiting.push_back(due(scheduled));
            scheduled += 1;
        }
        while !waiting.is_empty() {
            let Some(token) = idle.pop_front() else { break };
            let connection = &mut open[token];
            let due = waiting.pop_front().context("a request is waiting")?;
            // Since when this request could have gone out: the generator's delay after that
            // is its own.
            connection.held = now().saturating_sub(due.max(connection.free_since));
            // A request of a few hundred bytes always fits an idle loopback socket's buffer.
            connection
                .stream
                .write_all(&requests[sent % requests.len()])
                .context("sending a request")?;
            connection.due = Some(due);
            sent += 1;
        }
        // Armed once per request, not at every answer: each system call here is CPU taken
        // from the server it measures.
        if scheduled < count && armed != Some(scheduled) {
            let at = TimeSpec::from(Duration::from_nanos(due(scheduled)));
            timer.set(
                Expiration::OneShot(at),
                TimerSetTimeFlags::TFD_TIMER_ABSTIME,
            )?;
            armed = Some(scheduled);
        }
        let ready = match epoll.wait(&mut events, EpollTimeout::from(SILENCE_MS)) {
            Ok(0) => bail!("nothing happened for {SILENCE_MS} ms: the server stopped answering"),
            Ok(ready) => ready,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        for event in &events[..ready] {
            if event.data() == TIMER {
                // Only clears its readiness; the schedule is read from the clock.
                let _ = timer.wait();
                continue;
            }
            let token = event.data() as usize;
            let connection = &mut open[token];
            connection.read_available(&mut read_buffer, &clocks)?;
            while let Some(length) = complete_answer(&connection.answer)? {
                let due = connection
                    .due
                    .take()
                    .context("an answer nobody asked for")?;
                let read = now();
                // Without the kernel's time, the answer counts as come when it was read.
                let arrived = connection.arrived.unwrap_or(read).clamp(due, read);
                server.push(Duration::from_nanos(
                    (arrived - due).saturating_sub(connection.held),
                ));
                as_read.push(Duration::from_nanos(read - due));
                connection.free_since = arrived;
                connection.answer.drain(..length);
                idle.push_back(token);
            }
        }
    }
    let elapsed = Duration::from_nanos(now().saturating_sub(start));
    Ok(PacedRun {
        rate: server.len() as f64 / elapsed.as_secs_f64(),
        server: Latencies::sorted(server),
        as_read: Latencies::sorted(as_read),
    })
}

struct Connection {
    stream: TcpStream,
    /// When the request in flight on it was due.
    due: Option<u64>,
    /// How long the generator held that request back while this connection stood free.
    held: u64,
    /// When its last answer arrived.
    free_since: u64,
    /// What has arrived of its answer.
    answer: Vec<u8>,
    /// When the kernel received the last of it.
    arrived: Option<u64>,
}

impl Connection {
    /// One read: what is left is reported again by epoll (level-triggered), and a read to
    /// learn that nothing is left would be one more system call for every answer.
    fn read_available(&mut self, buffer: &mut [u8], clocks: &Clocks) -> anyhow::Result<()> {
        let mut received = nix::cmsg_space!(TimeSpec);
        let mut parts = [IoSliceMut::new(buffer)];
        let (read, arrived) = match recvmsg::<()>(
            self.stream.as_raw_fd(),
            &mut parts,
            Some(&mut received),
            MsgFlags::empty(),
        ) {
            Ok(message) => {
                let arrived = message.cmsgs()?.find_map(|control| match control {
                    ControlMessageOwned::ScmTimestampns(at) => Some(clocks.monotonic(at)),
                    _ => None,
                });
                (message.bytes, arrived)
            }
            Err(Errno::EAGAIN | Errno::EINTR) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        ensure!(read > 0, "the server closed a keep-alive connection");
        self.answer.extend_from_slice(&buffer[..read]);
        self.arrived = arrived;
        Ok(())
    }
}

/// The kernel stamps what it receives with the wall clock; the schedule runs on the monotonic
/// one. Their difference, read once: over a run of seconds, the wall clock's slewing moves it
/// by microseconds at most.
struct Clocks {
    wall_ahead: i128,
}

impl Clocks {
    fn read() -> Self {
        let before = now();
        let wall = clock_gettime(ClockId::CLOCK_REALTIME).expect("CLOCK_REALTIME is always there");
        let after = now();
        Self {
            wall_ahead: nanos(wall) - i128::from(before / 2 + after / 2),
        }
    }

    fn monotonic(&self, wall: TimeSpec) -> u64 {
        u64::try_from(nanos(wall) - self.wall_ahead).unwrap_or_default()
    }
}

fn nanos(at: TimeSpec) -> i128 {
    i128::from(at.tv_sec()) * 1_000_000_000 + i128::from(at.tv_nsec())
}

/// The length of the whole answer at the start of `bytes`, once it has all arrived; fails
/// unless it is a 200.
fn complete_answer(bytes: &[u8]) -> anyhow::Result<Option<usize>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut answer = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head) = answer.parse(bytes)? else {
        return Ok(None);
    };
    let body = answer
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
        .context("an answer without Content-Length")?;
    if bytes.len() < head + body {
        return Ok(None);
    }
    let status = answer.code.unwrap_or_default();
    ensure!(
        status == 200,
        "{status}: {}",
        String::from_utf8_lossy(&bytes[head..head + body])
    );
    Ok(Some(head + body))
}

/// Nanoseconds on the clock the timer counts in.
fn now() -> u64 {
    let now = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC is always there");
    nanos(now) as u64
}
