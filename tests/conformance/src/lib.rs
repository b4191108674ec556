//! The conformance vectors of `tests/vectors/*.json` (format:
//! `tests/README.md`) behind one interface, in the manner of cedar-policy's
//! `cedar-testing`: this crate loads the files, expands the generators, runs
//! every case and scenario step through an [`Implementation`] and compares
//! the answers with the subset comparison; a runner only says how to call its
//! build of signoff.
//!
//! ```text
//! let report = signoff_conformance::run_vectors(&Native).await?;
//! report.verdict(MIN_CASES)?;
//! ```
//!
//! [`Native`] is the native core (a `Manager` over a `MemoryCache`); the
//! core's runner uses it as is and the wasmtime runner compares every answer
//! of the engine with it.

mod compare;
mod driver;
mod implementation;
mod native;
mod vectors;

pub use compare::{compare, matches, mismatch};
pub use driver::{Failure, Report, run, run_vectors};
pub use implementation::{
    Clock, ErrorBody, IdList, Ids, Implementation, Outcome, outcome, to_json,
};
pub use native::{Native, NativeStore};
pub use vectors::{VectorFile, expand, load, vectors_dir};
