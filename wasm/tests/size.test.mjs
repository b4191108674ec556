// The size of the package's WebAssembly, raw and gzipped (level 9), printed
// for docs/PERFORMANCE.md and held to a budget so that growth is noticed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

/** Bytes gzipped: the measured size (163 KB, see PERFORMANCE.md) plus about 5%. */
const GZIP_BUDGET = 172_000;

for (const flavour of ["web", "node"]) {
  test(`the ${flavour} .wasm stays within ${GZIP_BUDGET} bytes gzipped`, () => {
    const wasm = readFileSync(new URL(`../pkg/${flavour}/signoff_wasm_bg.wasm`, import.meta.url));
    const gzipped = gzipSync(wasm, { level: 9 }).length;
    console.log(`${flavour}: ${wasm.length} bytes raw, ${gzipped} bytes gzipped`);
    assert.ok(WebAssembly.validate(wasm), "a valid module");
    assert.ok(gzipped <= GZIP_BUDGET, `${gzipped} bytes gzipped is over the budget`);
  });
}
