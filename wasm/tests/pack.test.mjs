// What `npm pack` puts in the package: exactly the files users need (one
// `.wasm`, both Node entries, the examples, the declarations), a
// package.json whose every export exists and that links the repository, and
// a tarball that works once unpacked into a project's node_modules.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const PKG = fileURLToPath(new URL("../pkg/", import.meta.url));
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

const EXPECTED = [
  "README.md",
  "conformance.cjs",
  "conformance.d.cts",
  "conformance.d.ts",
  "conformance.js",
  "examples/cloudflare/worker.mjs",
  "examples/cloudflare/wrangler.toml",
  "examples/edge/http.mjs",
  "examples/edge/kv.mjs",
  "examples/edge/worker.mjs",
  "examples/map-cache.mjs",
  "node/index.cjs",
  "node/index.d.mts",
  "node/index.d.ts",
  "node/index.mjs",
  "node/package.json",
  "node/signoff_wasm.d.ts",
  "node/signoff_wasm.js",
  "node/snippets/*/src/js/glue.js",
  "package.json",
  "wasm.d.ts",
  "web/index.d.ts",
  "web/index.js",
  "web/indexeddb.d.ts",
  "web/indexeddb.js",
  "web/signoff_wasm.d.ts",
  "web/signoff_wasm.js",
  "web/signoff_wasm_bg.wasm",
  "web/snippets/*/src/js/glue.js",
];

let packed;
let scratch;
before(async () => {
  scratch = mkdtempSync(join(tmpdir(), "signoff-pack-"));
  const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", scratch], { cwd: PKG });
  [packed] = JSON.parse(stdout);
});
after(() => rmSync(scratch, { recursive: true, force: true }));

test("the tarball holds exactly the package's files", () => {
  const files = packed.files.map((file) => file.path.replace(/snippets\/[^/]+\//, "snippets/*/")).sort();
  assert.deepEqual(files, [...EXPECTED].sort());
  assert.equal(packed.files.filter((file) => file.path.endsWith(".wasm")).length, 1, "one .wasm");
});

test("package.json links the repository and every export exists", () => {
  const manifest = JSON.parse(readFileSync(join(PKG, "package.json"), "utf8"));
  const cargo = readFileSync(join(ROOT, "Cargo.toml"), "utf8");
  const repository = /^repository\s*=\s*"([^"]+)"/m.exec(cargo)[1];
  assert.equal(manifest.repository.url, repository);
  assert.equal(manifest.homepage, repository);
  const readme = readFileSync(join(PKG, "README.md"), "utf8");
  assert.ok(readme.includes(repository), "the README links the repository");
  assert.ok(!readme.includes("{{") && !JSON.stringify(manifest).includes("{{"), "no placeholder is left");

  const targets = [];
  const walk = (value) => {
    if (typeof value === "string") targets.push(value);
    else for (const inner of Object.values(value)) walk(inner);
  };
  walk(manifest.exports);
  const paths = new Set(packed.files.map((file) => `./${file.path}`));
  for (const target of [...targets, `./${manifest.main.replace(/^\.\//, "")}`, `./${manifest.types.replace(/^\.\//, "")}`]) {
    if (target.includes("*")) continue;
    assert.ok(paths.has(target), `${target} is in the tarball`);
  }
});

test("unpacked into a project, it imports, requires and runs its examples", async () => {
  const project = join(scratch, "project");
  const modules = join(project, "node_modules", "signoff");
  mkdirSync(modules, { recursive: true });
  await run("tar", ["-xzf", join(scratch, packed.filename), "-C", modules, "--strip-components=1"]);
  writeFileSync(join(project, "package.json"), '{ "type": "module" }\n');

  const esm = await run(
    process.execPath,
    ["--input-type=module", "-e", 'import init, { validateRules } from "signoff"; await init(); console.log(JSON.stringify(validateRules({})))'],
    { cwd: project },
  );
  assert.match(esm.stdout, /"levels"/);
  const cjs = await run(
    process.execPath,
    ["--no-experimental-require-module", "-e", 'const { validateRules } = require("signoff"); console.log(JSON.stringify(validateRules({})))'],
    { cwd: project },
  );
  assert.equal(cjs.stdout, esm.stdout);
  const example = await run(process.execPath, [join(modules, "examples", "map-cache.mjs")], { cwd: project });
  assert.match(example.stdout, /after carol: approved/);
});
