
/**
 * Instantiates the WebAssembly module: with no argument it fetches the
 * `.wasm` next to the package's `web/index.js`; `{ module_or_path }` takes a
 * URL, a `Response`, bytes or a compiled `WebAssembly.Module`.
 */
export { default } from "./signoff_wasm.js";
