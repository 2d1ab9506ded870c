//! The validated site configuration: what `meridian site` runs. Every value is checked and every
//! default filled in; the proxy never re-validates.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hyper::header::HeaderName;

/// A whole site file.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// The file it came from.
    pub file: PathBuf,
    /// Worker threads; `None` leaves it to `TOKIO_WORKER_THREADS` or the core count.
    pub threads: Option<usize>,
    /// The admin listener (`/health`, `/metrics`, `/status`), if any.
    pub admin: Option<AdminConfig>,
    /// What SIGTERM does.
    pub shutdown: ShutdownConfig,
    /// Client-facing listeners.
    pub listeners: Vec<ListenerConfig>,
    /// Backend pools, sorted by name.
    pub pools: Vec<PoolConfig>,
}

impl SiteConfig {
    /// The index of a pool by name.
    pub fn pool_index(&self, name: &str) -> Option<usize> {
        self.pools.iter().position(|p| p.name == name)
    }
}

/// The admin listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Who may call the runtime API.
    pub api: super::api::ApiConfig,
    /// The status page recommends looking at a pool whose servers answer slower than this on
    /// average.
    pub slow_latency: Duration,
}

/// Graceful shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownConfig {
    /// How long `/health` says `draining` while the listeners still accept, so that the DNS side
    /// steers new clients away before the doors close.
    pub delay: Duration,
    /// Longest wait for in-flight requests after the listeners close.
    pub grace: Duration,
}

/// Protocol spoken by a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 and, when enabled, HTTP/2 with prior knowledge (h2c).
    Http,
    /// Plain TCP (L4): each connection is relayed to one server.
    Tcp,
}

/// The forwarding headers a listener adds (all by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardedHeaders {
    /// `X-Forwarded-For` (the client address appended).
    pub x_forwarded_for: bool,
    /// `X-Forwarded-Proto`.
    pub x_forwarded_proto: bool,
    /// `X-Forwarded-Host`.
    pub x_forwarded_host: bool,
    /// `Forwarded` (RFC 7239).
    pub forwarded: bool,
}

impl ForwardedHeaders {
    /// Every one of them (the default).
    pub const ALL: ForwardedHeaders = ForwardedHeaders {
        x_forwarded_for: true,
        x_forwarded_proto: true,
        x_forwarded_host: true,
        forwarded: true,
    };
    /// None of them.
    pub const NONE: ForwardedHeaders = ForwardedHeaders {
        x_forwarded_for: false,
        x_forwarded_proto: false,
        x_forwarded_host: false,
        forwarded: false,
    };
}

/// A client-facing listener.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerConfig {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Protocol.
    pub protocol: Protocol,
    /// Index into [`SiteConfig::pools`].
    pub pool: usize,
    /// Largest request head (request line + headers); more gets 431.
    pub max_header_bytes: usize,
    /// Longest wait for a complete request head, also on idle keep-alive connections.
    pub header_timeout: Duration,
    /// Accept HTTP/2 prior knowledge (h2c) beside HTTP/1.1.
    pub h2: bool,
    /// Largest request body with a declared length; more gets 413. 0 = no limit.
    pub max_body_bytes: u64,
    /// Which forwarding headers are added to proxied requests.
    pub forwarded: ForwardedHeaders,
    /// Assign an `X-Request-Id` to requests that come without one.
    pub request_id: bool,
    /// TLS termination, if any.
    pub tls: Option<super::TlsConfig>,
    /// Routing, rate limit, compression and cache; `None` when none is configured. With
    /// routes, `pool` is the default pool if the listener names one (see
    /// [`super::HttpFeatures::default_pool`]).
    pub features: Option<Box<super::HttpFeatures>>,
    /// Options of `tcp` listeners (defaults for `http` ones).
    pub l4: super::l4::L4Options,
}

