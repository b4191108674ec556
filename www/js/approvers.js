// Who could still approve a pending request, and when its stage escalates.
//
// The engine decides who may approve: each known principal is asked about
// with `allowedActions` (requester, already approved, eligibility and
// escalation are its rules, not this module's), now and at the time each
// escalation starts. This module only words the answer, per group, and
// falls back to naming roles when the principals are not known.

import { formatDuration, h, timeElement } from "./dom.js";
import { currentStage } from "./permissions.js";

/**
 * The quorums of a stage as the contract defines them (section 10): the
 * stage itself, or each of its groups, a group without an escalation of its
 * own escalating with its stage (`source` null).
 */
export function quorums(stage) {
  if (!stage.groups?.length) {
    return [{
      group: null, required: stage.requiredApprovals, eligibleRoles: stage.eligibleRoles ?? [],
      escalateAfterSeconds: stage.escalateAfterSeconds ?? null, escalationRoles: stage.escalationRoles ?? [], source: null,
    }];
  }
  return stage.groups.map((group) => {
    const own = group.escalateAfterSeconds !== undefined && group.escalateAfterSeconds !== null;
    return {
      group: group.name, required: group.requiredApprovals, eligibleRoles: group.eligibleRoles ?? [],
      escalateAfterSeconds: own ? group.escalateAfterSeconds : stage.escalateAfterSeconds ?? null,
      escalationRoles: own ? group.escalationRoles ?? [] : stage.escalationRoles ?? [],
      source: own ? group.name : null,
    };
  });
}

function counted(request, quorum) {
  return (request.approvals ?? []).filter((approval) => approval.stage === request.stage && (approval.group ?? null) === quorum.group).length;
}

/** When `quorum` escalates (epoch ms), or null when it never does. */
function escalationTime(request, quorum) {
  const started = Date.parse(request.stageStartedAt ?? "");
  if (!quorum.escalateAfterSeconds || !quorum.escalationRoles.length || Number.isNaN(started)) return null;
  return started + quorum.escalateAfterSeconds * 1000;
}

function holdsAny(principal, roles) {
  return (principal.roles ?? []).some((role) => roles.includes(role));
}

/** Whether the engine lets `principal` approve `request` at `at`. */
function mayApprove(engine, request, principal, at) {
  try {
    return engine.allowedActions(request, principal, at).approve === null;
  } catch {
    return false;
  }
}

function rolesText(roles) {
  return `${roles.length === 1 ? "the role" : "the roles"} ${roles.join(", ")}`;
}

function namesView(principals, id) {
  if (principals.length === 0) return h("span", { class: "muted" }, "nobody known");
  return h("span", { class: "names", id }, principals.map((principal, index) => [index ? ", " : "",
    h("strong", { dataset: { principal: principal.id } }, principal.id),
    principal.roles?.length ? ` (${principal.roles.join(", ")})` : ""]));
}

/** Why only roles are named, when the principals are not known. */
function unknownText(directory) {
  if (directory.failed) return "Who may sign in could not be loaded, so only roles are named.";
  if (directory.missing) return "This server does not say who may sign in, so only roles are named.";
  return "The server signs people in through an identity provider and knows nobody in advance, so only roles are named.";
}

/**
 * "Who could approve now" for a pending request, and its escalations.
 * `directory` is `{ known, principals, missing?, failed? }` (who may sign
 * in), or null while it loads. `#approvers` carries `data-known`; each
 * quorum's line carries `data-group` and `data-names`.
 */
