// Initialisation of the web build (the entry of browsers, bundlers and edge
// runtimes), run in Node: every export throws a SignoffError with code
// `not_initialized` until `init()` or `initSync()` has succeeded, and then
// works. (The Node entry instantiates itself on import.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";

import * as web from "signoff/web";
import { rules } from "./helpers.mjs";

const wasmPath = createRequire(import.meta.url).resolve("signoff/web/signoff_wasm_bg.wasm");

/** The code of what `fn` threw, asserting that it threw a SignoffError. */
function thrownCode(fn) {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof web.SignoffError, `a SignoffError, not ${error}`);
    assert.match(error.message, /init\(\)/);
    return error.code;
  }
  return "nothing thrown";
}

test("before init, every export is not_initialized; after, it works", async () => {
  const calls = {
    ApprovalManager: () => new web.ApprovalManager({ rules, cache: new Map() }),
    MemoryCache: () => new web.MemoryCache(),
    CompiledRules: () => new web.CompiledRules(rules),
    validateChange: () => web.validateChange({}),
    previewChange: () => web.previewChange({}, rules),
    validateRules: () => web.validateRules(rules),
    validatePrincipal: () => web.validatePrincipal({ id: "alice" }),
    allowedActions: () => web.allowedActions({}, { id: "alice" }),
    mayReplaceRules: () => web.mayReplaceRules({ id: "alice" }),
    simulateRules: () => web.simulateRules(rules, []),
    verifyHistory: () => web.verifyHistory({ id: "r-1", history: [] }),
  };
  const guarded = Object.keys(web).filter((name) => !["default", "initSync", "SignoffError"].includes(name)).sort();
  assert.deepEqual(guarded, Object.keys(calls).sort(), "every export is tried");
  for (const [name, call] of Object.entries(calls)) {
    assert.equal(thrownCode(call), "not_initialized", name);
  }
  // A failed init leaves the guard in place.
  await assert.rejects(web.default({ module_or_path: new Uint8Array([0, 1, 2]) }));
  assert.equal(thrownCode(calls.validateRules), "not_initialized");

  await web.default({ module_or_path: await readFile(wasmPath) });
  assert.deepEqual(web.validateRules(rules), []);
  const compiled = new web.CompiledRules(rules);
  assert.ok(compiled instanceof web.CompiledRules, "instanceof holds through the guard");
  assert.equal(web.CompiledRules.name, "CompiledRules");
  assert.equal(web.previewChange.name, "previewChange");
  const manager = new web.ApprovalManager({ rules: compiled, cache: new web.MemoryCache() });
  assert.ok(manager instanceof web.ApprovalManager);
  assert.equal(manager.rulesDigest, compiled.digest);
  // initSync after init does nothing more.
  web.initSync({ module: await readFile(wasmPath) });
  assert.ok(web.validateChange({}).some((item) => item.code === "required"));
});
