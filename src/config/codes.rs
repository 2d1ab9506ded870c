//! Country and continent codes.

/// Continent codes as MaxMind uses them.
pub const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

/// The 27 member states of the European Union (ISO 3166-1 alpha-2).
pub const EU_MEMBERS: [&str; 27] = [
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT",
    "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
];

/// True when `code` is an EU member state.
pub fn is_eu_member(code: &str) -> bool {
    EU_MEMBERS.contains(&code)
}

/// True when `code` looks like an ISO 3166-1 alpha-2 code (two upper-case letters).
pub fn is_country_code(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// True for a continent code.
pub fn is_continent_code(code: &str) -> bool {
    CONTINENTS.contains(&code)
}

/// True when `code` looks like an ISO 3166-2 subdivision code such as `US-CA` or `GB-ENG`.
pub fn is_subdivision_code(code: &str) -> bool {
    match code.split_once('-') {
        Some((c, s)) => {
            is_country_code(c)
                && (1..=3).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        }
        None => false,
    }
}