export function approversView(engine, request, directory, now = Date.now()) {
  const stage = currentStage(request);
  if (request.status !== "pending" || !stage || now >= Date.parse(request.expiresAt)) return null;
  const all = quorums(stage);
  const open = all.filter((quorum) => counted(request, quorum) < quorum.required);
  const known = Boolean(directory?.known) && Boolean(engine);
  const escalatedNow = (quorum) => {
    const at = escalationTime(request, quorum);
    return at !== null && at < Date.parse(request.expiresAt) && now >= at;
  };
  const rolesNow = (quorum) => [...quorum.eligibleRoles, ...(escalatedNow(quorum) ? quorum.escalationRoles : [])];
  // Whom to ask the engine about: anyone, when a quorum admits every
  // signed-in principal; else the holders of a role the stage names.
  const anyone = all.some((quorum) => quorum.eligibleRoles.length === 0);
  const stageRoles = all.flatMap((quorum) => [...quorum.eligibleRoles, ...quorum.escalationRoles]);
  const candidates = known ? directory.principals.filter((principal) => anyone || holdsAny(principal, stageRoles)) : [];
  const approversNow = candidates.filter((principal) => mayApprove(engine, request, principal, now));
  // An approval counts toward the first open quorum that admits it.
  const admits = (quorum, principal, roles) => quorum.eligibleRoles.length === 0 || holdsAny(principal, roles);
  const towards = (quorum) => approversNow.filter((principal) =>
    open.find((candidate) => admits(candidate, principal, rolesNow(candidate))) === quorum);

  const groupStage = Boolean(stage.groups?.length);
  const separation = request.separation?.requesterMayApprove
    ? ""
    : ` ${request.requestedBy}, who filed it, may not approve it.`;
  const lines = all.map((quorum) => {
    const met = counted(request, quorum) >= quorum.required;
    const label = groupStage ? h("strong", {}, `${quorum.group}: `) : null;
    const progress = `${counted(request, quorum)} of ${quorum.required}`;
    if (met) {
      return h("li", { dataset: { group: quorum.group ?? "", met: "true" } }, label, `met (${progress}).`);
    }
    if (known) {
      const names = towards(quorum);
      return h("li", { dataset: { group: quorum.group ?? "", met: "false", names: names.map((principal) => principal.id).join(" ") } },
        label, `${progress} approvals; could approve now: `, namesView(names, null), ".");
    }
    const roles = rolesNow(quorum);
    return h("li", { dataset: { group: quorum.group ?? "", met: "false", roles: roles.join(" ") } },
      label, `${progress} approvals; `,
      roles.length === 0 && quorum.eligibleRoles.length === 0 ? "any signed-in principal may approve" : `${rolesText(roles)} may approve`, ".");
  });

  return h("div", { class: "approvers", id: "approvers", dataset: { known: String(known), stage: stage.name } },
    h("h3", { id: "approvers-heading" }, `Who could approve stage ${stage.name} now`),
    known ? null : h("p", { class: "muted", id: "approvers-unknown" }, unknownText(directory ?? {})),
    h("ul", { class: "approver-list", "aria-labelledby": "approvers-heading" }, lines),
    separation ? h("p", { class: "help" }, separation.trim()) : null,
    escalationsView(engine, request, open, known, candidates, approversNow, now));
}

/** When each open quorum escalates, and whom that brings in. */
function escalationsView(engine, request, open, known, candidates, approversNow, now) {
  const expires = Date.parse(request.expiresAt);
  const seen = new Set();
  const items = [];
  for (const quorum of open) {
    const at = escalationTime(request, quorum);
    if (at === null || seen.has(quorum.source ?? "")) continue;
    seen.add(quorum.source ?? "");
    const who = quorum.source ? `Group ${quorum.source}` : "The stage";
    const roles = rolesText(quorum.escalationRoles);
    const dataset = { source: quorum.source ?? "", at: new Date(at).toISOString() };
    if (at >= expires) {
      items.push(h("li", { dataset: { ...dataset, state: "never" } },
        `${who} would escalate at `, timeElement(new Date(at).toISOString()), ", but the request expires first."));
    } else if (now >= at) {
      items.push(h("li", { dataset: { ...dataset, state: "escalated" } },
        `${who} escalated at `, timeElement(new Date(at).toISOString()), `: ${roles} may approve too.`));
    } else {
      // Whom the engine lets approve then, and not now.
      const joining = known
        ? candidates.filter((principal) => holdsAny(principal, quorum.escalationRoles)
          && !approversNow.includes(principal) && mayApprove(engine, request, principal, at))
        : null;
      items.push(h("li", { dataset: { ...dataset, state: "due", names: joining ? joining.map((principal) => principal.id).join(" ") : "" } },
        `${who} escalates at `, timeElement(new Date(at).toISOString()), ` (in ${formatDuration(at - now)}): it brings in ${roles}`,
        joining ? [" — ", namesView(joining, null)] : null, "."));
    }
  }
  if (items.length === 0) return null;
  return [h("h3", { id: "escalation-heading" }, "Escalation"), h("ul", { class: "escalations", id: "escalations", "aria-labelledby": "escalation-heading" }, items)];
}
