//! Prometheus metrics, one registry per application: handouts and refreshes by instance and
//! outcome, refresh latency, connections by status.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub instance: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Instance {
    pub instance: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Task {
    pub task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Status {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Proxied {
    pub instance: String,
    pub channel: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Door {
    pub instance: String,
    pub channel: String,
}

type Latency = Family<Instance, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    handouts: Family<Outcome, Counter>,
    refreshes: Family<Outcome, Counter>,
    refresh_seconds: Latency,
    connections: Family<Status, Gauge>,
    task_failures: Family<Task, Counter>,
    proxied: Family<Proxied, Counter>,
    proxied_bytes: Family<Door, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("labgate");
        let handouts = Family::<Outcome, Counter>::default();
        let refreshes = Family::<Outcome, Counter>::default();
        let refresh_seconds: Latency =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.005, 2.0, 12)));
        let connections = Family::<Status, Gauge>::default();
        registry.register(
            "handouts",
            "Credentials handed out, by instance and outcome",
            handouts.clone(),
        );
        registry.register(
            "refreshes",
            "Token refreshes at GitLab, by instance and outcome",
            refreshes.clone(),
        );
        registry.register(
            "refresh_duration_seconds",
            "Time GitLab took to answer a refresh",
            refresh_seconds.clone(),
        );
        registry.register("connections", "Connections by status", connections.clone());
        let task_failures = Family::<Task, Counter>::default();
        registry.register(
            "background_task_failures",
            "Background tasks that panicked and were restarted, by task",
            task_failures.clone(),
        );
        let proxied = Family::<Proxied, Counter>::default();
        registry.register(
            "proxy_requests",
            "Calls through the git and API proxy, by instance, channel and answer status",
            proxied.clone(),
        );
        let proxied_bytes = Family::<Door, Counter>::default();
        registry.register(
            "proxy_response_bytes",
            "Bytes of answers sent through the proxy, by instance and channel",
            proxied_bytes.clone(),
        );
        registry.register(
            "build",
            "This binary's version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Self {
            registry,
            proxied,
            proxied_bytes,
            handouts,
            refreshes,
            refresh_seconds,
            connections,
            task_failures,
        }
    }
}

impl Metrics {
    pub fn task_failed(&self, task: &str) {
        self.task_failures
            .get_or_create(&Task {
                task: task.to_owned(),
            })
            .inc();
    }

    pub fn handout(&self, instance: &str, outcome: &str) {
        self.handouts
            .get_or_create(&Outcome {
                instance: instance.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn proxied(&self, instance: &str, channel: &str, status: u16, bytes: u64) {
        self.proxied
            .get_or_create(&Proxied {
                instance: instance.to_owned(),
                channel: channel.to_owned(),
                status: status.to_string(),
            })
            .inc();
        self.proxied_bytes
            .get_or_create(&Door {
                instance: instance.to_owned(),
                channel: channel.to_owned(),
            })
            .inc_by(bytes);
    }

    pub fn refresh(&self, instance: &str, outcome: &str, seconds: f64) {
        self.refreshes
            .get_or_create(&Outcome {
                instance: instance.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.refresh_seconds
            .get_or_create(&Instance {
                instance: instance.to_owned(),
            })
            .observe(seconds);
    }

    /// Sets the connections gauge from a fresh count, every status named even at zero.
    pub fn set_connections(&self, counts: &[(&str, i64)]) {
        for (status, count) in counts {
            self.connections
                .get_or_create(&Status {
                    status: (*status).to_owned(),
                })
                .set(*count);
        }
    }

    /// The Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}