impl ListenerConfig {
    /// Every pool the listener sends to (its pool, and its routes' and splits' pools), as
    /// indexes into [`SiteConfig::pools`]; sorted, no duplicates.
    pub fn pools_used(&self) -> Vec<usize> {
        let mut out = vec![self.pool];
        if let Some(f) = &self.features {
            out.extend(f.default_pool);
            for r in &f.routes {
                match &r.action {
                    super::RouteAction::Pool(p) => out.push(*p),
                    super::RouteAction::Split(s) => out.extend(s.variants.iter().map(|v| v.0)),
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// How a pool picks a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Each server in turn, ignoring weights.
    RoundRobin,
    /// nginx's smooth weighted round robin.
    WeightedRoundRobin,
    /// Fewest in-flight requests per unit of weight.
    LeastConnections,
    /// Peak-EWMA latency × (in-flight + 1), power of two choices.
    LeastTime,
    /// Consistent hash (Maglev) of the client address.
    IpHash,
    /// Consistent hash (Maglev) of the pool's `hash_key`.
    ConsistentHash,
    /// Weighted random.
    Random,
}

impl Algorithm {
    /// The name used in site files.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "round-robin",
            Algorithm::WeightedRoundRobin => "weighted-round-robin",
            Algorithm::LeastConnections => "least-connections",
            Algorithm::LeastTime => "least-time",
            Algorithm::IpHash => "ip-hash",
            Algorithm::ConsistentHash => "consistent-hash",
            Algorithm::Random => "random",
        }
    }

    /// Every algorithm, for error messages and docs.
    pub const ALL: [Algorithm; 7] = [
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::LeastConnections,
        Algorithm::LeastTime,
        Algorithm::IpHash,
        Algorithm::ConsistentHash,
        Algorithm::Random,
    ];
}

/// What the consistent hash of a request is computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// The client's IP address.
    ClientIp,
    /// A request header's value (the client address when the header is missing).
    Header(HeaderName),
    /// The request path (without the query).
    Path,
}

/// A backend pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// Name, from `[pools.NAME]`.
    pub name: String,
    /// Selection algorithm.
    pub algorithm: Algorithm,
    /// Hash input for `consistent-hash` (and `ClientIp` for `ip-hash`).
    pub hash_key: HashKey,
    /// Bounded-load factor c for the hashing algorithms (cap = ⌈c × average⌉), if any.
    pub bounded_load: Option<f64>,
    /// The servers.
    pub servers: Vec<ServerConfig>,
    /// In-flight requests for the whole pool; more get 503 at once. 0 = no limit.
    pub max_requests: usize,
    /// Requests allowed to wait for a server at its `max_connections`; more get 503 at once.
    pub max_pending: usize,
    /// Longest wait of a pending request before it gets 503.
    pub queue_timeout: Duration,
    /// When fewer than this share of servers are healthy, balance over all of them.
    pub panic_threshold: f64,
    /// Weight ramp for a server that comes (back) up; zero = none.
    pub slow_start: Duration,
    /// Decay time of the least-time latency estimate.
    pub latency_decay: Duration,
    /// Timeouts towards the backends.
    pub timeouts: Timeouts,
    /// Active health check, if any.
    pub check: Option<CheckConfig>,
    /// Passive outlier detection.
    pub passive: PassiveConfig,
    /// Per-server circuit breaker.
    pub breaker: BreakerConfig,
    /// Retries.
    pub retry: RetryConfig,
    /// Cookie-based session affinity, if any.
    pub affinity: Option<super::AffinityConfig>,
    /// TLS towards the servers, if any.
    pub tls: Option<super::BackendTlsConfig>,
    /// Where servers are found at run time (beside `servers`), if anywhere.
    pub discovery: Option<super::discovery::DiscoveryConfig>,
}

/// One backend server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Where it listens.
    pub address: SocketAddr,
    /// Stable identity for hashing and metrics (default: the address as written).
    pub id: String,
    /// Relative weight, 1..=1000.
    pub weight: u32,
    /// Most in-flight requests (= connections with HTTP/1.1) at once.
    pub max_connections: u32,
    /// Whether it is up before its first check (`None`: the pool's check decides).
    pub initial_up: Option<bool>,
    /// Drained from the start: takes no new requests.
    pub drain: bool,
}

/// Timeouts towards backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect.
    pub connect: Duration,
    /// From sending the request to the response head.
    pub response: Duration,
    /// How long an unused pooled connection is kept.
    pub idle: Duration,
}

/// What an active check does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// Succeeds when a TCP connection opens.
    Tcp,
    /// `GET path`; succeeds on the expected status and, if set, a body containing `body`.
    Http {
        /// Request path.
        path: String,
        /// Host header (default: the server's address).
        host: Option<String>,
        /// Expected status.
        expect_status: u16,
        /// Substring the body must contain.
        body: Option<String>,
    },
}

/// Active health check of every server of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConfig {
    /// TCP or HTTP.
    pub kind: CheckKind,
    /// Time between checks.
    pub interval: Duration,
    /// Time allowed for one check.
    pub timeout: Duration,
    /// Consecutive successes to go up.
    pub rise: u32,
    /// Consecutive failures to go down.
    pub fall: u32,
    /// State before the first check: `false` (default) = down until a check passes.
    pub initial_up: bool,
}

/// Passive outlier detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassiveConfig {
    /// Consecutive 5xx or connect failures that eject a server; 0 disables.
    pub consecutive_failures: u32,
    /// Ejection time, multiplied by the number of times the server was ejected.
    pub base_ejection: Duration,
    /// Longest ejection.
    pub max_ejection: Duration,
    /// Most servers ejected at once, as a percentage of the pool.
    pub max_ejection_percent: u32,
}

/// Per-server circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open it; 0 disables.
    pub failures: u32,
    /// Time open before letting trial requests through.
    pub cooldown: Duration,
    /// Successful trials that close it again.
    pub successes: u32,
    /// Trial requests allowed at once while half-open.
    pub half_open_requests: u32,
}

/// Retries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryConfig {
    /// Extra attempts after the first, each on a different server.
    pub attempts: u32,
    /// Retry idempotent requests that got a 5xx.
    pub on_5xx: bool,
    /// Retry idempotent requests whose response head timed out.
    pub on_timeout: bool,
    /// Retries in flight allowed as a share of active requests.
    pub budget: f64,
    /// Retries in flight always allowed, whatever the budget.
    pub min_retries: u32,
    /// Largest request body kept for replay; bigger bodies stream and are not retried after
    /// they started.
    pub body_cap: usize,
}
