// Types of the `signoff` package for Node: the declarations wasm-bindgen
// generates from the Rust types (with tsify), plus the no-op initialisation.
export * from "./signoff_wasm.js";
export default function init(): Promise<void>;
export function initSync(): void;
