//! The configuration references and the parsers agree, key for key.
//!
//! The accepted keys are asked of the parser itself: for every table of a schema, a valid file
//! gets one unknown key in that table, and serde's error (`unknown field ..., expected one of
//! ...`) lists the keys the table accepts. Each must be in the matching section of the
//! reference, and each key that section documents must be accepted. Another schema (the site
//! file and `docs/site-file.md`) is one more entry in [`SCHEMAS`].

use std::collections::BTreeSet;
use std::path::Path;

/// A key no schema has.
const PROBE: &str = "zz_not_a_key";

/// One configuration file format and its reference.
struct Schema {
    /// What it is, for messages.
    name: &'static str,
    /// The reference, relative to the repository.
    doc: &'static str,
    /// Parses a file's text; the error's text on failure.
    parse: fn(&str) -> Result<(), String>,
    /// A valid file using every table, with a line `@PATH@` where each table's keys go.
    template: &'static str,
    /// Per table: its path in the template and the heading of its section in `doc`.
    tables: &'static [(&'static str, &'static str)],
}

const SCHEMAS: &[Schema] = &[
    Schema {
        name: "zone file",
        doc: "docs/zone-file.md",
        parse: |text| {
            meridian::config::zone::parse_zone(Path::new("example.com.toml"), text)
                .map(drop)
                .map_err(|e| e.to_string())
        },
        template: ZONE_TEMPLATE,
        tables: &[
            ("top", "## Top level"),
            ("soa", "### `[soa]`"),
            ("records", "### `[[records]]`"),
            ("geoip", "### `[geoip]`"),
            ("geoip.default", "### `[geoip.default]`"),
            ("geoip.nets", "### `[[geoip.nets]]`"),
            ("datacenters.NAME", "### `[datacenters.NAME]`"),
            (
                "datacenters.NAME.location",
                "### `[datacenters.NAME.location]`",
            ),
            ("datacenters.NAME.check", "### `[datacenters.NAME.check]`"),
            ("services", "### `[[services]]`"),
            ("services.geo", "### `[services.geo]`"),
            ("services.hash_prefix", "### `[services.hash_prefix]`"),
            ("services.sovereignty", "### `[[services.sovereignty]]`"),
            ("latency", "### `[[latency]]`"),
        ],
    },
    Schema {
        name: "site file",
        doc: "docs/site-file.md",
        parse: |text| {
            meridian::config::site::parse_site(Path::new("site.toml"), text)
                .map(drop)
                .map_err(|e| e.to_string())
        },
        template: SITE_TEMPLATE,
        tables: &[
            ("top", "## Top level"),
            ("admin", "## `[admin]`"),
            ("shutdown", "## `[shutdown]`"),
            ("listeners", "## `[[listeners]]`"),
            ("pools.NAME", "## `[pools.NAME]`"),
            ("pools.NAME.servers", "### Server tables"),
            ("pools.NAME.timeouts", "### `timeouts`"),
            ("pools.NAME.check", "### `check` (active)"),
            ("pools.NAME.passive", "### `passive`"),
            ("pools.NAME.breaker", "### `breaker`"),
            ("pools.NAME.retry", "### `retry`"),
            ("pools.NAME.affinity", "### `affinity`"),
            ("pools.NAME.tls", "### `tls` (pool)"),
            ("listeners.tls", "### `tls` (listener)"),
            ("listeners.tls.certificates", "### `tls.certificates`"),
            ("listeners.rate_limit", "### `rate_limit`"),
            ("listeners.compression", "### `compression`"),
            ("listeners.cache", "### `cache`"),
            ("listeners.routes", "### `[[listeners.routes]]`"),
            ("listeners.routes.headers", "### `routes.headers`"),
            ("listeners.routes.query", "### `routes.query`"),
            ("listeners.routes.rate_limit", "### `rate_limit`"),
            ("listeners.routes.split", "### `routes.split`"),
            ("pools.NAME.discovery", "### `discovery`"),
        ],
    },
];

const SITE_TEMPLATE: &str = r#"
@top@

[admin]
bind = "127.0.0.1:9101"
@admin@

