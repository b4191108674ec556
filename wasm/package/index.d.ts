// Types of the `signoff` package: the declarations wasm-bindgen generates
// from the Rust types (with tsify), plus the initialisation functions.
export * from "./signoff_wasm.js";
export { default } from "./signoff_wasm.js";
