// The runnable examples of wasm/README.md, run as a user would run them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";

const run = promisify(execFile);

test("node wasm/examples/map-cache.mjs files a change and approves it", async () => {
  const script = fileURLToPath(new URL("../examples/map-cache.mjs", import.meta.url));
  const { stdout } = await run(process.execPath, [script]);
  const lines = stdout.trim().split("\n");
  assert.match(lines[0], /^[0-9a-f-]{36}: security, pending at peer$/);
  assert.deepEqual(lines.slice(1), [
    "after bob: pending at security",
    "after carol: approved",
    "approved requests: 1",
  ]);
});
