// The `signoff` package for Node (ES module over wasm-bindgen's CommonJS
// build, which compiles the `.wasm` synchronously when first imported).
// `init()` and `initSync()` exist so that code written for the web build runs
// unchanged; they have nothing left to do.
import { createRequire } from "node:module";

export { SignoffError } from "{{GLUE}}";

const require = createRequire(import.meta.url);
const bindings = require("./signoff_wasm.js");

{{EXPORTS}}
/** Resolves at once: the module is instantiated on import. */
export default async function init() {
  return undefined;
}

/** Does nothing: the module is instantiated on import. */
export function initSync() {
  return undefined;
}
