//! Reading one cookie from a request and writing a `Set-Cookie` value.

use std::time::Duration;

use hyper::HeaderMap;
use hyper::header::{self, HeaderValue};

/// The value of cookie `name` in the request's `Cookie` headers, if any.
pub(crate) fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"'))
        })
}

/// A `Set-Cookie` value: path `/`, `HttpOnly`, `SameSite=Lax`, `Secure` over TLS.
pub(crate) fn set(name: &str, value: &str, max_age: Option<Duration>, secure: bool) -> HeaderValue {
    let mut s = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        s.push_str(&format!("; Max-Age={}", age.as_secs()));
    }
    if secure {
        s.push_str("; Secure");
    }
    // Names and values are checked token characters; the fallback is never expected.
    HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static("invalid=1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_cookie_among_several_headers() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        h.append(header::COOKIE, HeaderValue::from_static("srv=\"x9\""));
        assert_eq!(get(&h, "b"), Some("2"));
        assert_eq!(get(&h, "srv"), Some("x9"));
        assert_eq!(get(&h, "c"), None);
    }

    #[test]
    fn set_cookie_attributes() {
        let v = set("srv", "ab", Some(Duration::from_secs(60)), true);
        assert_eq!(
            v.to_str().ok(),
            Some("srv=ab; Path=/; HttpOnly; SameSite=Lax; Max-Age=60; Secure")
        );
    }
}
