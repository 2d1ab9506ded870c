//! Gathers a listener's HTTP feature keys (routes, rate limit, compression, cache) into one
//! optional [`HttpFeatures`], so a listener without any keeps the plain forwarding path.

use toml::Spanned;

use super::l7::{HttpFeatures, cache, compression, rate_limit};
use super::model::SiteConfig;
use super::raw::RawListener;
use super::route::{RouteAction, routes};
use crate::config::error::Collector;

pub(crate) fn build(
    c: &mut Collector<'_>,
    raw: &Spanned<RawListener>,
    site: &SiteConfig,
    item: &str,
    default_pool: Option<usize>,
) -> Option<Box<HttpFeatures>> {
    let r = raw.get_ref();
    if r.routes.is_none() && r.rate_limit.is_none() && r.compression.is_none() && r.cache.is_none()
    {
        return None;
    }
    if let Some(routes) = &r.routes
        && routes.is_empty()
    {
        c.err(
            &raw.span(),
            &format!("{item} routes"),
            "routes must not be empty when given",
        );
    }
    Some(Box::new(HttpFeatures {
        routes: r
            .routes
            .as_ref()
            .map(|list| routes(c, list, site, item))
            .unwrap_or_default(),
        default_pool,
        rate_limit: r.rate_limit.as_ref().map(|l| rate_limit(c, l, item)),
        compression: r.compression.as_ref().map(|x| compression(c, x, item)),
        cache: r.cache.as_ref().map(|x| cache(c, x, item)),
    }))
}

/// A pool some rule sends to (the listener's nominal pool when it has no default).
pub(crate) fn first_pool(f: &HttpFeatures) -> Option<usize> {
    f.routes.iter().find_map(|r| match &r.action {
        RouteAction::Pool(p) => Some(*p),
        RouteAction::Split(s) => s.variants.first().map(|v| v.0),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::site::parse_site;

    const POOLS: &str =
        "[pools.a]\nservers = [\"127.0.0.1:1\"]\n[pools.b]\nservers = [\"127.0.0.1:2\"]\n";

    /// The error text for a site file made of `body` and two pools `a` and `b`.
    fn error(body: &str) -> String {
        let text = format!("{body}{POOLS}");
        match parse_site(Path::new("t.toml"), &text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    fn assert_err(body: &str, at: &str, item: &str, what: &str) {
        let e = error(body);
        assert!(
            e.contains(&format!("t.toml:{at}: ")),
            "position {at} in: {e}"
        );
        assert!(e.contains(item), "item {item:?} in: {e}");
        assert!(e.contains(what), "{what:?} in: {e}");
    }

    const L: &str = "[[listeners]]\nbind = \"127.0.0.1:0\"\n";

    #[test]
    fn route_errors_name_the_route_and_the_value() {
        assert_err(
            &format!("{L}[[listeners.routes]]\npath_regex = \"(\"\npool = \"a\"\n"),
            "4:14",
            "route \"route1\" path_regex",
            "bad regular expression",
        );
        assert_err(
            &format!("{L}[[listeners.routes]]\nname = \"x\"\npool = \"nope\"\n"),
            "5:8",
            "route \"x\" pool",
            "unknown pool \"nope\" (known: a, b)",
        );
        assert_err(
            &format!(
                "{L}[[listeners.routes]]\npath = \"/a\"\nrewrite_prefix = \"/b\"\npool = \"a\"\n"
            ),
            "5:18",
            "rewrite_prefix",
            "needs a path_prefix",
        );
        assert_err(
            &format!(
                "{L}[[listeners.routes]]\nsplit = [{{ pool = \"a\", weight = 1 }}, {{ pool = \"b\", weight = 1 }}]\nsticky = \"ip\"\n"
            ),
            "5:10",
            "sticky",
            "expected \"cookie:NAME\"",
        );
        assert_err(
            &format!("{L}[[listeners.routes]]\nsplit = [{{ pool = \"a\", weight = 1 }}]\n"),
            "4:9",
            "split",
            "at least two pools",
        );
        assert_err(
            &format!("{L}[[listeners.routes]]\nhost = \"a b\"\npool = \"a\"\n"),
            "4:8",
            "host",
            "expected a host name",
        );
        assert_err(
            &format!("{L}[[listeners.routes]]\nheaders = [{{ name = \"x\" }}]\npool = \"a\"\n"),
            "4:12",
            "headers",
            "exactly one of present",
        );
        assert_err(L, "1:1", "listener", "needs a pool (or routes)");
    }

    #[test]
    fn feature_errors() {
        assert_err(
            &format!("{L}pool = \"a\"\nrate_limit = {{ rate = 0 }}\n"),
            "4:23",
            "rate_limit.rate",
            "must be 1..=",
        );
        assert_err(
            &format!("{L}pool = \"a\"\nrate_limit = {{ rate = 5, key = \"ip\" }}\n"),
            "4:32",
            "rate_limit.key",
            "\"header:NAME\"",
        );
        assert_err(
            &format!("{L}pool = \"a\"\ncompression = {{ algorithms = [\"lzma\"] }}\n"),
            "4:31",
            "compression.algorithms",
            "unknown coding",
        );
        assert_err(
            &format!("{L}pool = \"a\"\ncache = {{ max_bytes = 8192, max_object_bytes = 9000 }}\n"),
            "4:48",
            "cache.max_object_bytes",
            "must not exceed max_bytes",
        );
        assert_err(
            &format!(
                "{L}pool = \"a\"\ntls = {{ certificates = [{{ cert = \"c\", key = \"k\" }}], min_version = \"1.1\" }}\n"
            ),
            "4:67",
            "tls min_version",
            "never accepted",
        );
        let e = error("[pools.c]\nservers = [\"127.0.0.1:3\"]\naffinity = { cookie = \"a b\" }\n");
        assert!(e.contains("t.toml:3:23: pool \"c\" affinity.cookie"), "{e}");
    }
}
