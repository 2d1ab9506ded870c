//! What a reload changes: a pure diff of the old and new site configuration, so the rules are
//! tested without sockets.
//!
//! - A pool whose settings (all but its servers) are equal is kept as it is, and its servers
//!   are diffed by id: new ones are added, missing ones removed (they drain), changed ones are
//!   updated in place (weight, limit, drain) or replaced when their address changed. Servers
//!   whose entry did not change are not touched at all.
//! - A pool whose settings changed is replaced by a new pool that carries over its servers
//!   (same objects: connections, health, counters) except removed and re-addressed ones.
//! - Listeners are matched by their configured address (and order among equal ones): an equal
//!   listener whose pools (its own, its routes' and splits') are all kept keeps running (with
//!   its cache and rate-limit state); otherwise it restarts on the same socket, with fresh
//!   ones.

use std::collections::HashMap;

use crate::config::site::{ListenerConfig, PoolConfig, ServerConfig, SiteConfig};

/// Server changes of one pool.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ServerDiff {
    pub(crate) added: Vec<ServerConfig>,
    pub(crate) removed: Vec<String>,
    /// Same id and address, other settings.
    pub(crate) changed: Vec<ServerConfig>,
    /// Same id, new address: the old server drains, a new one takes its place.
    pub(crate) moved: Vec<ServerConfig>,
}

impl ServerDiff {
    pub(crate) fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.moved.is_empty()
    }
}

/// What happens to one pool of the new configuration.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PoolPlan {
    /// Same settings: the running pool stays, its servers change as the diff says.
    Keep(String, ServerDiff),
    /// New settings: a new pool carrying the running servers over.
    Replace(String, ServerDiff),
    /// A pool that did not exist.
    Add(String),
}

/// What happens to one listener of the new configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListenerPlan {
    /// Unchanged: old listener `i` runs on.
    Keep(usize),
    /// Old listener `i`'s socket is reused with new settings or a new pool.
    Restart(usize),
    /// A new address to bind.
    Bind,
}

/// The whole reload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub(crate) pools: Vec<PoolPlan>,
    pub(crate) dropped_pools: Vec<String>,
    pub(crate) listeners: Vec<ListenerPlan>,
    /// Old listeners that close.
    pub(crate) closed: Vec<usize>,
    /// Settings that only a restart applies.
    pub(crate) restart_needed: Vec<&'static str>,
}

/// Diffs two configurations.
pub(crate) fn plan(old: &SiteConfig, new: &SiteConfig) -> Plan {
    let pools: Vec<PoolPlan> = new
        .pools
        .iter()
        .map(|n| match old.pools.iter().find(|o| o.name == n.name) {
            None => PoolPlan::Add(n.name.clone()),
            Some(o) if same_settings(o, n) => PoolPlan::Keep(n.name.clone(), servers(o, n)),
            Some(o) => PoolPlan::Replace(n.name.clone(), servers(o, n)),
        })
        .collect();
    let dropped_pools = old
        .pools
        .iter()
        .filter(|o| !new.pools.iter().any(|n| n.name == o.name))
        .map(|o| o.name.clone())
        .collect();
    let kept_pool = |name: &str| {
        pools
            .iter()
            .any(|p| matches!(p, PoolPlan::Keep(n, _) if n == name))
    };
    let mut taken = vec![false; old.listeners.len()];
    let mut listeners = Vec::new();
    for l in &new.listeners {
        let found =
            (0..old.listeners.len()).find(|&i| !taken[i] && old.listeners[i].bind == l.bind);
        let p = match found {
            None => ListenerPlan::Bind,
            Some(i) => {
                taken[i] = true;
                let o = &old.listeners[i];
                // Every pool it sends to must be the same running pool, under the same index.
                let same_pools = o.pools_used() == l.pools_used()
                    && l.pools_used().iter().all(|&p| {
                        let name = &new.pools[p].name;
                        old.pools.get(p).is_some_and(|o| &o.name == name) && kept_pool(name)
                    });
                if same_listener(o, l) && same_pools {
                    ListenerPlan::Keep(i)
                } else {
                    ListenerPlan::Restart(i)
                }
            }
        };
        listeners.push(p);
    }
    let closed = (0..old.listeners.len()).filter(|&i| !taken[i]).collect();
    let mut restart_needed = Vec::new();
    if old.threads != new.threads {
        restart_needed.push("threads");
    }
    if old.admin.as_ref().map(|a| a.bind) != new.admin.as_ref().map(|a| a.bind) {
        restart_needed.push("admin.bind");
    }
    Plan {
        pools,
        dropped_pools,
        listeners,
        closed,
        restart_needed,
    }
}

fn same_settings(a: &PoolConfig, b: &PoolConfig) -> bool {
    let strip = |p: &PoolConfig| PoolConfig {
        servers: Vec::new(),
        ..p.clone()
    };
    strip(a) == strip(b)
}

fn same_listener(a: &ListenerConfig, b: &ListenerConfig) -> bool {
    ListenerConfig {
        pool: 0,
        ..a.clone()
    } == ListenerConfig {
        pool: 0,
        ..b.clone()
    }
}

