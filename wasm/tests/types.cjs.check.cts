// Type-checked by `tsc --noEmit` (tsconfig.json): the CommonJS entry's
// declarations, as `require("signoff")` sees them.
import signoff = require("signoff");
import conformance = require("signoff/conformance");

export async function main(): Promise<boolean> {
  await signoff.init();
  signoff.initSync();
  const manager = new signoff.ApprovalManager({
    rules: { levels: [{ name: "peer", ttlSeconds: 60, stages: [] }], defaultLevel: "peer" },
    cache: new signoff.MemoryCache(),
  });
  const problems: signoff.Violation[] = signoff.validateChange(JSON.parse("{}") as unknown);
  // @ts-expect-error: a principal has roles
  await manager.create({}, { id: "alice" });
  const report = await conformance.checkCache(new signoff.MemoryCache() as unknown as signoff.Cache);
  return problems.length === 0 && report.ok;
}
