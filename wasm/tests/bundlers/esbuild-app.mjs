// The tiny app that esbuild bundles (wasm/tests/bundlers.test.mjs), with
// `--loader:.wasm=file`: the import answers the emitted file's path,
// relative to the bundle.
import wasmUrl from "signoff/web/signoff_wasm_bg.wasm";
import init, { previewChange } from "signoff";

await init({ module_or_path: new URL(wasmUrl, import.meta.url) });

const rules = {
  levels: [{ name: "peer", ttlSeconds: 3600, stages: [{ name: "review", requiredApprovals: 1 }] }],
  defaultLevel: "peer",
};
const change = {
  policyId: "iam/admins",
  policyType: "iam",
  changeKind: "create",
  title: "Add bob",
  justification: "Bob joins the on-call rotation.",
};
console.log(JSON.stringify({ level: previewChange(change, rules).level }));
