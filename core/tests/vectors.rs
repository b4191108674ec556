//! Runs every conformance vector of `tests/vectors/*.json` through the native
//! core: [`Native`], a `Manager` over a `MemoryCache`, driven by the shared
//! runner of `signoff-conformance` with `futures::executor::block_on`. The
//! format is described in `tests/README.md`; the JS and wasmtime runners read
//! the same files.

use futures::executor::block_on;
use signoff_conformance::{Native, run_vectors};

/// The corpus must never shrink below this many cases.
const MIN_CASES: usize = 80;

#[test]
fn every_vector_passes_on_the_native_core() {
    let report = block_on(run_vectors(&Native)).unwrap_or_else(|why| panic!("{why}"));
    eprintln!("{} vectors ran", report.cases);
    if let Err(why) = report.verdict(MIN_CASES) {
        panic!("{why}");
    }
}
