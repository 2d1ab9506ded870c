//! The authoritative DNS front end. The only module that uses hickory types.
