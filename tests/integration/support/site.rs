//! Runs a site from TOML text on loopback sockets, and a small HTTP client.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use meridian::config::site::{load_site_file, parse_site};
use meridian::site::{CertReloader, Listeners, ReloadHandle, Site, SiteError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

#[derive(Debug)]
pub struct TestSite {
    pub addr: SocketAddr,
    /// Every client-facing listener, in order (`addr` is the first).
    pub addrs: Vec<SocketAddr>,
    pub admin: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    pub task: Option<JoinHandle<Result<(), SiteError>>>,
    pub client: HttpClient,
    /// Reloads the TLS listeners' certificates, as SIGHUP does.
    pub certs: CertReloader,
    pub reload: ReloadHandle,
}

impl TestSite {
    /// Starts a site from TOML; every `bind` should be `127.0.0.1:0`.
    pub async fn start(toml: &str) -> TestSite {
        let cfg = parse_site(Path::new("test-site.toml"), toml).unwrap_or_else(|e| panic!("{e}"));
        Self::start_cfg(cfg).await
    }

    /// Starts a site from a file (which reloads re-read).
    pub async fn start_file(path: &Path) -> TestSite {
        let cfg = load_site_file(path).unwrap_or_else(|e| panic!("{e}"));
        Self::start_cfg(cfg).await
    }

    async fn start_cfg(cfg: meridian::config::site::SiteConfig) -> TestSite {
        let listeners = Listeners::bind(&cfg).await.expect("bind");
        let addrs: Vec<SocketAddr> = listeners
            .http
            .iter()
            .map(|l| l.local_addr().expect("addr"))
            .collect();
        let addr = addrs[0];
        let admin = listeners
            .admin
            .as_ref()
            .map(|a| a.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let site = Site::new(cfg);
        let certs = site.cert_reloader();
        let reload = site.reload_handle();
        let task = tokio::spawn(site.run(listeners, async {
            let _ = rx.await;
        }));
        TestSite {
            addr,
            addrs,
            admin,
            stop: Some(tx),
            task: Some(task),
            client: client(),
            certs,
            reload,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!(
            "http://{}{}",
            self.admin.expect("site has an admin listener"),
            path
        )
    }

    /// GET through the site: (status, x-backend).
    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let (s, h, _) = request(
            &self.client,
            Request::get(self.url(path))
                .body(Full::default())
                .expect("req"),
        )
        .await;
        (
            s,
            h.get("x-backend")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
        )
    }

    /// The admin `/status` JSON.
    pub async fn status(&self) -> serde_json::Value {
        let (_, _, body) = get(&self.client, &self.admin_url("/status")).await;
        serde_json::from_slice(&body).expect("status json")
    }

    /// State of one server in `/status`.
    pub async fn server(&self, id: &str) -> serde_json::Value {
        let s = self.status().await;
        s["pools"][0]["servers"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["id"] == id).cloned())
            .unwrap_or_else(|| panic!("no server {id} in {s}"))
    }

    /// Starts the shutdown (as SIGTERM does); `join` waits for the end.
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    pub async fn join(&mut self) -> Result<(), SiteError> {
        self.shutdown();
        let task = self.task.take().expect("not joined yet");
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("site stops")
            .expect("join")
    }
}

impl Drop for TestSite {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends a request and reads the whole answer.
pub async fn request(
    c: &HttpClient,
    req: Request<Full<Bytes>>,
) -> (StatusCode, hyper::HeaderMap, Bytes) {
    let resp = tokio::time::timeout(Duration::from_secs(10), c.request(req))
        .await
        .expect("answer within 10 s")
        .expect("request");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (parts.status, parts.headers, body)
}

pub async fn get(c: &HttpClient, url: &str) -> (StatusCode, hyper::HeaderMap, Bytes) {
    request(c, Request::get(url).body(Full::default()).expect("req")).await
}

/// Polls `f` every 10 ms until it returns true, for at most `secs` seconds.
pub async fn poll_until<F, Fut>(secs: u64, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if f().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
