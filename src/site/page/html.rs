//! The HTML of the site's status page: one self-contained page (inline CSS and a few lines of
//! JS; no external asset) and the fragment `/status/live` that the page fetches every two
//! seconds to redraw itself in place. Without JS the page reloads itself every five seconds.
//! Every string from the site file, the runtime API or discovery is escaped.

use std::fmt::Write;
use std::time::SystemTime;

use super::advice::Severity;
use super::{PoolRow, ServerRow, SiteView};
use crate::telemetry::html::{BASE_STYLE, LIVE_SCRIPT, esc};

/// What only this page needs beside [`BASE_STYLE`]: the site badge, coloured rows, advice.
const STYLE: &str = r#"
h2 small{font-weight:400}
#summary{display:flex;gap:1.5em;align-items:center;margin-top:1em}
.badge{display:inline-block;padding:.15em .7em;border-radius:1em;color:#fff;font-weight:600}
.badge.green{background:#2e9e44}.badge.amber{background:#c98a0c}.badge.red{background:#d2302c}
tr.green,tr.amber,tr.red{background:#fff}tr.amber td{background:#fff7e0}tr.red td{background:#fdecea}
ul#advice{padding-left:1.2em}
ul#advice li.critical{color:#b3261e;font-weight:600}
ul#advice li.warning{color:#7a5200}
"#;

/// The whole page.
pub(crate) fn page(view: &SiteView, title: &str) -> String {
    let mut o = String::with_capacity(16 * 1024);
    o.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    o.push_str("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
    let _ = write!(o, "<title>Meridian site {}</title><style>", esc(title));
    o.push_str(BASE_STYLE);
    o.push_str(STYLE);
    o.push_str("</style><noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>");
    let _ = write!(
        o,
        "</head><body data-stale=\"no\"><header><h1>Meridian site</h1><span>{}</span>\
         <span id=\"stale\">status not updating: admin listener unreachable</span></header><main>",
        esc(title)
    );
    o.push_str("<div id=\"live\">");
    o.push_str(&live_fragment(view));
    o.push_str("</div></main><script>");
    o.push_str(LIVE_SCRIPT);
    o.push_str("</script></body></html>\n");
    o
}

/// The part of the page that refreshes: summary, recommendations and the pools' tables.
pub(crate) fn live_fragment(view: &SiteView) -> String {
    let mut o = String::with_capacity(8 * 1024);
    let h = &view.health;
    let colour = match h.status {
        "up" => "green",
        "draining" => "amber",
        _ => "red",
    };
    let _ = write!(
        o,
        "<section id=\"summary\"><span id=\"site-state\" class=\"badge {colour}\" data-state=\"{0}\">{0}</span>\
         <span>{1} of {2} servers healthy</span><span>load {3:.0} %</span>\
         <small>updated {4}</small></section>",
        h.status,
        h.healthy_backends,
        h.total_backends,
        100.0 * h.load,
        humantime::format_rfc3339_seconds(SystemTime::now())
    );
    let _ = write!(
        o,
        "<h2>Recommendations <small>from the last {} s</small></h2>",
        view.window.as_secs()
    );
    if view.advice.is_empty() {
        o.push_str(
            "<p id=\"advice-none\">None: at least 80 % of each pool's servers are healthy, \
             latency and error rates are below their thresholds, load is even and no pool is \
             near its connection limit.</p>",
        );
    } else {
        o.push_str("<ul id=\"advice\">");
        for a in &view.advice {
            let class = match a.severity {
                Severity::Critical => "critical",
                Severity::Warning => "warning",
            };
            let _ = write!(
                o,
                "<li class=\"{class}\" data-rule=\"{}\" data-pool=\"{}\"><b>{}</b>: {}</li>",
                a.rule,
                esc(&a.pool),
                esc(&a.pool),
                esc(&a.text)
            );
        }
        o.push_str("</ul>");
    }
    for p in &view.pools {
        pool_table(&mut o, p, view.window.as_secs());
    }
    o
}

fn pool_table(o: &mut String, p: &PoolRow, window: u64) {
    let healthy = p.servers.iter().filter(|s| s.usable).count();
    let _ = write!(
        o,
        "<h2>Pool {} <small>{} · {healthy} of {} servers healthy · {} in flight</small></h2>\
         <table class=\"pool\" data-pool=\"{}\"><thead><tr><th>server</th><th>address</th>\
         <th>state</th><th>admin</th><th>check</th><th>breaker</th><th>weight</th>\
         <th>active</th><th>max</th><th>requests</th><th>last {window} s</th><th>errors</th>\
         <th>error % ({window} s)</th><th>latency ms</th><th>ejections</th><th>origin</th>\
         </tr></thead><tbody>",
        esc(&p.name),
        p.algorithm,
        p.servers.len(),
        p.in_flight,
        esc(&p.name)
    );
    for s in &p.servers {
        row(o, s);
    }
    o.push_str("</tbody></table>");
}

/// green: taking requests normally; amber: draining, in maintenance, breaker testing;
/// red: down, ejected or breaker open.
fn colour(s: &ServerRow) -> &'static str {
    match (s.state, s.breaker) {
        ("up", "closed") => "green",
        ("up", "half-open") => "amber",
        ("down", _) | (_, "open") => "red",
        _ => "amber",
    }
}

fn row(o: &mut String, s: &ServerRow) {
    let c = colour(s);
    let max = if s.max_connections == 0 {
        "∞".to_string()
    } else {
        s.max_connections.to_string()
    };
    let rate = if s.recent_requests == 0 {
        "–".to_string()
    } else {
        format!(
            "{:.1}",
            100.0 * s.recent_failures as f64 / s.recent_requests as f64
        )
    };
    let _ = write!(
        o,
        "<tr class=\"{c}\" data-server=\"{id}\" data-state=\"{state}\">\
         <td><i class=\"dot {c}\"></i>{id}</td><td>{addr}</td><td>{state}</td><td>{admin}</td>\
         <td>{check}</td><td>{breaker}</td><td class=\"num\">{weight}</td>\
         <td class=\"num\">{active}</td><td class=\"num\">{max}</td>\
         <td class=\"num\">{requests}</td><td class=\"num\">{recent}</td>\
         <td class=\"num\">{errors}</td><td class=\"num\">{rate}</td>\
         <td class=\"num\">{latency:.1}</td><td class=\"num\">{ejections}</td><td>{origin}</td></tr>",
        id = esc(&s.id),
        addr = esc(&s.address),
        state = s.state,
        admin = s.admin_state,
        check = s.check,
        breaker = s.breaker,
        weight = s.weight,
        active = s.in_flight,
        requests = s.requests,
        recent = s.recent_requests,
        errors = s.failures,
        latency = s.latency.as_secs_f64() * 1e3,
        ejections = s.ejections,
        origin = s.origin,
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::site::HealthReport;
    use crate::site::page::advice::Advice;

    fn server(id: &str, state: &'static str, breaker: &'static str) -> ServerRow {
        ServerRow {
            id: id.to_string(),
            address: "127.0.0.1:1".to_string(),
            state,
            admin_state: "ready",
            origin: "config",
            check: "up",
            breaker,
            ejected: false,
            ejections: 0,
            weight: 1,
            in_flight: 0,
            max_connections: 0,
            requests: 10,
            failures: 1,
            recent_requests: 10,
            recent_failures: 1,
            latency: Duration::from_millis(12),
            usable: state == "up",
            counted: true,
        }
    }

    fn view(status: &'static str) -> SiteView {
        SiteView {
            health: HealthReport {
                status,
                healthy_backends: 1,
                total_backends: 3,
                load: 0.25,
            },
            window: Duration::from_secs(60),
            pools: vec![PoolRow {
                name: "web<1>".to_string(),
                algorithm: "round-robin",
                in_flight: 0,
                max_requests: 0,
                servers: vec![
                    server("a", "up", "closed"),
                    server("b", "draining", "closed"),
                    server("<c>", "down", "open"),
                ],
            }],
            advice: vec![Advice {
                severity: Severity::Warning,
                pool: "web<1>".to_string(),
                rule: "healthy",
                text: "1 of 3 servers healthy".to_string(),
            }],
        }
    }

    #[test]
    fn rows_are_coloured_by_state_and_text_is_escaped() {
        let html = page(&view("up"), "eu-west");
        assert!(html.contains("data-server=\"a\" data-state=\"up\""));
        assert!(html.contains("<tr class=\"green\" data-server=\"a\""));
        assert!(html.contains("<tr class=\"amber\" data-server=\"b\""));
        assert!(html.contains("<tr class=\"red\" data-server=\"&lt;c&gt;\""));
        assert!(!html.contains("<c>") && !html.contains("web<1>"));
        assert!(html.contains("class=\"badge green\" data-state=\"up\""));
        assert!(html.contains("data-rule=\"healthy\""));
        assert!(html.contains("<td class=\"num\">10.0</td>"), "error %");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external asset"
        );
    }

    #[test]
    fn a_draining_site_is_amber_and_advice_can_be_empty() {
        let mut v = view("draining");
        v.advice.clear();
        let f = live_fragment(&v);
        assert!(f.contains("class=\"badge amber\" data-state=\"draining\""));
        assert!(f.contains("id=\"advice-none\""));
        assert!(live_fragment(&view("down")).contains("badge red"));
    }
}
