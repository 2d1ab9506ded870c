//! Raw `[pools.NAME]` → validated [`PoolConfig`], with every default.

use std::collections::HashSet;
use std::time::Duration;

use hyper::header::HeaderName;
use toml::Spanned;

use super::model::*;
use super::raw::{RawBreaker, RawCheck, RawPassive, RawPool, RawRetry, RawServer, RawTimeouts};
use super::validate::{addr, duration, float, int};
use crate::config::error::Collector;

pub(crate) fn build(
    c: &mut Collector<'_>,
    name: &Spanned<String>,
    raw: &Spanned<RawPool>,
) -> Option<PoolConfig> {
    let r = raw.get_ref();
    let item = format!("pool {:?}", name.get_ref());
    let key = |k: &str| format!("{item} {k}");
    if name.get_ref().is_empty() {
        c.err(&name.span(), &item, "pool names must not be empty");
    }
    let algorithm = algorithm(c, r, &item);
    let hash_key = hash_key(c, r, &item, algorithm);
    let bounded_load = r
        .bounded_load
        .as_ref()
        .map(|b| float(c, Some(b), &key("bounded_load"), 1.0..=100.0, 1.25));
    let servers = servers(c, r, &raw.span(), &item);
    let discovery = r
        .discovery
        .as_ref()
        .map(|d| super::discovery::build(c, d, &key("discovery")));
    let check = r.check.as_ref().map(|ch| check(c, ch, &key("check")));
    let initial_check_up = check.as_ref().map(|ch| ch.initial_up);
    let servers = servers
        .into_iter()
        .map(|mut s| {
            if s.initial_up.is_none() {
                s.initial_up = Some(initial_check_up.unwrap_or(true));
            }
            s
        })
        .collect();
    Some(PoolConfig {
        name: name.get_ref().clone(),
        algorithm,
        hash_key,
        bounded_load,
        servers,
        max_requests: int(
            c,
            r.max_requests.as_ref(),
            &key("max_requests"),
            0..=10_000_000,
            0,
        ) as usize,
        max_pending: int(
            c,
            r.max_pending.as_ref(),
            &key("max_pending"),
            0..=10_000_000,
            0,
        ) as usize,
        queue_timeout: duration(
            c,
            r.queue_timeout.as_ref(),
            &key("queue_timeout"),
            Duration::from_secs(1),
        ),
        panic_threshold: float(
            c,
            r.panic_threshold.as_ref(),
            &key("panic_threshold"),
            0.0..=1.0,
            0.0,
        ),
        // Servers found by discovery come and go all day: they ramp up by default.
        slow_start: duration(
            c,
            r.slow_start.as_ref(),
            &key("slow_start"),
            super::discovery::default_slow_start(discovery.as_ref()),
        ),
        latency_decay: duration(
            c,
            r.latency_decay.as_ref(),
            &key("latency_decay"),
            Duration::from_secs(10),
        ),
        timeouts: timeouts(c, r.timeouts.as_ref(), &key("timeouts")),
        check,
        passive: passive(c, r.passive.as_ref(), &key("passive")),
        breaker: breaker(c, r.breaker.as_ref(), &key("breaker")),
        retry: retry(c, r.retry.as_ref(), &key("retry")),
        affinity: r
            .affinity
            .as_ref()
            .map(|a| super::l7::affinity(c, a, &item)),
        // Needs the site file's path: filled in by `validate`.
        tls: None,
        discovery,
    })
}

fn algorithm(c: &mut Collector<'_>, r: &RawPool, item: &str) -> Algorithm {
    let Some(a) = &r.algorithm else {
        return Algorithm::RoundRobin;
    };
    match Algorithm::ALL.iter().find(|x| x.as_str() == a.get_ref()) {
        Some(x) => *x,
        None => {
            let known: Vec<&str> = Algorithm::ALL.iter().map(|x| x.as_str()).collect();
            c.err(
                &a.span(),
                &format!("{item} algorithm"),
                format!("unknown algorithm (known: {})", known.join(", ")),
            );
            Algorithm::RoundRobin
        }
    }
}

fn hash_key(c: &mut Collector<'_>, r: &RawPool, item: &str, alg: Algorithm) -> HashKey {
    let Some(k) = &r.hash_key else {
        return HashKey::ClientIp;
    };
    let item = format!("{item} hash_key");
    if alg != Algorithm::ConsistentHash {
        c.err(
            &k.span(),
            &item,
            "hash_key only applies to algorithm = \"consistent-hash\"",
        );
    }
    match k.get_ref().as_str() {
        "client-ip" => HashKey::ClientIp,
        "path" => HashKey::Path,
        other => match other
            .strip_prefix("header:")
            .map(|h| HeaderName::from_bytes(h.trim().as_bytes()))
        {
            Some(Ok(h)) => HashKey::Header(h),
            _ => {
                c.err(
                    &k.span(),
                    &item,
                    "expected \"client-ip\", \"path\" or \"header:NAME\"",
                );
                HashKey::ClientIp
            }
        },
    }
}