fn servers(old: &PoolConfig, new: &PoolConfig) -> ServerDiff {
    let before: HashMap<&str, &ServerConfig> =
        old.servers.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut d = ServerDiff::default();
    for s in &new.servers {
        match before.get(s.id.as_str()) {
            None => d.added.push(s.clone()),
            Some(o) if *o == s => {}
            Some(o) if o.address != s.address => d.moved.push(s.clone()),
            Some(_) => d.changed.push(s.clone()),
        }
    }
    d.removed = old
        .servers
        .iter()
        .filter(|o| !new.servers.iter().any(|s| s.id == o.id))
        .map(|o| o.id.clone())
        .collect();
    d
}

impl Plan {
    /// One line per change, for the log and the API's answer.
    pub(crate) fn summary(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.pools {
            let (verb, name, d) = match p {
                PoolPlan::Add(n) => {
                    out.push(format!("pool {n:?} added"));
                    continue;
                }
                PoolPlan::Keep(n, d) => ("", n, d),
                PoolPlan::Replace(n, d) => ("settings changed; ", n, d),
            };
            if !verb.is_empty() || !d.is_empty() {
                let ids = |v: &[ServerConfig]| v.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
                out.push(format!(
                    "pool {name:?}: {verb}servers added {:?}, removed {:?}, changed {:?}, moved {:?}",
                    ids(&d.added),
                    d.removed,
                    ids(&d.changed),
                    ids(&d.moved)
                ));
            }
        }
        for n in &self.dropped_pools {
            out.push(format!("pool {n:?} removed"));
        }
        for (i, l) in self.listeners.iter().enumerate() {
            match l {
                ListenerPlan::Keep(_) => {}
                ListenerPlan::Restart(_) => out.push(format!("listener {i} reconfigured")),
                ListenerPlan::Bind => out.push(format!("listener {i} added")),
            }
        }
        for i in &self.closed {
            out.push(format!("old listener {i} closed"));
        }
        for k in &self.restart_needed {
            out.push(format!("{k} changed: applies after a restart"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::site::parse_site;

    fn cfg(pool: &str, servers: &str, listener: &str) -> SiteConfig {
        let text = format!(
            "[[listeners]]\nbind = \"127.0.0.1:8080\"\npool = \"web\"\n{listener}\n\
             [pools.web]\nservers = [{servers}]\n{pool}\n"
        );
        parse_site(Path::new("s.toml"), &text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn unchanged_servers_are_left_alone_and_others_diffed() {
        let old = cfg(
            "",
            "\"127.0.0.1:1\", { address = \"127.0.0.1:2\", id = \"b\" }, \"127.0.0.1:3\", { address = \"127.0.0.1:5\", id = \"e\" }",
            "",
        );
        let new = cfg(
            "",
            "\"127.0.0.1:1\", { address = \"127.0.0.1:2\", id = \"b\", weight = 5 }, \"127.0.0.1:4\", { address = \"127.0.0.1:6\", id = \"e\" }",
            "",
        );
        let p = plan(&old, &new);
        let PoolPlan::Keep(name, d) = &p.pools[0] else {
            panic!("{p:?}")
        };
        assert_eq!(name, "web");
        assert_eq!(
            d.added.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["127.0.0.1:4"]
        );
        assert_eq!(d.removed, ["127.0.0.1:3"]);
        assert_eq!(d.changed.iter().map(|s| s.weight).collect::<Vec<_>>(), [5]);
        assert_eq!(
            d.moved.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["e"]
        );
        assert_eq!(p.listeners, [ListenerPlan::Keep(0)]);
        assert!(p.restart_needed.is_empty());
        assert!(plan(&old, &old).summary().is_empty());
    }

    #[test]
    fn new_pool_settings_replace_the_pool_and_restart_its_listeners() {
        let old = cfg("", "\"127.0.0.1:1\"", "");
        let new = cfg("algorithm = \"least-connections\"", "\"127.0.0.1:1\"", "");
        let p = plan(&old, &new);
        assert!(matches!(&p.pools[0], PoolPlan::Replace(_, d) if d.is_empty()));
        assert_eq!(p.listeners, [ListenerPlan::Restart(0)]);
        let new = cfg("", "\"127.0.0.1:1\"", "header_timeout = \"5s\"");
        assert_eq!(plan(&old, &new).listeners, [ListenerPlan::Restart(0)]);
    }

    #[test]
    fn listeners_and_pools_come_and_go() {
        let old = cfg(
            "[pools.old]\nservers = [\"127.0.0.1:9\"]",
            "\"127.0.0.1:1\"",
            "",
        );
        let text = "[[listeners]]\nbind = \"127.0.0.1:9090\"\nprotocol = \"tcp\"\npool = \"db\"\n\
                    [pools.db]\nservers = [\"127.0.0.1:7\"]\nthreads = 1\n";
        let new = parse_site(
            Path::new("s.toml"),
            &format!("threads = 2\n{}", &text[..text.len() - 12]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let p = plan(&old, &new);
        assert_eq!(p.pools, [PoolPlan::Add("db".into())]);
        assert_eq!(p.dropped_pools, ["old", "web"]);
        assert_eq!(p.listeners, [ListenerPlan::Bind]);
        assert_eq!(p.closed, [0]);
        assert_eq!(p.restart_needed, ["threads"]);
    }
}
