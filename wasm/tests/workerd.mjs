// Running code in workerd (the runtime of Cloudflare Workers) through
// miniflare, the way wrangler deploys it: the worker bundled by esbuild into
// one ES module, with every `.wasm` import left as a separate `CompiledWasm`
// module.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { build } from "esbuild";
import { Miniflare } from "miniflare";

/** The compatibility date the examples are written for. */
export const COMPATIBILITY_DATE = "2026-04-01";

/**
 * Bundles `entry` as wrangler would: `cloudflare:*` left to the runtime,
 * `.wasm` imports kept as imports of modules listed beside the bundle.
 * Answers the modules of a Miniflare worker.
 */
export async function bundleWorker(entry) {
  const wasmFiles = new Map(); // module name -> path
  const compiledWasm = {
    name: "compiled-wasm",
    setup(esbuild) {
      esbuild.onResolve({ filter: /\.wasm$/ }, async (args) => {
        if (args.pluginData === "compiled-wasm") return undefined;
        const resolved = await esbuild.resolve(args.path, {
          kind: args.kind,
          importer: args.importer,
          resolveDir: args.resolveDir,
          pluginData: "compiled-wasm",
        });
        if (resolved.errors.length > 0) return { errors: resolved.errors };
        const name = resolved.path.split("/").pop();
        wasmFiles.set(name, resolved.path);
        return { path: `./${name}`, external: true };
      });
    },
  };
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: "esm",
    platform: "neutral",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["module", "main"],
    external: ["cloudflare:*"],
    plugins: [compiledWasm],
    logLevel: "silent",
  });
  const dir = mkdtempSync(join(tmpdir(), "signoff-workerd-"));
  const modules = [{ type: "ESModule", path: join(dir, "worker.mjs"), contents: result.outputFiles[0].text }];
  for (const [name, path] of wasmFiles) {
    modules.push({ type: "CompiledWasm", path: join(dir, name), contents: readFileSync(path) });
  }
  return { modules, modulesRoot: dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A Miniflare instance running `entry` with `options` (bindings, Durable Objects...). */
export async function startWorker(entry, options = {}) {
  const { modules, modulesRoot, cleanup } = await bundleWorker(entry);
  const mf = new Miniflare({ modules, modulesRoot, compatibilityDate: COMPATIBILITY_DATE, ...options });
  await mf.ready;
  return {
    mf,
    async dispose() {
      await mf.dispose();
      cleanup();
    },
  };
}
