// Type-checked by `tsc --noEmit --strict` (see tsconfig.json). The domain
// types are declared by the core's own Rust types; this file uses the ones
// the decisions of the core answer with, and proves with `@ts-expect-error`
// that misuse (a wrong field name, a wrong enum string) does not compile.
import {
  ApprovalManager,
  MemoryCache,
  allowedActions,
  mayReplaceRules,
  validatePrincipal,
} from "signoff";
import type {
  ActionKind,
  AllowedActions,
  ApprovalRequest,
  ChangeKind,
  ErrorCode,
  PolicyChange,
  Principal,
  Priority,
  Refusal,
  Rules,
  RulesInForce,
  Stage,
  Status,
  Violation,
  ViolationCode,
} from "signoff";

const rules: Rules = {
  levels: [{ name: "peer", ttlSeconds: 60, stages: [{ name: "review", requiredApprovals: 1, eligibleRoles: ["engineer"] }] }],
  defaultLevel: "peer",
};
const principal: Principal = { id: "alice", roles: ["engineer"] };
const withoutRoles: Principal = { id: "bob" };
const kind: ChangeKind = "update";
const priority: Priority = "urgent";
const change: PolicyChange = {
  policyId: "iam/admins",
  policyType: "iam",
  changeKind: kind,
  title: "Add bob",
  justification: "Bob joins the on-call rotation.",
  priority,
  metadata: { ticket: "SEC-1", count: 3, urgent: true },
};

export async function decisions(request: ApprovalRequest): Promise<string[]> {
  const manager = new ApprovalManager({ rules, cache: new MemoryCache() });
  const allowed: AllowedActions = allowedActions(request, principal, Date.now());
  const refusal: Refusal | null = allowed.approve;
  const code: ErrorCode | undefined = refusal?.code;
  const stored: AllowedActions = await manager.allowedActions(request.id, withoutRoles);
  const problems: Violation[] = validatePrincipal(principal);
  const problemCode: ViolationCode | undefined = problems[0]?.code;
  const admin: Refusal | null = mayReplaceRules(principal);
  const replaced: RulesInForce = await manager.replaceRules(rules, principal, { ifMatch: "*" });
  const again: RulesInForce | null = await manager.storedRules();
  const created: ApprovalRequest = await manager.create(change, principal);
  const status: Status = created.status;
  const stage: Stage | undefined = created.stages[0];
  const action: ActionKind | undefined = created.history[0]?.action;
  return [
    String(code),
    String(stored.cancel?.reason),
    String(problemCode),
    String(admin?.reason),
    replaced.digest,
    String(again?.rules.defaultLevel),
    status,
    String(stage?.requiredApprovals),
    String(action),
  ];
}

// @ts-expect-error a principal's roles are strings
const badRoles: Principal = { id: "alice", roles: [1] };
// @ts-expect-error `name` is not a field of a principal
const badField: Principal = { name: "alice", roles: [] };
// @ts-expect-error `changeKind` is one of create, update, delete
const badKind: PolicyChange = { ...change, changeKind: "modify" };
// @ts-expect-error `policyID` is not `policyId`
const badName: PolicyChange = { policyID: "x", policyType: "iam", changeKind: "create", title: "t", justification: "long enough" };
// @ts-expect-error a status is one of the five
const badStatus: Status = "open";
// @ts-expect-error an error code is one of the documented codes
const badCode: ErrorCode = "not_allowed";
// @ts-expect-error a refusal carries a code
const badRefusal: Refusal = { reason: "no" };
// @ts-expect-error `ttlSeconds` is a number
const badLevel: Rules = { levels: [{ name: "x", ttlSeconds: "60", stages: [] }], defaultLevel: "x" };

export const misuse = [badRoles, badField, badKind, badName, badStatus, badCode, badRefusal, badLevel];
