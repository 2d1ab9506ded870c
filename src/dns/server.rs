//! The DNS server: listeners, the live catalog and reloads.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_server::Server;
use tokio::net::TcpListener;

use super::catalog::Catalog;
use super::metrics::DnsMetrics;
use super::respond::DEFAULT_MAX_UDP_PAYLOAD;
use super::steer::{FirstDatacenter, ZoneSteering};
use super::tcp::TcpHandler;
use crate::config::{ConfigError, ZoneSet, load_zone_dir};

/// Builds the steering of every zone of a freshly loaded set (in `ZoneSet::zones()` order).
pub type SteeringFactory =
    Arc<dyn Fn(&ZoneSet) -> Result<Vec<Arc<dyn ZoneSteering>>, ConfigError> + Send + Sync>;

/// Steering that answers each service with its first datacenter.
pub fn first_datacenter_steering() -> SteeringFactory {
    Arc::new(|set: &ZoneSet| {
        Ok(set
            .zones()
            .iter()
            .map(|z| Arc::new(FirstDatacenter::new(z)) as Arc<dyn ZoneSteering>)
            .collect())
    })
}

/// Listener settings.
#[derive(Debug, Clone)]
pub struct DnsOptions {
    /// Addresses to serve UDP and TCP on (port 0: pick one).
    pub listen: Vec<SocketAddr>,
    /// UDP worker threads (sockets) per address.
    pub udp_workers: usize,
    /// TCP connections idle longer than this are closed.
    pub tcp_idle: Duration,
    /// Largest UDP reply.
    pub max_udp: u16,
}

impl Default for DnsOptions {
    fn default() -> Self {
        DnsOptions {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            udp_workers: 1,
            tcp_idle: Duration::from_secs(10),
            max_udp: DEFAULT_MAX_UDP_PAYLOAD,
        }
    }
}

/// State shared by every listener.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) catalog: Arc<ArcSwap<Catalog>>,
    pub(crate) stopping: AtomicBool,
    pub(crate) max_udp: u16,
    pub(crate) metrics: DnsMetrics,
}

/// The zones being served and how to reload them.
pub struct Zones {
    source: PathBuf,
    steering: SteeringFactory,
    metrics: DnsMetrics,
    catalog: Arc<ArcSwap<Catalog>>,
    set: ArcSwap<ZoneSet>,
}

impl std::fmt::Debug for Zones {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zones")
            .field("source", &self.source)
            .finish()
    }
}

impl Zones {
    /// Loads every zone file of `source` (a directory or one file); fails on any error.
    pub fn load(
        source: &Path,
        steering: SteeringFactory,
        metrics: DnsMetrics,
    ) -> Result<Self, ConfigError> {
        let set = load_zone_dir(source)?;
        let catalog = Catalog::new(&set, steering(&set)?, Some(&metrics));
        Ok(Zones {
            source: source.to_path_buf(),
            steering,
            metrics,
            catalog: Arc::new(ArcSwap::from_pointee(catalog)),
            set: ArcSwap::from_pointee(set),
        })
    }

    /// Re-reads and re-validates every zone file, then swaps the new set in at once. On any
    /// error the old zones keep serving and the error is returned.
    pub fn reload(&self) -> Result<Arc<ZoneSet>, ConfigError> {
        Ok(self.publish(self.prepare()?))
    }

    /// The first half of a reload: reads, validates and compiles every zone file (and builds
    /// their steering) without serving them yet.
    pub fn prepare(&self) -> Result<Loaded, ConfigError> {
        let set = load_zone_dir(&self.source)?;
        let catalog = Catalog::new(&set, (self.steering)(&set)?, Some(&self.metrics));
        Ok(Loaded { set, catalog })
    }

    /// The second half: serves a prepared set, in one atomic swap.
    pub fn publish(&self, loaded: Loaded) -> Arc<ZoneSet> {
        let set = Arc::new(loaded.set);
        let old = self.set.swap(set.clone());
        for z in old.zones() {
            if !set.zones().iter().any(|n| n.origin == z.origin) {
                self.metrics.forget_zone(z.origin.as_str());
            }
        }
        self.catalog.store(Arc::new(loaded.catalog));
        set
    }

    /// The zone set being served.
    pub fn current(&self) -> Arc<ZoneSet> {
        self.set.load_full()
    }

    /// The compiled catalog being served.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.load_full()
    }
}

/// A zone set read and compiled, not yet served.
#[derive(Debug)]
pub struct Loaded {
    set: ZoneSet,
    catalog: Catalog,
}

impl Loaded {
    /// The zones.
    pub fn set(&self) -> &ZoneSet {
        &self.set
    }
}

/// A running DNS server.
pub struct DnsServer {
    shared: Arc<Shared>,
    /// Where UDP and TCP are served.
    pub local_addrs: Vec<SocketAddr>,
    udp_threads: Vec<JoinHandle<()>>,
    tcp: Server<TcpHandler>,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("local_addrs", &self.local_addrs)
            .finish()
    }
}

impl DnsServer {
    /// Binds every listen address (UDP and TCP on the same port) and starts serving.
    pub async fn start(zones: &Zones, options: &DnsOptions) -> std::io::Result<DnsServer> {
        let metrics = zones.metrics.clone();
        let shared = Arc::new(Shared {
            catalog: zones.catalog.clone(),
            stopping: AtomicBool::new(false),
            max_udp: options.max_udp,
            metrics,
        });
        let mut tcp = Server::new(TcpHandler {
            shared: shared.clone(),
        });
        let mut local_addrs = Vec::new();
        let mut udp_threads = Vec::new();
        for addr in &options.listen {
            // Bind TCP first on the requested port; UDP then takes the same port. With port 0
            // the kernel picks a TCP port that some other socket may hold for UDP: pick again.
            let mut tries = 0;
            let (listener, port_addr) = loop {
                let listener = bind_tcp(*addr)?;
                let port_addr = listener.local_addr()?;
                match super::udp::start(port_addr, options.udp_workers.max(1), shared.clone()) {
                    Ok((udp_addr, threads)) => {
                        debug_assert_eq!(udp_addr, port_addr);
                        udp_threads.extend(threads);
                        break (listener, port_addr);
                    }
                    Err(e)
                        if addr.port() == 0
                            && e.kind() == std::io::ErrorKind::AddrInUse
                            && tries < 16 =>
                    {
                        tries += 1;
                    }
                    Err(e) => return Err(e),
                }
            };
            tcp.register_listener(listener, options.tcp_idle, 65535);
            local_addrs.push(port_addr);
        }
        Ok(DnsServer {
            shared,
            local_addrs,
            udp_threads,
            tcp,
        })
    }

    /// Stops every listener and waits for the workers.
    pub async fn shutdown(mut self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        let _ = self.tcp.shutdown_gracefully().await;
        let threads = std::mem::take(&mut self.udp_threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    TcpListener::from_std(s.into())
}
