//! # signoff-wasm
//!
//! The signoff core compiled to WebAssembly, twice, with no logic of its own:
//!
//! - feature `js`: the wasm-bindgen package for JavaScript (browsers, Node,
//!   edge functions), whose cache is a JavaScript object;
//! - feature `component`: the WebAssembly component (WIT in `wasm/wit/`) that
//!   the native host runs in wasmtime, whose cache is served by the host.
//!
//! Built natively with neither feature, the crate is empty.

#[cfg(feature = "component")]
mod component;
#[cfg(feature = "js")]
mod js;
