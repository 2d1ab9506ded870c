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
