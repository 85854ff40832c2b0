//! What the gateway counts, for the admin API's `/metrics` (Prometheus text format) and
//! `/status`. One [`Metrics`] lives as long as the running gateway and survives reloads: routes
//! and plugins take handles to their series when a gateway is built, so the request path only
//! bumps counters it already holds (and looks up one `{route, status}` series).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

use crate::plugin::CallError;

/// A label value shared by reference: a route or plugin name is cloned per request as a
/// reference count, never as a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(pub Arc<str>);

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: Name,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PluginLabels {
    route: Name,
    plugin: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FailureLabels {
    route: Name,
    plugin: Name,
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Request and upstream latencies: 0.5 ms to 60 s.
fn request_buckets() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        60.0,
    ])
}

/// Plugin calls: 2 µs to 100 ms (the default CPU deadline).
fn plugin_buckets() -> Histogram {
    Histogram::new([
        0.000_002, 0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001,
        0.005, 0.01, 0.1,
    ])
}

/// Every series the gateway keeps.
pub struct Metrics {
    registry: Registry,
    started: Instant,
    started_at: SystemTime,
    requests: Family<RequestLabels, Counter>,
    request_duration: Histograms<RouteLabels>,
    upstream_duration: Histograms<RouteLabels>,
    plugin_duration: Histograms<PluginLabels>,
    plugin_failures: Family<FailureLabels, Counter>,
    reloads: Family<ResultLabels, Counter>,
    open_connections: Family<ListenerLabels, Gauge>,
    connections: Family<ListenerLabels, Counter>,
    requests_total: AtomicU64,
    /// Per-route totals by status class, for the admin API (the families cannot be read back).
    tallies: Mutex<HashMap<Arc<str>, Arc<Tally>>>,
}

/// Requests by status class.
#[derive(Debug, Default)]
struct Tally([AtomicU64; 5]);