fn servers(
    c: &mut Collector<'_>,
    r: &RawPool,
    span: &std::ops::Range<usize>,
    item: &str,
) -> Vec<ServerConfig> {
    let Some(list) = &r.servers else {
        if r.discovery.is_none() {
            c.err(span, item, "a pool needs `servers` or `discovery`");
        }
        return Vec::new();
    };
    if list.get_ref().is_empty() && r.discovery.is_none() {
        c.err(&list.span(), item, "a pool needs at least one server");
    }
    server_list(c, list.get_ref(), item)
}

/// Servers as written in a pool (or a discovery file): each validated, ids unique.
pub(crate) fn server_list(
    c: &mut Collector<'_>,
    list: &[Spanned<RawServer>],
    item: &str,
) -> Vec<ServerConfig> {
    let mut out: Vec<ServerConfig> = Vec::new();
    let mut ids = HashSet::new();
    for s in list {
        let Some(server) = server(c, s, item) else {
            continue;
        };
        if !ids.insert(server.id.clone()) {
            c.err(&s.span(), item, format!("duplicate server {:?}", server.id));
            continue;
        }
        out.push(server);
    }
    out
}

fn server(c: &mut Collector<'_>, s: &Spanned<RawServer>, pool: &str) -> Option<ServerConfig> {
    match s.get_ref() {
        RawServer::Address(a) => {
            let spanned = Spanned::new(s.span(), a.clone());
            let address = addr(c, &spanned, &format!("{pool} server"))?;
            Some(ServerConfig {
                address,
                id: a.clone(),
                weight: 1,
                max_connections: 1024,
                initial_up: None,
                drain: false,
            })
        }
        RawServer::Table(t) => {
            let item = format!("{pool} server {:?}", t.address.get_ref());
            let address = addr(c, &t.address, &item);
            let initial_up = match &t.initial {
                None => None,
                Some(i) => match i.get_ref().as_str() {
                    "up" => Some(true),
                    "down" => Some(false),
                    _ => {
                        c.err(
                            &i.span(),
                            &format!("{item} initial"),
                            "expected \"up\" or \"down\"",
                        );
                        None
                    }
                },
            };
            Some(ServerConfig {
                address: address?,
                id: t
                    .id
                    .as_ref()
                    .map_or_else(|| t.address.get_ref().clone(), |i| i.get_ref().clone()),
                weight: int(c, t.weight.as_ref(), &format!("{item} weight"), 0..=1000, 1) as u32,
                max_connections: int(
                    c,
                    t.max_connections.as_ref(),
                    &format!("{item} max_connections"),
                    1..=1_000_000,
                    1024,
                ) as u32,
                initial_up,
                drain: t.drain.unwrap_or(false),
            })
        }
    }
}

fn timeouts(c: &mut Collector<'_>, t: Option<&Spanned<RawTimeouts>>, item: &str) -> Timeouts {
    let t = t.map(|t| t.get_ref());
    Timeouts {
        connect: duration(
            c,
            t.and_then(|t| t.connect.as_ref()),
            &format!("{item}.connect"),
            Duration::from_secs(1),
        ),
        response: duration(
            c,
            t.and_then(|t| t.response.as_ref()),
            &format!("{item}.response"),
            Duration::from_secs(30),
        ),
        idle: duration(
            c,
            t.and_then(|t| t.idle.as_ref()),
            &format!("{item}.idle"),
            Duration::from_secs(60),
        ),
    }
}

