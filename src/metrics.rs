//! Prometheus metrics, one registry per application: handouts and refreshes by instance and
//! outcome, refresh latency, connections by instance and status, HTTP answers by route, the
//! database pool and the audit queue.

use std::hash::Hash;
use std::sync::Mutex;

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
    pub outcome: &'static str,
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
pub struct InstanceStatus {
    pub instance: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HeldToken {
    pub instance: String,
    pub connection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Answered {
    pub method: String,
    /// The route's template (`/api/v1/connections/{id}`), never the path itself.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolState {
    pub state: &'static str,
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabel {
    pub service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceOutcome {
    pub service: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

type Latency = Family<Instance, Histogram, fn() -> Histogram>;
type RouteLatency = Family<Answered, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    handouts: Family<Outcome, Counter>,
    refreshes: Family<Outcome, Counter>,
    refresh_seconds: Latency,
    connections: GaugeSet<InstanceStatus>,
    http_seconds: RouteLatency,
    clients_rejected: GaugeSet<Instance>,
    access_token_days_left: GaugeSet<HeldToken>,
    pool_connections: Family<PoolState, Gauge>,
    audit_queue: Gauge,
    task_failures: Family<Task, Counter>,
    proxied: Family<Proxied, Counter>,
    proxied_bytes: Family<Door, Counter>,
    exchanges: Family<ServiceLabel, Counter>,
    exchange_refusals: Family<Reason, Counter>,
    webhook_deliveries: Family<ServiceOutcome, Counter>,
    webhook_outbox: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("labgate");
        let handouts = Family::<Outcome, Counter>::default();
        let refreshes = Family::<Outcome, Counter>::default();
        let refresh_seconds: Latency =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.005, 2.0, 12)));
        let connections = GaugeSet::default();
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
        registry.register(
            "connections",
            "Connections by instance and status",
            connections.family.clone(),
        );
        let http_seconds: RouteLatency =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 15)));
        registry.register(
            "http_request_duration_seconds",
            "Time to the head of each HTTP answer, by method, route template and status",
            http_seconds.clone(),
        );
        let access_token_days_left = GaugeSet::<HeldToken>::default();
        registry.register(
            "access_token_days_left",
            "Whole days until each access-token connection's token expires",
            access_token_days_left.family.clone(),
        );
        let clients_rejected = GaugeSet::default();
        registry.register(
            "instance_client_rejected",
            "1 while GitLab answers invalid_client for the instance's OAuth application",
            clients_rejected.family.clone(),
        );
        let pool_connections = Family::<PoolState, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Database connections held by the pool, idle or in use",
            pool_connections.clone(),
        );
        let audit_queue = Gauge::default();
        registry.register(
            "audit_queue_length",
            "Audit events and ledger entries waiting to be written",
            audit_queue.clone(),
        );
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
        let exchanges = Family::<ServiceLabel, Counter>::default();
        registry.register(
            "token_exchanges",
            "Workload tokens exchanged for service tokens, by service",
            exchanges.clone(),
        );
        let exchange_refusals = Family::<Reason, Counter>::default();
        registry.register(
            "token_exchange_refusals",
            "Token exchanges refused, by the check that failed",
            exchange_refusals.clone(),
        );
        let webhook_deliveries = Family::<ServiceOutcome, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts, by service and outcome (delivered, retry, failed)",
            webhook_deliveries.clone(),
        );
        let webhook_outbox = Gauge::default();
        registry.register(
            "webhook_outbox_length",
            "Webhook deliveries waiting to be delivered (every process's)",
            webhook_outbox.clone(),
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
            exchanges,
            exchange_refusals,
            webhook_deliveries,
            webhook_outbox,
            handouts,
            refreshes,
            refresh_seconds,
            connections,
            http_seconds,
            clients_rejected,
            access_token_days_left,
            pool_connections,
            audit_queue,
            task_failures,
        }
    }
}

/// A gauge family whose series are all replaced at once from a fresh count.
struct GaugeSet<S> {
    family: Family<S, Gauge>,
    /// The series set last, so that those a new count leaves out are removed.
    shown: Mutex<Vec<S>>,
}

