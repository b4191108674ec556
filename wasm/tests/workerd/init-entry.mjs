// The ways to initialise the package in workerd, one per path:
// `/init-sync` calls `initSync({ module })`, `/init-async` awaits
// `init({ module_or_path })`, with the `.wasm` imported as a module. Each
// answers the error code an export gave before initialisation, and what it
// gives after.
import wasm from "signoff/web/signoff_wasm_bg.wasm";
import init, { SignoffError, initSync, validateRules } from "signoff";

const RULES = {
  levels: [{ name: "peer", ttlSeconds: 60, stages: [] }],
  defaultLevel: "peer",
};

function codeOf(fn) {
  try {
    fn();
    return "none";
  } catch (error) {
    return error instanceof SignoffError ? error.code : `${error?.name}: ${error?.message}`;
  }
}

export default {
  async fetch(request) {
    const before = codeOf(() => validateRules(RULES));
    const path = new URL(request.url).pathname;
    if (path === "/init-sync") initSync({ module: wasm });
    else if (path === "/init-async") await init({ module_or_path: wasm });
    else return new Response("no such path", { status: 404 });
    return Response.json({ before, problems: validateRules(RULES), isModule: wasm instanceof WebAssembly.Module });
  },
};