fn check(c: &mut Collector<'_>, ch: &Spanned<RawCheck>, item: &str) -> CheckConfig {
    let r = ch.get_ref();
    let kind = match (&r.http, r.tcp) {
        (Some(path), None | Some(false)) => {
            if !path.get_ref().starts_with('/') {
                c.err(
                    &path.span(),
                    &format!("{item}.http"),
                    "the check path must start with '/'",
                );
            }
            CheckKind::Http {
                path: path.get_ref().clone(),
                host: r.host.as_ref().map(|h| h.get_ref().clone()),
                expect_status: int(
                    c,
                    r.expect_status.as_ref(),
                    &format!("{item}.expect_status"),
                    100..=599,
                    200,
                ) as u16,
                body: r.body.as_ref().map(|b| b.get_ref().clone()),
            }
        }
        (None, Some(true)) => CheckKind::Tcp,
        (Some(_), Some(true)) => {
            c.err(
                &ch.span(),
                item,
                "set either `http = \"/path\"` or `tcp = true`, not both",
            );
            CheckKind::Tcp
        }
        (None, _) => {
            c.err(
                &ch.span(),
                item,
                "a check needs `http = \"/path\"` or `tcp = true`",
            );
            CheckKind::Tcp
        }
    };
    if matches!(kind, CheckKind::Tcp)
        && (r.expect_status.is_some() || r.body.is_some() || r.host.is_some())
    {
        c.err(
            &ch.span(),
            item,
            "expect_status, body and host apply to HTTP checks only",
        );
    }
    let interval = duration(
        c,
        r.interval.as_ref(),
        &format!("{item}.interval"),
        Duration::from_secs(2),
    );
    let timeout = duration(
        c,
        r.timeout.as_ref(),
        &format!("{item}.timeout"),
        Duration::from_secs(1).min(interval),
    );
    if interval.is_zero()
        && let Some(i) = &r.interval
    {
        c.err(
            &i.span(),
            &format!("{item}.interval"),
            "must be more than 0s",
        );
    }
    if timeout > interval {
        let span = r.timeout.as_ref().map_or(ch.span(), |t| t.span());
        c.err(
            &span,
            &format!("{item}.timeout"),
            "must not be longer than the interval",
        );
    }
    let initial_up = match &r.initial {
        None => false,
        Some(i) => match i.get_ref().as_str() {
            "up" => true,
            "down" => false,
            _ => {
                c.err(
                    &i.span(),
                    &format!("{item}.initial"),
                    "expected \"up\" or \"down\"",
                );
                false
            }
        },
    };
    CheckConfig {
        kind,
        interval,
        timeout,
        rise: int(c, r.rise.as_ref(), &format!("{item}.rise"), 1..=100, 2) as u32,
        fall: int(c, r.fall.as_ref(), &format!("{item}.fall"), 1..=100, 3) as u32,
        initial_up,
    }
}

fn passive(c: &mut Collector<'_>, p: Option<&Spanned<RawPassive>>, item: &str) -> PassiveConfig {
    let p = p.map(|p| p.get_ref());
    let base = duration(
        c,
        p.and_then(|p| p.base_ejection.as_ref()),
        &format!("{item}.base_ejection"),
        Duration::from_secs(30),
    );
    PassiveConfig {
        consecutive_failures: int(
            c,
            p.and_then(|p| p.consecutive_failures.as_ref()),
            &format!("{item}.consecutive_failures"),
            0..=1000,
            5,
        ) as u32,
        base_ejection: base,
        max_ejection: duration(
            c,
            p.and_then(|p| p.max_ejection.as_ref()),
            &format!("{item}.max_ejection"),
            Duration::from_secs(300),
        )
        .max(base),
        max_ejection_percent: int(
            c,
            p.and_then(|p| p.max_ejection_percent.as_ref()),
            &format!("{item}.max_ejection_percent"),
            0..=100,
            50,
        ) as u32,
    }
}

fn breaker(c: &mut Collector<'_>, b: Option<&Spanned<RawBreaker>>, item: &str) -> BreakerConfig {
    let b = b.map(|b| b.get_ref());
    BreakerConfig {
        failures: int(
            c,
            b.and_then(|b| b.failures.as_ref()),
            &format!("{item}.failures"),
            0..=1000,
            5,
        ) as u32,
        cooldown: duration(
            c,
            b.and_then(|b| b.cooldown.as_ref()),
            &format!("{item}.cooldown"),
            Duration::from_secs(30),
        ),
        successes: int(
            c,
            b.and_then(|b| b.successes.as_ref()),
            &format!("{item}.successes"),
            1..=1000,
            2,
        ) as u32,
        half_open_requests: int(
            c,
            b.and_then(|b| b.half_open_requests.as_ref()),
            &format!("{item}.half_open_requests"),
            1..=1000,
            1,
        ) as u32,
    }
}

fn retry(c: &mut Collector<'_>, r: Option<&Spanned<RawRetry>>, item: &str) -> RetryConfig {
    let raw = r.map(|r| r.get_ref());
    let (mut on_5xx, mut on_timeout) = (true, true);
    if let Some(on) = raw.and_then(|r| r.on.as_ref()) {
        on_5xx = false;
        on_timeout = false;
        for o in on {
            match o.get_ref().as_str() {
                "5xx" => on_5xx = true,
                "timeout" => on_timeout = true,
                "connect" => {}
                _ => c.err(
                    &o.span(),
                    &format!("{item}.on"),
                    "expected \"connect\", \"5xx\" or \"timeout\"",
                ),
            }
        }
    }
    RetryConfig {
        attempts: int(
            c,
            raw.and_then(|r| r.attempts.as_ref()),
            &format!("{item}.attempts"),
            0..=10,
            2,
        ) as u32,
        on_5xx,
        on_timeout,
        budget: float(
            c,
            raw.and_then(|r| r.budget.as_ref()),
            &format!("{item}.budget"),
            0.0..=1.0,
            0.2,
        ),
        min_retries: int(
            c,
            raw.and_then(|r| r.min_retries.as_ref()),
            &format!("{item}.min_retries"),
            0..=100_000,
            3,
        ) as u32,
        body_cap: int(
            c,
            raw.and_then(|r| r.body_cap.as_ref()),
            &format!("{item}.body_cap"),
            0..=64 << 20,
            64 << 10,
        ) as usize,
    }
}