[shutdown]
@shutdown@

[[listeners]]
bind = "127.0.0.1:8080"
pool = "web"
@listeners@

[listeners.tls]
@listeners.tls@

[[listeners.tls.certificates]]
cert = "c.pem"
key = "k.pem"
@listeners.tls.certificates@

[listeners.rate_limit]
rate = 10
@listeners.rate_limit@

[listeners.compression]
@listeners.compression@

[listeners.cache]
@listeners.cache@

[[listeners.routes]]
pool = "web"
@listeners.routes@

[[listeners.routes.headers]]
name = "x-a"
present = true
@listeners.routes.headers@

[[listeners.routes.query]]
name = "q"
@listeners.routes.query@

[listeners.routes.rate_limit]
rate = 5
@listeners.routes.rate_limit@

[[listeners.routes]]
sticky = "client-ip"

[[listeners.routes.split]]
pool = "web"
weight = 1
@listeners.routes.split@

[[listeners.routes.split]]
pool = "web2"
weight = 1

[pools.web2]
servers = ["127.0.0.1:9002"]

[pools.web]
@pools.NAME@

[[pools.web.servers]]
address = "127.0.0.1:9001"
@pools.NAME.servers@

[pools.web.timeouts]
@pools.NAME.timeouts@

[pools.web.check]
http = "/health"
@pools.NAME.check@

[pools.web.passive]
@pools.NAME.passive@

[pools.web.breaker]
@pools.NAME.breaker@

[pools.web.retry]
@pools.NAME.retry@

[pools.web.affinity]
cookie = "srv"
@pools.NAME.affinity@

[pools.web.tls]
ca = "ca.pem"
@pools.NAME.tls@
[pools.web.discovery]
file = "servers.toml"
@pools.NAME.discovery@
"#;

const ZONE_TEMPLATE: &str = r#"
origin = "example.com."
nameservers = ["ns1.example.com."]
@top@

[soa]
mname = "ns1.example.com."
rname = "hostmaster.example.com."
@soa@

[[records]]
name = "ns1"
type = "A"
value = "192.0.2.53"
@records@

[geoip]
@geoip@

[geoip.default]
country = "US"
@geoip.default@

[[geoip.nets]]
cidr = "10.0.0.0/8"
country = "DE"
@geoip.nets@

[datacenters.a]
addresses = ["192.0.2.10"]
@datacenters.NAME@

[datacenters.a.location]
lat = 53.35
lon = -6.26
@datacenters.NAME.location@

[datacenters.a.check]
url = "http://127.0.0.1:9/health"
@datacenters.NAME.check@

[[services]]
name = "www"
datacenters = ["a"]
@services@

[services.geo]
@services.geo@

[services.hash_prefix]
v4 = 24
@services.hash_prefix@

[[services.sovereignty]]
clients = "EU"
datacenters = ["a"]
@services.sovereignty@

[[latency]]
clients = "EU"
rtt = { a = 10 }
@latency@
"#;

/// The template with `line` in table `path` and nothing in the others.
fn fill(template: &str, tables: &[(&str, &str)], path: &str, line: &str) -> String {
    let mut text = template.to_string();
    for (p, _) in tables {
        let marker = format!("@{p}@");
        assert!(text.contains(&marker), "template lacks {marker}");
        text = text.replace(&marker, if *p == path { line } else { "" });
    }
    text
}

