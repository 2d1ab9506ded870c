//! Domain names as the configuration model holds them: absolute, lower-case, dot-terminated.
//!
//! The model keeps its own name type so that nothing outside `src/dns/` depends on hickory.

use std::fmt;

/// An absolute domain name in lower case with its trailing dot, e.g. `www.example.com.`.
/// The root is `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    /// The root name.
    pub fn root() -> Self {
        Name(".".to_string())
    }

    /// Parses an absolute name (a trailing dot is optional). Lower-cases it.
    pub fn parse_absolute(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "." {
            return Ok(Self::root());
        }
        let body = s.strip_suffix('.').unwrap_or(s);
        check_labels(body)?;
        Ok(Name(format!("{}.", body.to_ascii_lowercase())))
    }

    /// Parses a name as written in a zone file: `@` is the origin, a name with a trailing dot
    /// is absolute, any other name is relative to the origin.
    pub fn parse_in(s: &str, origin: &Name) -> Result<Self, String> {
        let s = s.trim();
        if s == "@" {
            return Ok(origin.clone());
        }
        if s.ends_with('.') {
            return Self::parse_absolute(s);
        }
        check_labels(s)?;
        let n = if origin.is_root() {
            format!("{}.", s.to_ascii_lowercase())
        } else {
            format!("{}.{}", s.to_ascii_lowercase(), origin.0)
        };
        if n.len() > 254 {
            return Err("name is longer than 255 octets".into());
        }
        Ok(Name(n))
    }

    /// True for the root name.
    pub fn is_root(&self) -> bool {
        self.0 == "."
    }

    /// The name as text, with its trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Labels from the leftmost, without the root.
    pub fn labels(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.0
            .strip_suffix('.')
            .unwrap_or("")
            .split('.')
            .filter(|l| !l.is_empty())
    }

    /// Number of labels, not counting the root.
    pub fn label_count(&self) -> usize {
        self.labels().count()
    }

    /// True when `self` equals `parent` or lies below it.
    pub fn is_within(&self, parent: &Name) -> bool {
        if parent.is_root() {
            return true;
        }
        self.0 == parent.0
            || (self.0.len() > parent.0.len()
                && self.0.ends_with(&parent.0)
                && self.0.as_bytes()[self.0.len() - parent.0.len() - 1] == b'.')
    }

    /// True when the leftmost label is `*`.
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }

    /// The name without its leftmost label; the root stays the root.
    pub fn parent(&self) -> Name {
        match self.0.find('.') {
            Some(i) if i + 1 < self.0.len() => Name(self.0[i + 1..].to_string()),
            _ => Name::root(),
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn check_labels(body: &str) -> Result<(), String> {
    if body.is_empty() {
        return Err("empty name".into());
    }
    if body.len() > 253 {
        return Err("name is longer than 255 octets".into());
    }
    for (i, label) in body.split('.').enumerate() {
        if label.is_empty() {
            return Err("empty label".into());
        }
        if label.len() > 63 {
            return Err(format!("label {label:?} is longer than 63 octets"));
        }
        if label == "*" {
            if i != 0 {
                return Err("`*` is only allowed as the leftmost label".into());
            }
            continue;
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!("character {c:?} is not allowed in a host name"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::parse_absolute(s).expect("valid name")
    }

    #[test]
    fn relative_and_absolute() {
        let origin = n("Example.COM.");
        assert_eq!(origin.as_str(), "example.com.");
        assert_eq!(Name::parse_in("@", &origin), Ok(n("example.com.")));
        assert_eq!(Name::parse_in("WWW", &origin), Ok(n("www.example.com.")));
        assert_eq!(
            Name::parse_in("ns.other.org.", &origin),
            Ok(n("ns.other.org."))
        );
        assert_eq!(
            Name::parse_in("*.dev", &origin),
            Ok(n("*.dev.example.com."))
        );
        assert!(Name::parse_in("a.*", &origin).is_err());
        assert!(Name::parse_in("a..b", &origin).is_err());
        assert!(Name::parse_in("a b", &origin).is_err());
    }

    #[test]
    fn within() {
        assert!(n("www.example.com").is_within(&n("example.com")));
        assert!(n("example.com").is_within(&n("example.com")));
        assert!(!n("wwwexample.com").is_within(&n("example.com")));
        assert!(!n("example.com").is_within(&n("www.example.com")));
        assert!(n("a.b").is_within(&Name::root()));
        assert_eq!(n("a.b.c").parent(), n("b.c"));
        assert_eq!(n("c").parent(), Name::root());
        assert_eq!(n("a.b.c").label_count(), 3);
    }
}
