// The package's WebAssembly, as a runtime that imports `.wasm` files as
// modules gives it (workerd and Cloudflare Workers: a `CompiledWasm` module;
// bundlers configured to do the same). Pass it to `initSync({ module })` or
// `init({ module_or_path })`.
declare const module: WebAssembly.Module;
export default module;
