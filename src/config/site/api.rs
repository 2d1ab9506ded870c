//! `[admin]` keys of the runtime API: the bearer token (inline, from a file, or from the
//! `MERIDIAN_ADMIN_TOKEN` environment variable at run time) and the client networks allowed to
//! call it (loopback unless configured otherwise).

use std::path::Path;

use ipnet::IpNet;

use super::raw::RawAdmin;
use crate::config::error::Collector;

/// Who may call the runtime API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// The bearer token from `token` or `token_file`; `None` leaves it to the
    /// `MERIDIAN_ADMIN_TOKEN` environment variable, and without that every call is refused.
    pub token: Option<String>,
    /// Client networks allowed to call the API (reads of `/health`, `/metrics`, `/status` are
    /// open to all).
    pub allow: Vec<IpNet>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            token: None,
            allow: loopback(),
        }
    }
}

fn loopback() -> Vec<IpNet> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// Reads the API keys of `[admin]`; `token_file` is read now (relative to the site file), so a
/// missing or empty file is reported like any other bad value.
pub(crate) fn build(c: &mut Collector<'_>, file: &Path, r: &RawAdmin) -> ApiConfig {
    let token = match (&r.token, &r.token_file) {
        (Some(t), Some(_)) => {
            c.err(
                &t.span(),
                "admin.token",
                "set token or token_file, not both",
            );
            None
        }
        (Some(t), None) => non_empty(c, t.get_ref().trim(), &t.span(), "admin.token"),
        (None, Some(f)) => {
            let path = file.parent().unwrap_or(Path::new(".")).join(f.get_ref());
            match std::fs::read_to_string(&path) {
                Ok(t) => non_empty(c, t.trim(), &f.span(), "admin.token_file"),
                Err(e) => {
                    c.err(&f.span(), "admin.token_file", format!("cannot read: {e}"));
                    None
                }
            }
        }
        (None, None) => None,
    };
    let allow = match &r.api_allow {
        None => loopback(),
        Some(list) => list
            .iter()
            .filter_map(|n| {
                let s = n.get_ref().trim();
                let parsed = s
                    .parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from));
                match parsed {
                    Ok(net) => Some(net),
                    Err(_) => {
                        c.err(
                            &n.span(),
                            "admin.api_allow",
                            "expected a network such as 10.0.0.0/8 or an address",
                        );
                        None
                    }
                }
            })
            .collect(),
    };
    ApiConfig { token, allow }
}

fn non_empty(
    c: &mut Collector<'_>,
    t: &str,
    span: &std::ops::Range<usize>,
    item: &str,
) -> Option<String> {
    if t.is_empty() {
        c.err(span, item, "the token must not be empty");
        None
    } else {
        Some(t.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::site::parse_site;

    #[test]
    fn token_and_networks() {
        let cfg = parse_site(
            Path::new("s.toml"),
            "[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"s3cret\"\napi_allow = [\"10.0.0.0/8\", \"192.0.2.1\"]\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let api = &cfg.admin.expect("admin").api;
        assert_eq!(api.token.as_deref(), Some("s3cret"));
        assert_eq!(api.allow.len(), 2);
        let cfg = parse_site(Path::new("s.toml"), "[admin]\nbind = \"127.0.0.1:0\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let api = &cfg.admin.expect("admin").api;
        assert!(api.token.is_none());
        assert!(
            api.allow
                .iter()
                .any(|n| n.contains(&"127.0.0.1".parse::<std::net::IpAddr>().expect("ip")))
        );
    }

    #[test]
    fn bad_values_are_reported_with_positions() {
        let e = parse_site(
            Path::new("s.toml"),
            "[admin]\nbind = \"127.0.0.1:0\"\ntoken_file = \"no-such-token\"\napi_allow = [\"nope\"]\n",
        )
        .expect_err("invalid")
        .to_string();
        assert!(e.contains("s.toml:3:14: admin.token_file"), "{e}");
        assert!(e.contains("s.toml:4:14: admin.api_allow: \"nope\""), "{e}");
    }
}
