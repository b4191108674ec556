// The tiny app that webpack and Vite bundle (wasm/tests/bundlers.test.mjs):
// `init()` with no argument, so the bundler must emit the `.wasm` and point
// the package at it.
import init, { SignoffError, previewChange, validateRules } from "signoff";

const rules = {
  levels: [
    { name: "peer", ttlSeconds: 3600, stages: [{ name: "review", requiredApprovals: 1 }] },
    { name: "security", ttlSeconds: 3600, stages: [{ name: "security", requiredApprovals: 2 }] },
  ],
  defaultLevel: "peer",
  rules: [{ name: "prod", when: { environments: ["prod"] }, level: "security" }],
};
const change = {
  policyId: "iam/admins",
  policyType: "iam",
  changeKind: "update",
  environment: "prod",
  title: "Add bob",
  justification: "Bob joins the on-call rotation.",
};

let before;
try {
  validateRules(rules);
} catch (error) {
  before = error instanceof SignoffError ? error.code : String(error);
}
init().then(() => {
  console.log(JSON.stringify({ before, level: previewChange(change, rules).level }));
});
