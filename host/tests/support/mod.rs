//! Helpers shared by the host's integration tests.
//!
//! - [`redis`]: a real `redis-server` (or a 3-master Redis Cluster) started
//!   on free loopback ports for one test and stopped when dropped;
//! - [`suite`]: the engine suite that runs unchanged over every cache backend.
//!
//! Each test crate includes this module with `mod support;` and uses part of
//! it.

#![allow(
    dead_code,
    reason = "each test crate uses only part of the shared helpers"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a broken fixture must fail the test loudly"
)]

pub mod redis;
pub mod suite;
