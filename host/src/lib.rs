//! # signoff-host
//!
//! The native signoff server: it runs the core's WebAssembly component in
//! wasmtime, serves the component's cache imports from Redis (or an embedded
//! in-memory cache), and exposes the HTTP API and the policy editor.

pub mod audit_cli;
pub mod cache;
pub mod engine;
pub mod outbound;
pub mod server;
