// The `signoff` package for browsers, bundlers and edge runtimes (ES module).
// Call `await init()` (it fetches `signoff_wasm_bg.wasm` next to this file),
// `await init({ module_or_path })` or `initSync({ module })` with a compiled
// `WebAssembly.Module` (workerd: the `.wasm` imported as a module) before
// anything else. Until then every export throws a `SignoffError` with code
// `not_initialized`, where wasm-bindgen's glue would throw a `TypeError`.
import * as glue from "./signoff_wasm.js";
import { SignoffError } from "{{GLUE}}";

export { SignoffError };

let ready = false;

function ensureReady() {
  if (!ready) {
    throw new SignoffError(
      "not_initialized",
      "signoff is not initialised: await init() (or call initSync({ module })) first",
    );
  }
}

/** A class whose constructor first checks that the module is initialised. */
function guardClass(Class) {
  return new Proxy(Class, {
    construct(target, args, newTarget) {
      ensureReady();
      return Reflect.construct(target, args, newTarget);
    },
  });
}

/** A function that first checks that the module is initialised. */
function guardFunction(fn) {
  const guarded = {
    [fn.name](...args) {
      ensureReady();
      return fn.apply(this, args);
    },
  }[fn.name];
  return guarded;
}

/** Whether the `.wasm` next to this module has a URL (not so in workerd). */
function wasmUrlResolves() {
  try {
    new URL("signoff_wasm_bg.wasm", import.meta.url);
    return true;
  } catch {
    return false;
  }
}

/**
 * Instantiates the WebAssembly module: with no argument it fetches the
 * `.wasm` next to this file; `{ module_or_path }` takes a URL, a `Response`,
 * bytes or a compiled `WebAssembly.Module`. Calling it again does nothing.
 */
export default async function init(options) {
  if (options === undefined && !wasmUrlResolves()) {
    throw new SignoffError(
      "not_initialized",
      "this runtime gives the package no URL to fetch its .wasm from (workerd does not): " +
        "import signoff/web/signoff_wasm_bg.wasm as a module and pass it, initSync({ module }) or init({ module_or_path })",
    );
  }
  const exports = await glue.default(options);
  ready = true;
  return exports;
}

/** Instantiates the module synchronously from `{ module }` (bytes or a `WebAssembly.Module`). */
export function initSync(options) {
  const exports = glue.initSync(options);
  ready = true;
  return exports;
}

{{EXPORTS}}
