// Times `previewChange` of the JavaScript package in Node, for
// docs/PERFORMANCE.md. Run after `cargo xtask js`:
//   node wasm/tests/bench/preview.mjs
// The native counterpart is `cargo run --release -p signoff-wasm --example preview_bench`,
// on the same input (preview-input.json).
import { readFileSync } from "node:fs";
import init, { CompiledRules, previewChange } from "signoff";

await init();
const { rules, change } = JSON.parse(readFileSync(new URL("./preview-input.json", import.meta.url), "utf8"));

/** The best of 5 rounds of `iterations` calls (the machine is shared), after a warm-up. */
function time(label, iterations, body) {
  for (let i = 0; i < iterations / 10; i++) body();
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) body();
    best = Math.min(best, Number(process.hrtime.bigint() - started) / iterations);
  }
  console.log(`${label}: ${(best / 1000).toFixed(2)} us per call (best of 5 x ${iterations} calls)`);
  return best;
}

const preview = previewChange(change, rules);
if (!preview.valid || preview.level !== "security") throw new Error(`unexpected preview: ${JSON.stringify(preview)}`);
const compiled = new CompiledRules(rules);
time("previewChange(change, compiled rules)", 100_000, () => previewChange(change, compiled));
time("previewChange(change, rules document)", 20_000, () => previewChange(change, rules));
time("JSON.stringify of change and rules (for scale)", 100_000, () => JSON.stringify(change) + JSON.stringify(rules));
