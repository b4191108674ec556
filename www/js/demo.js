// The rules and principals of local mode: the same demo set-up as
// `signoff serve --dev` (host/demo/), so the workflow feels the same offline.
// Saved local rules replace DEMO_RULES.

export const DEMO_RULES = {
  levels: [
    { name: "auto", ttlSeconds: 86400, stages: [] },
    {
      name: "peer",
      ttlSeconds: 604800,
      stages: [{ name: "peer-review", requiredApprovals: 1, eligibleRoles: ["engineer"] }],
    },
    {
      name: "security",
      ttlSeconds: 259200,
      stages: [
        { name: "security-review", requiredApprovals: 1, eligibleRoles: ["security"] },
        { name: "lead-signoff", requiredApprovals: 1, eligibleRoles: ["security-lead"] },
      ],
    },
  ],
  defaultLevel: "peer",
  rules: [
    { name: "docs-are-auto-approved", when: { policyTypes: ["docs"] }, level: "auto" },
    { name: "iam-in-prod", when: { policyTypes: ["iam"], environments: ["prod"] }, level: "security" },
    { name: "high-risk", when: { riskScoreAtLeast: 70 }, level: "security" },
  ],
  rateLimit: { requests: 30, perSeconds: 60, burst: 20 },
};

export const DEMO_PRINCIPALS = [
  { id: "alice", roles: ["engineer"] },
  { id: "bob", roles: ["engineer"] },
  { id: "carol", roles: ["security"] },
  { id: "dave", roles: ["security-lead"] },
  { id: "admin", roles: ["admin"] },
];
