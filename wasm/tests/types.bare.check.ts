// Type-checked by `tsc -p tsconfig.bare.json`: a browser project (lib es2022
// and dom, bundler resolution) with neither @types/node nor the
// `esnext.disposable` library, where the classes' `[Symbol.dispose]()` must
// still type-check.
import init, { ApprovalManager, CompiledRules, MemoryCache, SignoffError, previewChange } from "signoff";
import type { Rules, SignoffErrorCode } from "signoff";
import wasm from "signoff/web/signoff_wasm_bg.wasm";

const rules: Rules = { levels: [{ name: "peer", ttlSeconds: 60, stages: [] }], defaultLevel: "peer" };

export async function start(): Promise<void> {
  await init({ module_or_path: wasm });
  const compiled = new CompiledRules(rules);
  const cache = new MemoryCache();
  const manager = new ApprovalManager({ rules: compiled, cache });
  compiled[Symbol.dispose]();
  cache[Symbol.dispose]();
  manager[Symbol.dispose]();
  // @ts-expect-error: Symbol.dispose is a symbol, not a string
  const name: string = Symbol.dispose;
  try {
    previewChange(JSON.parse("{}") as unknown, rules);
  } catch (error) {
    if (error instanceof SignoffError) {
      const code: SignoffErrorCode = error.code;
      console.log(code, name);
    }
  }
}
