//! The HTML of `/status`: one self-contained page (inline CSS, SVG and a few lines of JS; no
//! external asset) and the fragment `/status/live` that the page fetches every two seconds to
//! redraw the map and the table in place. Without JS the page reloads itself every five
//! seconds. The explain form is a plain GET form, answered by the server.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use crate::config::ZoneSet;
use crate::gslb::Explained;

use super::{DcRow, StatusView, map};
use crate::telemetry::html::{BASE_STYLE, LIVE_SCRIPT, esc};

/// The explain form's values, and its result when it was submitted.
#[derive(Debug, Clone, Default)]
pub struct ExplainForm {
    /// Service name as typed.
    pub name: String,
    /// Client as typed.
    pub client: String,
    /// `None` before a submission; the decision, or why there is none.
    pub result: Option<Result<Explained, String>>,
}

/// What only this page needs beside [`BASE_STYLE`]: the map, load bars, the explain form.
const STYLE: &str = r#"
main{max-width:1200px}
#map{width:100%;height:auto;background:#fff;border:1px solid #cfd6de;border-radius:4px}
#map .sea{fill:#eaf2f8}
#map .graticule line{stroke:#c9d8e4;stroke-width:.25}
#map .land polygon{fill:#d5dbc9;stroke:#a9b39a;stroke-width:.3;stroke-linejoin:round}
#map .dc-marker circle{stroke:#1d2430;stroke-width:.6}
#map .dc-marker text{font-size:5px;font-weight:600;fill:#1d2430;paint-order:stroke;stroke:#fff;stroke-width:1.2px}
.legend span{margin-right:1.2em}
.bar{display:inline-block;width:4em;height:.55em;background:#e1e6eb;margin-left:.4em;vertical-align:middle}
.bar i{display:block;height:100%;background:#5b8def}
form{display:flex;gap:.8em;flex-wrap:wrap;align-items:end}
label{display:flex;flex-direction:column;font-size:.9em}
input{font:inherit;padding:.25em .4em;min-width:16em}
button{font:inherit;padding:.3em 1em}
.error{color:#b3261e;font-weight:600}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}
dt{font-weight:600}dd{margin:0}
"#;

/// The whole page.
pub fn page(view: &StatusView, set: &ZoneSet, form: &ExplainForm) -> String {
    let mut o = String::with_capacity(32 * 1024);
    o.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    o.push_str("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
    o.push_str("<title>Meridian DNS status</title><style>");
    o.push_str(BASE_STYLE);
    o.push_str(STYLE);
    o.push_str("</style><noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>");
    o.push_str("</head><body data-stale=\"no\"><header><h1>Meridian DNS</h1>");
    let _ = write!(
        o,
        "<span>{} zone(s)</span><span id=\"stale\">status not updating: admin listener unreachable</span></header><main>",
        set.zones().len()
    );
    o.push_str("<div id=\"live\">");
    o.push_str(&live_fragment(view));
    o.push_str("</div>");
    explain_section(&mut o, set, form);
    o.push_str("</main><script>");
    o.push_str(LIVE_SCRIPT);
    o.push_str("</script></body></html>\n");
    o
}

/// The part of the page that refreshes: map, legend and table.
pub fn live_fragment(view: &StatusView) -> String {
    let rows: Vec<&DcRow> = view.rows().collect();
    let mut o = String::with_capacity(16 * 1024);
    o.push_str("<h2>Datacenters</h2>");
    o.push_str(&map::svg(&rows));
    let _ = write!(
        o,
        "<p class=\"legend\"><span><i class=\"dot green\"></i>up</span>\
         <span><i class=\"dot amber\"></i>draining, changing or shedding load</span>\
         <span><i class=\"dot red\"></i>down</span><small>updated {}</small></p>",
        humantime::format_rfc3339_seconds(SystemTime::now())
    );
    table(&mut o, &rows, view.answer_span());
    o
}

fn table(o: &mut String, rows: &[&DcRow], span: Duration) {
    let _ = write!(
        o,
        "<table id=\"dcs\"><thead><tr><th>zone</th><th>datacenter</th><th>state</th>\
         <th>since</th><th>last check</th><th>RTT</th><th>load</th>\
         <th title=\"share of the zone's answers that named this datacenter first, over the last {}\">answers, last minute</th></tr></thead><tbody>",
        humantime::format_duration(Duration::from_secs(span.as_secs()))
    );
    let now = SystemTime::now();
    for r in rows {
        let s = &r.status;
        let place = [r.country.as_deref(), r.jurisdiction.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" · ");
        let age = now.duration_since(s.since).unwrap_or_default();
        let mut flags = String::new();
        if s.changing {
            flags.push_str(" <small>changing</small>");
        }
        if r.shed_at.is_some_and(|at| f64::from(s.load) > at) {
            flags.push_str(" <small>shedding</small>");
        }
        let _ = write!(
            o,
            "<tr class=\"dc-row\" data-zone=\"{z}\" data-dc=\"{n}\" data-colour=\"{c}\">\
             <td>{z}</td><td><i class=\"dot {c}\"></i>{n} <small>{place}</small></td>\
             <td class=\"state\">{st}{flags}</td>\
             <td title=\"{since}\">{age} ago</td>\
             <td title=\"{err}\">{res}</td><td class=\"num\">{rtt}</td>\
             <td class=\"num\">{load:.2}<span class=\"bar\"><i style=\"width:{w:.0}%\"></i></span></td>\
             <td class=\"num\">{share}</td></tr>",
            z = esc(&r.zone),
            n = esc(&s.name),
            c = r.colour.as_str(),
            place = esc(&place),
            st = esc(&r.state_label()),
            since = humantime::format_rfc3339_seconds(s.since),
            age = humantime::format_duration(Duration::from_secs(age.as_secs())),
            err = esc(s.last_error.as_deref().unwrap_or("")),
            res = match (&s.check, s.last_result) {
                (None, _) => "no check",
                (Some(_), None) => "pending",
                (Some(_), Some(r)) => r,
            },
            rtt = s
                .last_rtt_ms
                .map_or("–".to_string(), |ms| format!("{ms:.1} ms")),
            load = s.load,
            w = (f64::from(s.load) * 100.0).clamp(0.0, 100.0),
            share = match r.answer_share {
                Some(sh) => format!(
                    "{:.1} % <small>({})</small>",
                    sh * 100.0,
                    r.answers_last_minute
                ),
                None => "–".to_string(),
            },
        );
    }
    o.push_str("</tbody></table>");
}

fn explain_section(o: &mut String, set: &ZoneSet, form: &ExplainForm) {
    let services: Vec<String> = set
        .zones()
        .iter()
        .flat_map(|z| z.services.iter().map(|s| s.name.to_string()))
        .collect();
    let name = if form.name.is_empty() {
        services.first().cloned().unwrap_or_default()
    } else {
        form.name.clone()
    };
    o.push_str("<section id=\"explain\"><h2>Explain a decision (live zones and health)</h2>");
    let _ = write!(
        o,
        "<form method=\"get\" action=\"status#explain\">\
         <label>service<input name=\"name\" list=\"services\" required value=\"{}\"></label>\
         <label>client address or subnet<input name=\"client\" required placeholder=\"81.2.69.0/24\" value=\"{}\"></label>\
         <button type=\"submit\">Explain</button></form><datalist id=\"services\">",
        esc(&name),
        esc(&form.client)
    );
    for s in &services {
        let _ = write!(o, "<option value=\"{}\">", esc(s));
    }
    o.push_str("</datalist><div id=\"explain-result\">");
    match &form.result {
        None => {}
        Some(Err(e)) => {
            let _ = write!(o, "<p class=\"error\">{}</p>", esc(e));
        }
        Some(Ok(x)) => explained(o, x),
    }
    o.push_str("</div></section>");
}

fn explained(o: &mut String, x: &Explained) {
    let health: Vec<String> = x
        .health
        .iter()
        .map(|(n, s)| format!("{n} {}", s.as_str()))
        .collect();
    let _ = write!(
        o,
        "<dl><dt>query</dt><dd>{} from {}</dd><dt>zone</dt><dd>{} <small>{}</small></dd>\
         <dt>service</dt><dd>policy {}, answers {}, ttl {}, failover_ttl {}</dd>\
         <dt>located</dt><dd>{}; same location for the /{} block</dd>",
        esc(&x.name),
        esc(&x.client),
        esc(&x.zone),
        esc(&x.file),
        x.policy,
        x.answers,
        x.ttl,
        x.failover_ttl,
        esc(&x.located),
        x.located_scope
    );
    if !x.override_datacenters.is_empty() {
        let _ = write!(
            o,
            "<dt>override</dt><dd>straight to {}</dd>",
            esc(&x.override_datacenters.join(", "))
        );
    }
    let _ = write!(
        o,
        "<dt>health</dt><dd>{}</dd></dl>",
        esc(&health.join(", "))
    );
    o.push_str("<table id=\"steps\"><thead><tr><th>#</th><th>step</th><th>kept</th><th>why</th></tr></thead><tbody>");
    for (i, s) in x.steps.iter().enumerate() {
        let kept = if s.kept.is_empty() {
            "(none)".to_string()
        } else {
            s.kept.join(", ")
        };
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td style=\"white-space:normal\">{}</td></tr>",
            i + 1,
            s.name,
            esc(&kept),
            esc(&s.note)
        );
    }
    o.push_str("</tbody></table><p id=\"answer\"><b>answer</b> ");
    if x.nodata {
        o.push_str("NODATA");
    } else {
        let parts: Vec<String> = x
            .answer
            .iter()
            .map(|a| format!("{} ({})", a.datacenter, a.addresses.join(", ")))
            .collect();
        o.push_str(&esc(&parts.join("; ")));
    }
    let _ = write!(o, " · TTL {} · ECS scope /{}</p>", x.answer_ttl, x.scope);
}
