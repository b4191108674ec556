// The `signoff` package for Node, as CommonJS: wasm-bindgen's Node build,
// which compiles the package's one `.wasm` (`../web/signoff_wasm_bg.wasm`)
// synchronously when first required. The ES module entry (`index.mjs`) is
// this module too, so `import` and `require` share one instance: one
// `SignoffError` class, and caches and rules usable across both.
// `init()` and `initSync()` exist so that code written for the web build runs
// unchanged; they have nothing left to do.
"use strict";

const bindings = require("./signoff_wasm.js");
const { SignoffError } = require("{{GLUE}}");

/** Resolves at once: the module is instantiated when required. */
async function init() {
  return undefined;
}

/** Does nothing: the module is instantiated when required. */
function initSync() {
  return undefined;
}

{{EXPORTS}}
exports.SignoffError = SignoffError;
exports.init = init;
exports.initSync = initSync;
exports.default = init;
