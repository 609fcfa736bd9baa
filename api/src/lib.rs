//! Sextant's API types and the rules that go with them.
//!
//! This crate does no IO (no tokio, no HTTP): it holds what the API server, the controllers
//! and the node agent must agree on about objects, so that each rule is written once and
//! unit-tested without a server. Filled in by the API server issue (#3).