impl Tally {
    fn add(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.0[class].fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed))
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Fresh series, all at zero, with the clock for uptime started now.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("wasmgate");
        // Registers a series and keeps a handle to it (handles share the series' values).
        fn add<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
            registry.register(name, help, metric.clone());
            metric
        }
        let r = &mut registry;
        let requests = add(
            r,
            "requests",
            "Requests answered, by route and status (route is empty when none matched)",
            Family::default(),
        );
        let request_duration = add(
            r,
            "request_duration_seconds",
            "Time from the request's arrival to the response head, by route",
            Histograms::<RouteLabels>::new_with_constructor(request_buckets),
        );
        let upstream_duration = add(
            r,
            "upstream_duration_seconds",
            "Time from sending the request upstream to the upstream's response head, by route",
            Histograms::<RouteLabels>::new_with_constructor(request_buckets),
        );
        let plugin_duration = add(
            r,
            "plugin_call_duration_seconds",
            "Time spent in each call into a plugin (request and response headers), by route and plugin",
            Histograms::<PluginLabels>::new_with_constructor(plugin_buckets),
        );
        let plugin_failures = add(
            r,
            "plugin_failures",
            "Plugin calls that failed, by route, plugin and kind (trap, timeout, unavailable, misbehaved)",
            Family::default(),
        );
        let reloads = add(
            r,
            "reloads",
            "Reload attempts by result: swapped, unchanged or failed",
            Family::default(),
        );
        let open_connections = add(
            r,
            "open_connections",
            "Client connections open now, by listener",
            Family::default(),
        );
        let connections = add(
            r,
            "connections",
            "Client connections accepted, by listener",
            Family::default(),
        );
        Metrics {
            registry,
            started: Instant::now(),
            started_at: SystemTime::now(),
            requests,
            request_duration,
            upstream_duration,
            plugin_duration,
            plugin_failures,
            reloads,
            open_connections,
            connections,
            requests_total: AtomicU64::new(0),
            tallies: Mutex::default(),
        }
    }

    /// The handles one route's requests use.
    pub fn route(self: &Arc<Self>, route: &Arc<str>) -> RouteMetrics {
        let labels = RouteLabels {
            route: Name(route.clone()),
        };
        RouteMetrics {
            metrics: self.clone(),
            route: Name(route.clone()),
            tally: self.tally(route),
            duration: self.request_duration.get_or_create(&labels).clone(),
            upstream: self.upstream_duration.get_or_create(&labels).clone(),
            common: Default::default(),
        }
    }

    /// The handles one plugin of a route uses.
    pub fn plugin(&self, route: &Arc<str>, plugin: &Arc<str>) -> PluginMetrics {
        let failure = |kind| {
            self.plugin_failures
                .get_or_create(&FailureLabels {
                    route: Name(route.clone()),
                    plugin: Name(plugin.clone()),
                    kind,
                })
                .clone()
        };
        PluginMetrics {
            duration: self
                .plugin_duration
                .get_or_create(&PluginLabels {
                    route: Name(route.clone()),
                    plugin: Name(plugin.clone()),
                })
                .clone(),
            traps: failure("trap"),
            timeouts: failure("timeout"),
            unavailable: failure("unavailable"),
            misbehaved: failure("misbehaved"),
        }
    }

    fn tally(&self, route: &Arc<str>) -> Arc<Tally> {
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        tallies.entry(route.clone()).or_default().clone()
    }

    /// Counts a request that matched no route (or never got as far as matching one).
    pub fn unrouted(&self, status: u16) {
        let route: Arc<str> = Arc::from("");
        self.tally(&route).add(status);
        self.count(Name(route), status);
    }

    fn count(&self, route: Name, status: u16) {
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
    }

    /// Counts a reload attempt: `swapped`, `unchanged` or `failed`.
    pub fn reload(&self, result: &'static str) {
        self.reloads.get_or_create(&ResultLabels { result }).inc();
    }

    /// The open-connection gauge of a listener (`http`, `https`, `admin`), and its accepted
    /// counter.
    pub fn listener(&self, listener: &'static str) -> ConnectionMetrics {
        let labels = ListenerLabels { listener };
        ConnectionMetrics {
            open: self.open_connections.get_or_create(&labels).clone(),
            accepted: self.connections.get_or_create(&labels).clone(),
        }
    }

    /// Requests answered since start.
    pub fn requests_total(&self) -> u64 {
        self.requests_total.load(Ordering::Relaxed)
    }

    /// Requests answered since start on `route`, by status class (`[1xx, 2xx, 3xx, 4xx, 5xx]`);
    /// zeros for a route never served.
    pub fn route_requests(&self, route: &str) -> [u64; 5] {
        let tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        tallies.get(route).map_or([0; 5], |t| t.get())
    }

    /// Connections open now, over every client listener (the admin listener not counted).
    pub fn open_connections(&self) -> i64 {
        ["http", "https"]
            .iter()
            .map(|&listener| {
                self.open_connections
                    .get_or_create(&ListenerLabels { listener })
                    .get()
            })
            .sum()
    }

    /// Connections accepted since start on the client listeners.
    pub fn connections_total(&self) -> u64 {
        ["http", "https"]
            .iter()
            .map(|&listener| {
                self.connections
                    .get_or_create(&ListenerLabels { listener })
                    .get()
            })
            .sum()
    }

    /// Time since the metrics (the gateway) started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// When the gateway started.
    pub fn started_at(&self) -> SystemTime {
        self.started_at
    }

    /// Every series in the Prometheus text exposition format (OpenMetrics 1.0 text).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// One route's series.
#[derive(Clone)]
pub struct RouteMetrics {
    metrics: Arc<Metrics>,
    route: Name,
    tally: Arc<Tally>,
    duration: Histogram,
    upstream: Histogram,
    /// The route's `requests_total` counter of each status in [`COMMON_STATUSES`], taken from
    /// the family at its first use: the family's lookup (a lock and a hash of the labels) cost
    /// about 300 instructions per request.
    common: [OnceLock<Counter>; COMMON_STATUSES.len()],
}

/// The statuses whose counters a route keeps at hand; others are looked up in the family.
const COMMON_STATUSES: [u16; 16] = [
    200, 201, 204, 301, 302, 304, 400, 401, 403, 404, 413, 429, 500, 502, 503, 504,
];

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteMetrics")
            .field("route", &self.route.0)
            .finish_non_exhaustive()
    }
}

impl RouteMetrics {
    /// Counts a request answered with `status` after `total`.
    pub fn answered(&self, status: u16, total: Duration) {
        match COMMON_STATUSES.iter().position(|&s| s == status) {
            Some(i) => {
                self.metrics.requests_total.fetch_add(1, Ordering::Relaxed);
                self.common[i]
                    .get_or_init(|| {
                        self.metrics
                            .requests
                            .get_or_create(&RequestLabels {
                                route: self.route.clone(),
                                status,
                            })
                            .clone()
                    })
                    .inc();
            }
            None => self.metrics.count(self.route.clone(), status),
        }
        self.tally.add(status);
        self.duration.observe(total.as_secs_f64());
    }

