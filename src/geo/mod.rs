//! Client location: MaxMind databases plus CIDR overrides.
