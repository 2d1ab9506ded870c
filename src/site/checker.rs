//! Active health checks: one task per server, TCP connect or HTTP GET with expected status and
//! optional body match, fed through the rise/fall machine. A failed check is logged with its
//! reason; a verdict change is logged and swaps the pool's selector.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use std::sync::atomic::Ordering;

use super::backend::{Backend, ServerState};
use super::pool::Pool;
use super::risefall::RiseFall;
use crate::config::site::{CheckConfig, CheckKind};

/// Most of a check response body read for the body match.
const MAX_CHECK_BODY: usize = 64 * 1024;

/// Checks server `b` of `pool` forever (the pool aborts the task when the server leaves or
/// the site stops). A server in maintenance is not checked.
pub(crate) async fn run(pool: Arc<Pool>, b: Arc<Backend>, cfg: CheckConfig) {
    let up = b.active_up.load(Ordering::Relaxed);
    let mut state = if b.checked.load(Ordering::Relaxed) {
        RiseFall::resumed(up, cfg.rise, cfg.fall)
    } else {
        RiseFall::new(up, cfg.rise, cfg.fall)
    };
    let mut ticker = tokio::time::interval(cfg.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if b.state() == ServerState::Maintenance {
            continue;
        }
        b.checked.store(true, Ordering::Relaxed);
        let result =
            match tokio::time::timeout(cfg.timeout, check_once(b.cfg.address, &cfg.kind)).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {:?}", cfg.timeout)),
            };
        if let Err(reason) = &result {
            tracing::debug!(pool = %pool.cfg.name, server = %b.cfg.id, %reason, "health check failed");
        }
        if let Some(up) = state.observe(result.is_ok()) {
            match &result {
                Ok(()) => tracing::info!(pool = %pool.cfg.name, server = %b.cfg.id, "server up"),
                Err(reason) => {
                    tracing::warn!(pool = %pool.cfg.name, server = %b.cfg.id, %reason, "server down")
                }
            }
            pool.set_active(&b, up);
        }
    }
}

/// One check; `Err` carries the reason.
pub(crate) async fn check_once(addr: SocketAddr, kind: &CheckKind) -> Result<(), String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let CheckKind::Http {
        path,
        host,
        expect_status,
        body,
    } = kind
    else {
        return Ok(());
    };
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let conn = tokio::spawn(conn);
    let host = host.clone().unwrap_or_else(|| addr.to_string());
    let req = Request::get(path.as_str())
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, "meridian-check")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("bad request: {e}"))?;
    let resp = tx
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    let result = if status != *expect_status {
        Err(format!("status {status}, expected {expect_status}"))
    } else if let Some(needle) = body {
        let bytes = Limited::new(resp.into_body(), MAX_CHECK_BODY)
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        if String::from_utf8_lossy(&bytes).contains(needle.as_str()) {
            Ok(())
        } else {
            Err(format!("body does not contain {needle:?}"))
        }
    } else {
        Ok(())
    };
    conn.abort();
    result
}
