// The package in bundlers: webpack 5, Vite and esbuild each build a tiny app
// (wasm/tests/bundlers/) for the browser, and the bundle then runs in Node
// made to look like a page served from the output folder (bundlers/page.mjs).
// Each must emit the package's one `.wasm` unchanged and find it at run time.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";

import * as esbuild from "esbuild";
import * as vite from "vite";
import webpack from "webpack";

const run = promisify(execFile);
const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const packageWasm = readFileSync(createRequire(import.meta.url).resolve("signoff/web/signoff_wasm_bg.wasm"));

const scratch = mkdtempSync(join(tmpdir(), "signoff-bundlers-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** The emitted `.wasm` files of `dir` (recursively): each must be the package's. */
function emittedWasm(dir) {
  const found = readdirSync(dir, { recursive: true }).filter((name) => String(name).endsWith(".wasm"));
  for (const name of found) {
    assert.ok(readFileSync(join(dir, String(name))).equals(packageWasm), `${name} is the package's .wasm`);
  }
  return found;
}

/** Runs `script` in Node as a page at `pageDir`; answers its JSON output. */
async function runBundle(script, pageDir) {
  const { stdout } = await run(process.execPath, ["--import", here("./bundlers/page.mjs"), script], {
    env: { ...process.env, SIGNOFF_PAGE_URL: pathToFileURL(join(pageDir, "index.html")).href },
    timeout: 30_000,
  });
  return JSON.parse(stdout.trim().split("\n").at(-1));
}

test("webpack 5 emits the .wasm as an asset and init() finds it", async () => {
  const out = join(scratch, "webpack");
  const stats = await new Promise((resolve, reject) => {
    webpack(
      {
        mode: "production",
        target: "web",
        context: here("./bundlers/"),
        entry: "./app.mjs",
        output: { path: out, filename: "main.js", publicPath: "" },
        performance: { hints: false },
        infrastructureLogging: { level: "error" },
      },
      (error, result) => (error ? reject(error) : resolve(result)),
    );
  });
  assert.ok(!stats.hasErrors(), stats.toString("errors-only"));
  assert.ok(!stats.hasWarnings(), stats.toString("errors-warnings"));
  assert.equal(emittedWasm(out).length, 1);
  assert.deepEqual(await runBundle(join(out, "main.js"), out), { before: "not_initialized", level: "security" });
});

test("Vite emits the .wasm as an asset and init() finds it", async () => {
  const out = join(scratch, "vite");
  await vite.build({
    root: here("./bundlers/"),
    base: "./",
    logLevel: "silent",
    configFile: false,
    resolve: { preserveSymlinks: false },
    build: { outDir: out, emptyOutDir: true, assetsInlineLimit: 0, modulePreload: { polyfill: false } },
  });
  assert.equal(emittedWasm(out).length, 1);
  const scripts = readdirSync(join(out, "assets")).filter((name) => name.endsWith(".js"));
  assert.equal(scripts.length, 1, `one script: ${scripts}`);
  assert.deepEqual(await runBundle(join(out, "assets", scripts[0]), out), { before: "not_initialized", level: "security" });
});

test("esbuild bundles with the .wasm as a file", async () => {
  const out = join(scratch, "esbuild");
  const result = await esbuild.build({
    entryPoints: [here("./bundlers/esbuild-app.mjs")],
    bundle: true,
    format: "esm",
    platform: "browser",
    outdir: out,
    loader: { ".wasm": "file" },
    logLevel: "silent",
  });
  assert.deepEqual(result.warnings, []);
  assert.equal(emittedWasm(out).length, 1);
  assert.deepEqual(await runBundle(join(out, "esbuild-app.js"), out), { level: "peer" });
});
