//! The relay of one L4 connection: both directions at once, each end's FIN passed on as a
//! half-close (`shutdown(Write)` towards the other end) while the other direction keeps
//! flowing, and an idle timer that closes a connection on which no byte moved for a whole
//! `idle_timeout`.
//!
//! The copy is tokio's `copy_bidirectional` (which does the half-close dance) over streams that
//! count the bytes they move, or, when `splice = true` on Linux, the zero-copy relay of
//! `splice.rs`. One timer per connection watches the count: it ticks every quarter of the
//! timeout, so a connection is closed between 1 and 1.25 timeouts after its last byte.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Per-direction buffer of the copying relay (HAProxy's and nginx's default buffer size).
const BUFFER: usize = 16 * 1024;

/// How a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Both ends closed their side.
    Done,
    /// No byte moved for the idle timeout.
    Idle,
    /// A socket error (a reset, mostly).
    Error,
}

/// Totals of one relay.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Relayed {
    /// Client → server bytes.
    pub(crate) up: u64,
    /// Server → client bytes.
    pub(crate) down: u64,
    pub(crate) end: End,
}

/// Relays until both sides closed, an error, or `idle` without traffic.
pub(crate) async fn relay(
    client: TcpStream,
    server: TcpStream,
    idle: Duration,
    splice: bool,
) -> Relayed {
    let up = Arc::new(AtomicU64::new(0));
    let down = Arc::new(AtomicU64::new(0));
    let result = {
        let copy = copy(client, server, &up, &down, splice);
        tokio::pin!(copy);
        tokio::select! {
            biased;
            r = &mut copy => Some(r),
            _ = idle_watch(&up, &down, idle) => None,
        }
    };
    let end = match result {
        Some(Ok(())) => End::Done,
        Some(Err(e)) => {
            tracing::debug!(error = %e, "relay ended with an error");
            End::Error
        }
        None => End::Idle,
    };
    Relayed {
        up: up.load(Ordering::Relaxed),
        down: down.load(Ordering::Relaxed),
        end,
    }
}

async fn copy(
    client: TcpStream,
    server: TcpStream,
    up: &Arc<AtomicU64>,
    down: &Arc<AtomicU64>,
    splice: bool,
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if splice {
        return super::splice::relay(&client, &server, up, down).await;
    }
    #[cfg(not(target_os = "linux"))]
    let _ = splice;
    // Each stream counts what is read from it: client reads are bytes going up.
    let mut c = Counted {
        inner: client,
        read: Arc::clone(up),
    };
    let mut s = Counted {
        inner: server,
        read: Arc::clone(down),
    };
    tokio::io::copy_bidirectional_with_sizes(&mut c, &mut s, BUFFER, BUFFER)
        .await
        .map(|_| ())
}

/// Completes when neither counter moved for `idle` (checked every quarter of it).
async fn idle_watch(up: &AtomicU64, down: &AtomicU64, idle: Duration) {
    let step = (idle / 4).max(Duration::from_millis(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + step, step);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let total = || up.load(Ordering::Relaxed) + down.load(Ordering::Relaxed);
    let mut last = total();
    let mut quiet = Duration::ZERO;
    loop {
        tick.tick().await;
        let now = total();
        if now != last {
            last = now;
            quiet = Duration::ZERO;
        } else {
            quiet += step;
            if quiet >= idle {
                return;
            }
        }
    }
}

/// A stream that adds the bytes read from it to a shared counter.
struct Counted {
    inner: TcpStream,
    read: Arc<AtomicU64>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.read.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_watch_fires_after_a_quiet_timeout_and_not_before() {
        let up = AtomicU64::new(0);
        let down = AtomicU64::new(0);
        let start = tokio::time::Instant::now();
        idle_watch(&up, &down, Duration::from_secs(8)).await;
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(8) && waited <= Duration::from_secs(10),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn traffic_restarts_the_idle_clock() {
        let up = Arc::new(AtomicU64::new(0));
        let down = AtomicU64::new(0);
        let u = Arc::clone(&up);
        // Traffic every 3 s for 30 s: the 8 s timeout never fires meanwhile.
        tokio::spawn(async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_secs(3)).await;
                u.fetch_add(1, Ordering::Relaxed);
            }
        });
        let start = tokio::time::Instant::now();
        idle_watch(&up, &down, Duration::from_secs(8)).await;
        let waited = start.elapsed();
        assert!(waited >= Duration::from_secs(38), "{waited:?}");
        assert!(waited <= Duration::from_secs(42), "{waited:?}");
    }
}
