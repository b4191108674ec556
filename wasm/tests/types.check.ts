// Type-checked by `tsc --noEmit` (see tsconfig.json): uses every export of the
// package with the declared types, so that a declaration that drifts to `any`
// or loses a field fails `cargo xtask js`.
import init, {
  ApprovalManager,
  initSync,
  CompiledRules,
  MemoryCache,
  SignoffError,
  previewChange,
  validateChange,
  validateRules,
} from "signoff";
import type {
  ApprovalRequest,
  Cache,
  CacheBatch,
  CacheEntry,
  IndexChange,
  CommitResult,
  ErrorCode,
  ExpireReport,
  IndexEntry,
  Page,
  PolicyChange,
  Preview,
  Principal,
  Rules,
  RulesWarning,
  SignoffErrorCode,
  Status,
  Violation,
} from "signoff";
import wasm from "signoff/web/signoff_wasm_bg.wasm";
import { checkCache } from "signoff/conformance";
import { IndexedDbCache } from "signoff/indexeddb";
import type { ConformanceReport } from "signoff/conformance";

const rules: Rules = {
  levels: [
    { name: "peer", ttlSeconds: 86400, stages: [{ name: "review", requiredApprovals: 1, eligibleRoles: ["engineer"] }] },
  ],
  defaultLevel: "peer",
  rules: [{ name: "prod", when: { environments: ["prod"], riskScoreAtLeast: 50 }, level: "peer" }],
  rateLimit: { requests: 10, perSeconds: 60 },
};
const change: PolicyChange = {
  policyId: "iam/admins",
  policyType: "iam",
  changeKind: "update",
  title: "Add bob",
  justification: "Bob joins the on-call rotation.",
  metadata: { ticket: "SEC-1", count: 2, urgent: false },
  environment: null,
};
const alice: Principal = { id: "alice", roles: ["engineer"] };

// A cache whose methods answer synchronously...
const store = new Map<string, CacheEntry>();
const syncCache: Cache = {
  get: (key: string) => store.get(key) ?? null,
  commit: (batch: CacheBatch) => batch.checks.length >= 0,
  range: (_index: string, _after: IndexEntry | null, _limit: number): IndexEntry[] => [],
};
// ...and one whose methods answer with Promises.
const asyncCache: Cache = {
  get: async (key) => store.get(key) ?? null,
  commit: async (): Promise<CommitResult> => "conflict",
  range: async () => [],
};

async function main(): Promise<void> {
  await init();
  const manager = new ApprovalManager({ rules, cache: new MemoryCache({ clock: Date.now }), clock: () => 0 });
  const other = new ApprovalManager({ rules, cache: syncCache, ids: () => crypto.randomUUID() });
  const third = new ApprovalManager({ rules, cache: asyncCache });
  const created: ApprovalRequest = await manager.create(change, alice, { idempotencyKey: "k-1" });
  const found: ApprovalRequest | null = await other.get(created.id);
  const approved: ApprovalRequest = await manager.approve(created.id, { id: "bob", roles: [] }, { comment: "ok" });
  const rejected: ApprovalRequest = await manager.reject(created.id, alice, { reason: "no" });
  const cancelled: ApprovalRequest = await manager.cancel(created.id, alice);
  const commented: ApprovalRequest = await third.comment(created.id, alice, { text: "hi" });
  const status: Status = approved.status;
  const page: Page = await manager.list({ status, policyType: "iam", limit: 50 });
  const next: string | undefined = page.nextCursor;
  const report: ExpireReport = await manager.expireDue({ limit: 10 });
  const preview: Preview = previewChange(change, rules);
  const level: string | null = preview.level;
  const problems: Violation[] = validateChange(change, rules).concat(validateRules(rules));
  const digest: string = manager.rulesDigest;
  const compiled = new CompiledRules(rules);
  const same: Preview = previewChange(change, compiled);
  const fromCompiled = new ApprovalManager({ rules: compiled, cache: syncCache });
  const document: Rules = compiled.toJSON();
  console.log(same.valid, fromCompiled.rulesDigest === compiled.digest, document.defaultLevel);
  try {
    await manager.get("unknown");
  } catch (error) {
    if (error instanceof SignoffError) {
      const code: SignoffErrorCode = error.code;
      const fromCore: ErrorCode = code;
      const beforeInit: ErrorCode = "not_initialized";
      // @ts-expect-error: not a code
      if (error.code === "not_a_code") console.log(fromCore, beforeInit);
      const details = error.details;
      if (details !== undefined && !Array.isArray(details)) {
        const wait: number = details.retryAfterSeconds;
        console.log(code, wait);
      }
    }
  }
  console.log(found?.history.length, rejected.rejection?.reason, cancelled.stage, commented.version);
  console.log(next, report.expired, level, problems.length, digest, preview.explanation?.summary);
}

