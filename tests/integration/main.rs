//! Integration tests: one binary, one module per topic.

mod probe;
mod probe_detection;
