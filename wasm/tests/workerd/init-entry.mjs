// The ways to initialise the package in workerd, one per path:
// `/init-sync` calls `initSync({ module })`, `/init-async` awaits
// `init({ module_or_path })`, with the `.wasm` imported as a module; each
// answers the error code an export gave before initialisation, and what it
// gives after. `/init-default` calls `init()` with no argument, which cannot
// work there, and answers how it failed.
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
    else if (path === "/init-default") {
      // No argument: workerd gives no URL to fetch the .wasm from.
      const failed = await init().then(
        () => "none",
        (error) => (error instanceof SignoffError ? `${error.code}: ${error.message}` : `${error?.name}: ${error?.message}`),
      );
      return Response.json({ before, failed, after: codeOf(() => validateRules(RULES)) });
    } else return new Response("no such path", { status: 404 });
    return Response.json({ before, problems: validateRules(RULES), isModule: wasm instanceof WebAssembly.Module });
  },
};