// Untrusted JSON goes to validateChange and previewChange without a cast...
function untrusted(text: string): void {
  const parsed: unknown = JSON.parse(text);
  const problems: Violation[] = validateChange(parsed);
  const preview: Preview = previewChange(parsed, rules);
  // @ts-expect-error: ...but rules stay typed
  previewChange(parsed, parsed);
  // @ts-expect-error: and previewChange needs rules
  previewChange(parsed);
  console.log(problems, preview);
}

// The `.wasm` import is a compiled module, for initSync and init.
function fromModule(): Promise<unknown> {
  const module: WebAssembly.Module = wasm;
  // @ts-expect-error: it is not bytes
  const bytes: Uint8Array = wasm;
  initSync({ module });
  console.log(bytes);
  return init({ module_or_path: wasm });
}

// The conformance check takes any cache.
async function conformance(): Promise<boolean> {
  const report: ConformanceReport = await checkCache(syncCache, { concurrency: 8 });
  // @ts-expect-error: a cache needs get, commit and range
  await checkCache({ get: () => null });
  return report.ok && report.checks.every((check) => check.ok || typeof check.message === "string");
}

void main;
void untrusted;
void fromModule;
void conformance;

// validateRules: problems alone without principals; warnings may follow with them.
{
  const alone: Violation[] = validateRules({});
  const judged: Array<Violation | RulesWarning> = validateRules({}, { principals: [{ id: "alice", roles: [] }] });
  const warned = judged.filter((finding): finding is RulesWarning => finding.code === "unsatisfiable");
  const paths: string[] = warned.map((warning) => warning.path).concat(alone.map((problem) => problem.path));
  // @ts-expect-error: with principals, the findings are not all problems
  const notOnlyProblems: Violation[] = validateRules({}, { principals: [] });
  void paths;
  void notOnlyProblems;
}

// An index change has one flat shape, the core's `IndexChange`: the same
// fields as the WIT record and what the IndexedDB cache stores.
{
  const change: IndexChange = { index: "p0:idx:status:pending", sortKey: "0001", member: "r1" };
  const position: IndexEntry = change;
  const batch: CacheBatch = { checks: [{ key: "k", version: null }], puts: [{ key: "k", value: new Uint8Array() }], deletes: [], indexAdds: [change], indexRemoves: [] };
  // @ts-expect-error: the entry is not nested
  const nested: IndexChange = { index: "i", entry: { sortKey: "s", member: "m" } };
  // @ts-expect-error: a put's value is bytes, not text
  const textPut: CacheBatch["puts"][number] = { key: "k", value: "text" };
  void position;
  void batch;
  void nested;
  void textPut;
}

// The package's IndexedDB cache is a `Cache`, with `getMany`.
async function indexedDb(): Promise<number> {
  const cache: Cache = await IndexedDbCache.open("signoff", { clock: Date.now });
  const opened = await IndexedDbCache.open();
  const many: Array<CacheEntry | null> = await opened.getMany(["a", "b"]);
  // @ts-expect-error: a clock is a function
  await IndexedDbCache.open("signoff", { clock: 5 });
  opened.close();
  return many.length + (cache.getMany ? 1 : 0);
}
void indexedDb;
