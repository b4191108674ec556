// Every JavaScript and TypeScript example of the repository's documentation
// runs (or type-checks) as written. The fenced blocks of the Markdown files
// below are extracted:
//
// - ```js: run as an ES module by Node, where `signoff` is the built
//   package; it must exit with status 0, and where a line reads
//   `console.log(...); // VALUE` with VALUE a JSON value, what it prints must
//   be VALUE (a string without its quotes): the printed lines, in order, are
//   exactly those values.
// - ```ts: type-checked by `tsc --strict` against the package's declarations.
// - ```js excerpt=PATH (or ```ts excerpt=PATH): an excerpt of a file that
//   its own test runs (an example for another runtime, such as a browser or
//   workerd); it must appear in that file line for line.
//
// Other languages (sh, json...) are not checked here.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const TESTS = fileURLToPath(new URL("./", import.meta.url));

/** The documents whose examples are checked. */
const DOCUMENTS = [
  "README.md",
  "wasm/README.md",
  "wasm/package/README.md",
  "www/README.md",
  "tests/README.md",
  ...readdirSync(join(ROOT, "docs"))
    .filter((name) => name.endsWith(".md"))
    .map((name) => `docs/${name}`),
];

/** The fenced blocks of `text`: `{ language, attributes, code, line }`. */
export function fencedBlocks(text) {
  const blocks = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\S*)\s*(.*)$/.exec(lines[i]);
    if (!open) continue;
    const [, indent, language, info] = open;
    const body = [];
    let j = i + 1;
    while (j < lines.length && !/^\s*```\s*$/.test(lines[j])) {
      body.push(lines[j].startsWith(indent) ? lines[j].slice(indent.length) : lines[j]);
      j++;
    }
    const attributes = Object.fromEntries(
      info
        .split(/\s+/)
        .filter(Boolean)
        .map((pair) => pair.split("=")),
    );
    blocks.push({ language, attributes, code: `${body.join("\n")}\n`, line: i + 1 });
    i = j;
  }
  return blocks;
}

const blocks = DOCUMENTS.flatMap((document) =>
  fencedBlocks(readFileSync(join(ROOT, document), "utf8"))
    .filter((block) => ["js", "javascript", "mjs", "ts", "typescript"].includes(block.language))
    .map((block) => ({ ...block, document, name: `${document}:${block.line}` })),
);

/** The outputs a block announces: `console.log(...); // VALUE` lines. */
export function announcedOutput(code) {
  const expected = [];
  for (const line of code.split("\n")) {
    const match = /console\.log\(.*\);\s*\/\/\s*(.+?)\s*$/.exec(line);
    if (!match) continue;
    let value;
    try {
      value = JSON.parse(match[1]);
    } catch {
      continue; // an ordinary comment
    }
    expected.push(typeof value === "string" ? value : JSON.stringify(value));
  }
  return expected;
}

/** A scratch folder where `signoff` (and the test dependencies) resolve. */
function scratch() {
  const dir = mkdtempSync(join(tmpdir(), "signoff-doctest-"));
  symlinkSync(join(TESTS, "node_modules"), join(dir, "node_modules"), "dir");
  writeFileSync(join(dir, "package.json"), '{ "type": "module" }\n');
  return dir;
}

test("the documentation has JavaScript examples to check", () => {
  const runnable = blocks.filter((block) => !block.attributes.excerpt);
  assert.ok(runnable.length >= 6, `only ${runnable.length} runnable blocks found`);
  for (const document of ["README.md", "wasm/README.md", "wasm/package/README.md"]) {
    assert.ok(
      runnable.some((block) => block.document === document),
      `${document} has a runnable example`,
    );
  }
});

for (const block of blocks.filter((block) => block.attributes.excerpt)) {
  test(`${block.name} is an excerpt of ${block.attributes.excerpt}`, () => {
    const source = readFileSync(join(ROOT, block.attributes.excerpt), "utf8");
    const normalise = (text) =>
      text
        .split("\n")
        .map((line) => line.trim())
        .filter(Boolean)
        .join("\n");
    assert.ok(
      normalise(source).includes(normalise(block.code)),
      `the block at ${block.name} is not in ${block.attributes.excerpt} as written`,
    );
  });
}

for (const block of blocks.filter((block) => !block.attributes.excerpt && ["js", "javascript", "mjs"].includes(block.language))) {
  test(`${block.name} runs`, async () => {
    const dir = scratch();
    try {
      const file = join(dir, "example.mjs");
      writeFileSync(file, block.code);
      const { stdout } = await run(process.execPath, [file], { cwd: dir, timeout: 30_000 }).catch((error) => {
        assert.fail(`${block.name} failed:\n${error.stderr || error.message}`);
      });
      const expected = announcedOutput(block.code);
      if (expected.length > 0) {
        assert.deepEqual(stdout.trimEnd().split("\n"), expected, `what ${block.name} prints`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

const typescript = blocks.filter((block) => !block.attributes.excerpt && ["ts", "typescript"].includes(block.language));
if (typescript.length > 0) {
  test(`the ${typescript.length} TypeScript examples type-check`, async () => {
    const dir = scratch();
    try {
      const files = typescript.map((block, i) => {
        const file = join(dir, `example-${i}.ts`);
        // Each block is a module of its own.
        writeFileSync(file, `${block.code}\nexport {};\n`);
        return { file, block };
      });
      writeFileSync(
        join(dir, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: { target: "es2022", module: "nodenext", moduleResolution: "nodenext", strict: true, noEmit: true, types: [] },
          include: files.map(({ file }) => file),
        }),
      );
      const tsc = join(TESTS, "node_modules/typescript/bin/tsc");
      await run(process.execPath, [tsc, "-p", dir], { cwd: dir, timeout: 60_000 }).catch((error) => {
        let output = error.stdout || error.message;
        for (const { file, block } of files) output = output.replaceAll(file, block.name);
        assert.fail(`the TypeScript examples do not type-check:\n${output}`);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test("the package README names every export, method and getter", async () => {
  const readme = readFileSync(join(ROOT, "wasm/package/README.md"), "utf8");
  const api = await import("signoff");
  const names = Object.keys(api).filter((name) => name !== "default");
  for (const Class of [api.ApprovalManager, api.CompiledRules, api.MemoryCache]) {
    for (const name of Object.getOwnPropertyNames(Class.prototype)) {
      if (name !== "constructor" && !name.startsWith("__")) names.push(`${Class.name}.${name}`);
    }
  }
  // A name counts as documented inside inline code: `name(`, `name `, `.name`...
  const prose = readme.replace(/^```[^\n]*\n[\s\S]*?^```$/gm, "");
  const inCode = [...prose.matchAll(/`([^`]+)`/g)].map((match) => match[1]);
  const missing = names.filter((qualified) => {
    const name = qualified.split(".").pop();
    return !inCode.some((code) => new RegExp(`(^|[^\\w])${name}([^\\w]|$)`).test(code));
  });
  assert.deepEqual(missing, [], "named nowhere in wasm/package/README.md");
});

test("every page on caches warns that commits must be atomic and that Workers KV is not", () => {
  for (const document of ["wasm/package/README.md", "wasm/README.md", "docs/CONTRACT.md", "docs/ARCHITECTURE.md"]) {
    const text = readFileSync(join(ROOT, document), "utf8").replace(/\s+/g, " ");
    assert.match(text, /Workers KV/, `${document} names Workers KV`);
    assert.match(text, /atomic/i, `${document} asks for atomic commits`);
    assert.match(text, /Durable Object/, `${document} shows the Durable Object cache`);
  }
});
