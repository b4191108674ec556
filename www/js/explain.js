// Shared pieces that explain rules to people: a level's stages and why a
// change got its level.

import { h } from "./dom.js";
import { plain } from "./messages.js";

/** "3 d", "12 h", "45 min" for a number of seconds. */
export function formatSeconds(seconds) {
  if (seconds % 86400 === 0) return `${seconds / 86400} d`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

/** "; after 1 h, also security-lead" for a stage or group that escalates. */
function escalationText(quorum) {
  const roles = quorum.escalationRoles ?? [];
  return quorum.escalateAfterSeconds && roles.length
    ? `; after ${formatSeconds(quorum.escalateAfterSeconds)}, also ${roles.join(", ")}`
    : "";
}

/** Who may approve one quorum (a stage without groups, or a group), in words. */
function quorumText(quorum) {
  const roles = quorum.eligibleRoles ?? [];
  const count = quorum.requiredApprovals === 1 ? "1 approval" : `${quorum.requiredApprovals} approvals`;
  const who = roles.length === 0
    ? `${count} from any signed-in principal`
    : `${count} from ${roles.length === 1 ? "the role" : "the roles"} ${roles.join(", ")}`;
  return `${who}${escalationText(quorum)}`;
}

/**
 * Who may approve a stage, in words: its one quorum, or every group of it
 * (a group's own escalation with it, the stage's, for the groups without
 * one of their own, once at the end).
 */
export function whoMayApprove(stage) {
  if (stage.groups?.length) {
    const groups = stage.groups.map((group) => `${group.name}, ${quorumText(group)}`).join("; ");
    return `every group: ${groups}${escalationText(stage)}`;
  }
  return quorumText(stage);
}

/** The approvals a stage needs in all (the sum of its groups'). */
export function approvalsNeeded(stage) {
  return stage.groups?.length
    ? stage.groups.reduce((sum, group) => sum + group.requiredApprovals, 0)
    : stage.requiredApprovals;
}

/** The stages of a level and how long a request may wait. */
export function describeStages(level) {
  const stages = level.stages ?? [];
  return h("div", { class: "level-stages" },
    stages.length === 0
      ? h("p", {}, "No approval stages: a request at this level is approved as soon as it is filed.")
      : [
        h("p", {}, stages.length === 1 ? "One stage:" : `${stages.length} stages, one after another:`),
        h("ol", {}, stages.map((stage) => h("li", {}, h("strong", {}, stage.name), ` — ${whoMayApprove(stage)}`))),
      ],
    h("p", { class: "muted" }, `A request may stay pending for ${formatSeconds(level.ttlSeconds)} before it expires.`));
}

/** Matched rules, the deciding rule, or that the default applied. */
export function explanationView(explanation, id = "preview-explanation") {
  if (!explanation) return null;
  const matched = explanation.matchedRules ?? [];
  return h("div", { class: "explanation", id },
    h("h3", {}, "Why"),
    h("p", { class: explanation.defaultUsed ? "summary default-used" : "summary" }, plain(explanation.summary)),
    explanation.defaultUsed
      ? null
      : h("ul", { class: "matched-rules", "aria-label": "Matched rules" }, matched.map((item) => {
        const deciding = item.rule === explanation.decidingRule;
        return h("li", { class: deciding ? "deciding" : null, dataset: { rule: item.rule } },
          `${item.rule} → ${item.level}`, deciding ? [" ", h("span", { class: "tag" }, "deciding rule")] : null);
      })));
}
