// The `signoff` package for browsers, bundlers and edge runtimes (ES module).
// Call `await init()` (it fetches `signoff_wasm_bg.wasm` next to this file) or
// `initSync({ module })` with a compiled `WebAssembly.Module` before anything else.
export * from "./signoff_wasm.js";
export { default } from "./signoff_wasm.js";
export { SignoffError } from "{{GLUE}}";
