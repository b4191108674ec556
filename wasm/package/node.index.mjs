// The `signoff` package for Node, as an ES module: the CommonJS entry
// (`index.cjs`) re-exported, so that `import` and `require` share one
// instance of the module.
import bindings from "./index.cjs";

{{EXPORTS}}
export const SignoffError = bindings.SignoffError;
export const initSync = bindings.initSync;
export const init = bindings.init;
export default bindings.init;