/// The keys serde lists after `unknown field `PROBE``: `expected one of `a`, `b``, `expected
/// `a` or `b``, `expected `a``, or `there are no fields`.
fn accepted_keys(error: &str) -> BTreeSet<String> {
    let head = format!("unknown field `{PROBE}`");
    let at = error
        .find(&head)
        .unwrap_or_else(|| panic!("not an unknown-field error: {error}"));
    let rest = &error[at + head.len()..];
    let rest = rest.split(['\n']).next().unwrap_or("");
    rest.split('`')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

/// The keys in the first column of the tables of the section whose heading is `heading`;
/// `None` without such a section. A table written as a header (`[admin]`, `[[listeners]]`,
/// `[pools.NAME]`) documents its key (`admin`, `listeners`, `pools`).
fn documented_keys(doc: &str, heading: &str) -> Option<BTreeSet<String>> {
    let mut lines = doc.lines().skip_while(|l| l.trim() != heading);
    lines.next()?;
    Some(
        lines
            .take_while(|l| !l.starts_with('#'))
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .map(|k| {
                let k = k.trim_start_matches('[').trim_end_matches(']');
                k.split('.').next().unwrap_or(k).to_string()
            })
            .collect(),
    )
}

#[test]
fn every_key_the_parsers_accept_is_documented_and_every_documented_key_is_accepted() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for schema in SCHEMAS {
        let doc = std::fs::read_to_string(root.join(schema.doc))
            .unwrap_or_else(|e| panic!("{}: {e}", schema.doc));
        let valid = fill(schema.template, schema.tables, "", "");
        if let Err(e) = (schema.parse)(&valid) {
            panic!("the {} template must be valid: {e}\n{valid}", schema.name);
        }
        let mut problems = Vec::new();
        for (path, heading) in schema.tables {
            let text = fill(
                schema.template,
                schema.tables,
                path,
                &format!("{PROBE} = 1"),
            );
            let error = match (schema.parse)(&text) {
                Ok(()) => panic!("{} [{path}] accepted an unknown key", schema.name),
                Err(e) => e,
            };
            let accepted = accepted_keys(&error);
            assert!(!accepted.is_empty(), "no keys listed for [{path}]: {error}");
            let Some(documented) = documented_keys(&doc, heading) else {
                problems.push(format!("{}: no section {heading} for [{path}]", schema.doc));
                continue;
            };
            for k in accepted.difference(&documented) {
                problems.push(format!(
                    "{}: `{k}` of [{path}] is not under {heading}",
                    schema.doc
                ));
            }
            for k in documented.difference(&accepted) {
                problems.push(format!(
                    "{}: `{k}` under {heading} is not accepted by the {} parser in [{path}]",
                    schema.doc, schema.name
                ));
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}

#[test]
fn serde_key_lists_are_read_in_each_of_their_forms() {
    let one_of = format!("unknown field `{PROBE}`, expected one of `a`, `b`, `c`");
    assert_eq!(
        accepted_keys(&one_of),
        BTreeSet::from(["a".into(), "b".into(), "c".into()])
    );
    let two = format!("x: unknown field `{PROBE}`, expected `v4` or `v6`");
    assert_eq!(
        accepted_keys(&two),
        BTreeSet::from(["v4".into(), "v6".into()])
    );
    let none = format!("unknown field `{PROBE}`, there are no fields");
    assert!(accepted_keys(&none).is_empty());
    let doc = "## A\n| key |\n| --- |\n| `x` | 1 |\n| `y` | 2 |\n### B\n| `z` | 3 |\n";
    assert_eq!(
        documented_keys(doc, "## A"),
        Some(BTreeSet::from(["x".into(), "y".into()]))
    );
    assert_eq!(
        documented_keys(doc, "### B"),
        Some(BTreeSet::from(["z".into()]))
    );
    assert_eq!(documented_keys(doc, "### C"), None);
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn tests_the_docs_cite_exist() {
    // The comparison and the operations guide back each claim with a test by name; a renamed
    // or removed test must not leave a claim without its evidence.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["tests", "src", "examples", "benches"] {
        rust_files(&root.join(dir), &mut files);
    }
    let code: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("source"))
        .collect();
    let mut missing = Vec::new();
    for doc in [
        "docs/comparison.md",
        "docs/operations.md",
        "docs/metrics.md",
    ] {
        let text = std::fs::read_to_string(root.join(doc)).expect("doc");
        let cited: BTreeSet<&str> = text
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|w| {
                w.matches('_').count() >= 3
                    && w.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    && !w.starts_with("meridian_")
                    && !w.starts_with("process_")
            })
            .collect();
        assert!(!cited.is_empty(), "{doc} cites no test");
        for name in cited {
            if !code.contains(&format!("fn {name}(")) {
                missing.push(format!("{doc}: `{name}`"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "cited but not found:\n{}",
        missing.join("\n")
    );
}