impl<S: Clone + Hash + Eq> Default for GaugeSet<S> {
    fn default() -> Self {
        Self {
            family: Family::default(),
            shown: Mutex::default(),
        }
    }
}

impl<S: Clone + Hash + Eq> GaugeSet<S> {
    /// Sets every series in `values` first, then removes the others: a scrape in between sees
    /// every series that still exists.
    fn replace(&self, values: Vec<(S, i64)>) {
        let mut shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        for (labels, value) in &values {
            self.family.get_or_create(labels).set(*value);
        }
        for gone in shown
            .iter()
            .filter(|old| !values.iter().any(|(labels, _)| labels == *old))
        {
            self.family.remove(gone);
        }
        *shown = values.into_iter().map(|(labels, _)| labels).collect();
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

    pub fn exchanged(&self, service: &str) {
        self.exchanges
            .get_or_create(&ServiceLabel {
                service: service.to_owned(),
            })
            .inc();
    }

    /// `reason` is one of a fixed set of words, never request text.
    pub fn exchange_refused(&self, reason: &'static str) {
        self.exchange_refusals
            .get_or_create(&Reason { reason })
            .inc();
    }

    /// `outcome`: `delivered`, `retry` or `failed`.
    pub fn webhook_attempt(&self, service: &str, outcome: &'static str) {
        self.webhook_deliveries
            .get_or_create(&ServiceOutcome {
                service: service.to_owned(),
                outcome,
            })
            .inc();
    }

    pub fn set_webhook_outbox(&self, pending: i64) {
        self.webhook_outbox.set(pending);
    }

    pub fn handout(&self, instance: &str, outcome: &'static str) {
        self.handouts
            .get_or_create(&Outcome {
                instance: instance.to_owned(),
                outcome,
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

    pub fn refresh(&self, instance: &str, outcome: &'static str, seconds: f64) {
        self.refreshes
            .get_or_create(&Outcome {
                instance: instance.to_owned(),
                outcome,
            })
            .inc();
        self.refresh_seconds
            .get_or_create(&Instance {
                instance: instance.to_owned(),
            })
            .observe(seconds);
    }

    /// Sets the connections gauge from a fresh count, which names every series to show; series
    /// it no longer names (a deleted instance's) are removed.
    pub fn set_connections(&self, counts: Vec<(InstanceStatus, i64)>) {
        self.connections.replace(counts);
    }

    /// Sets, for every registered instance, whether GitLab rejects its client (1) or not (0).
    pub fn set_clients_rejected(&self, standing: &[(String, bool)]) {
        let series = standing
            .iter()
            .map(|(instance, rejected)| {
                let labels = Instance {
                    instance: instance.clone(),
                };
                (labels, i64::from(*rejected))
            })
            .collect();
        self.clients_rejected.replace(series);
    }

    /// Sets the days left of every active access-token connection, replacing the last count.
    pub fn set_access_token_days_left(&self, days_left: Vec<(HeldToken, i64)>) {
        self.access_token_days_left.replace(days_left);
    }

    pub fn answered(&self, labels: &Answered, seconds: f64) {
        self.http_seconds.get_or_create(labels).observe(seconds);
    }

    pub fn set_pool(&self, idle: u32, in_use: u32) {
        for (state, count) in [("idle", idle), ("in_use", in_use)] {
            self.pool_connections
                .get_or_create(&PoolState { state })
                .set(i64::from(count));
        }
    }

    pub fn set_audit_queue(&self, queued: usize) {
        self.audit_queue
            .set(i64::try_from(queued).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(instance: &str, count: i64) -> (InstanceStatus, i64) {
        let labels = InstanceStatus {
            instance: instance.to_owned(),
            status: "active".to_owned(),
        };
        (labels, count)
    }

    #[test]
    fn a_recount_drops_the_series_of_instances_it_no_longer_names() {
        let metrics = Metrics::default();
        metrics.set_connections(vec![series("corp", 3), series("lab", 1)]);
        metrics.set_connections(vec![series("corp", 4)]);

        let text = metrics.encode();
        assert!(text.contains(r#"labgate_connections{instance="corp",status="active"} 4"#));
        assert!(!text.contains(r#"instance="lab""#), "{text}");
    }
}