    /// Records the upstream's time to its response head.
    pub fn upstream(&self, elapsed: Duration) {
        self.upstream.observe(elapsed.as_secs_f64());
    }
}

/// One plugin's series on one route.
#[derive(Clone)]
pub struct PluginMetrics {
    duration: Histogram,
    traps: Counter,
    timeouts: Counter,
    unavailable: Counter,
    misbehaved: Counter,
}

impl std::fmt::Debug for PluginMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginMetrics").finish_non_exhaustive()
    }
}

impl PluginMetrics {
    /// Records one call that took `elapsed`.
    pub fn call(&self, elapsed: Duration) {
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// Counts a failed call by its kind.
    pub fn failed(&self, error: &CallError) {
        match error {
            CallError::Trap { .. } => self.traps.inc(),
            CallError::Timeout { .. } => self.timeouts.inc(),
            CallError::Unavailable { .. } => self.unavailable.inc(),
            CallError::Misbehaved { .. } => self.misbehaved.inc(),
        };
    }
}

/// One listener's connection series. [`ConnectionMetrics::opened`] returns a guard that keeps
/// the connection counted as open until it drops.
#[derive(Clone)]
pub struct ConnectionMetrics {
    open: Gauge,
    accepted: Counter,
}

impl std::fmt::Debug for ConnectionMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionMetrics").finish_non_exhaustive()
    }
}

impl ConnectionMetrics {
    /// Counts a new connection; it is open until the guard drops.
    pub fn opened(&self) -> OpenConnection {
        self.accepted.inc();
        self.open.inc();
        OpenConnection(self.open.clone())
    }
}

/// A connection counted as open.
#[derive(Debug)]
pub struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_and_status() {
        let metrics = Arc::new(Metrics::new());
        let route = metrics.route(&Arc::from("serving-uci"));
        route.answered(200, Duration::from_millis(3));
        route.answered(200, Duration::from_millis(4));
        route.answered(401, Duration::from_micros(300));
        // A status the route keeps no counter at hand for.
        route.answered(418, Duration::from_micros(300));
        // The same route rebuilt (a reload) counts into the same series.
        let again = metrics.route(&Arc::from("serving-uci"));
        again.answered(200, Duration::from_millis(5));
        metrics.unrouted(404);
        assert_eq!(metrics.requests_total(), 6);
        assert_eq!(metrics.route_requests("serving-uci"), [0, 3, 0, 2, 0]);
        assert_eq!(metrics.route_requests(""), [0, 0, 0, 1, 0]);
        assert_eq!(metrics.route_requests("never"), [0; 5]);
        let text = metrics.encode();
        for (status, count) in [(200, 3), (401, 1), (418, 1)] {
            let line = format!(
                "wasmgate_requests_total{{route=\"serving-uci\",status=\"{status}\"}} {count}\n"
            );
            assert!(text.contains(&line), "{line} in {text}");
        }
        assert!(
            text.contains("wasmgate_request_duration_seconds_count{route=\"serving-uci\"} 5"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn plugin_failures_are_counted_by_kind() {
        let metrics = Metrics::new();
        let plugin = metrics.plugin(&Arc::from("r"), &Arc::from("key-auth"));
        plugin.call(Duration::from_micros(3));
        plugin.failed(&CallError::Timeout {
            plugin: Arc::from("key-auth"),
            timeout_ms: 100,
        });
        let text = metrics.encode();
        assert!(
            text.contains(
                "wasmgate_plugin_failures_total{route=\"r\",plugin=\"key-auth\",kind=\"timeout\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "wasmgate_plugin_failures_total{route=\"r\",plugin=\"key-auth\",kind=\"trap\"} 0"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "wasmgate_plugin_call_duration_seconds_count{route=\"r\",plugin=\"key-auth\"} 1"
            ),
            "{text}"
        );
    }

    #[test]
    fn open_connections_follow_their_guards() {
        let metrics = Metrics::new();
        let http = metrics.listener("http");
        let a = http.opened();
        let b = metrics.listener("https").opened();
        assert_eq!(metrics.open_connections(), 2);
        drop(a);
        assert_eq!(metrics.open_connections(), 1);
        drop(b);
        assert_eq!(metrics.open_connections(), 0);
        assert_eq!(metrics.connections_total(), 2);
    }
}
