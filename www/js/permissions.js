// Which actions the signed-in principal may take on a request, and why not.
// This mirrors the lifecycle rules (docs/CONTRACT.md sections 4 and 9, in the order in
// which the engine reports them) so that a button is disabled with its
// reason before anyone clicks. The engine still decides: a refused action
// shows the engine's error.

/** History length after which comments are refused. */
export const MAX_HISTORY = 1000;

/** The stage object of the request's current stage, if pending. */
export function currentStage(request) {
  return (request.stages ?? []).find((stage) => stage.name === request.stage) ?? null;
}

function lifecycleBlock(request, now) {
  if (request.status === "expired") {
    return { code: "expired", reason: "This request expired; nothing can approve, reject or cancel it any more." };
  }
  if (request.status !== "pending") {
    return { code: "not_pending", reason: `This request is ${request.status}; it no longer takes decisions.` };
  }
  if (Date.parse(request.expiresAt) <= now) {
    return { code: "expired", reason: "This request has passed its expiry time; nothing can approve, reject or cancel it." };
  }
  return null;
}

function decisionBlock(request, principal, now, verb) {
  const blocked = lifecycleBlock(request, now);
  if (blocked) return blocked;
  if (request.requestedBy === principal.id) {
    return { code: "self_approval", reason: `You filed this request, so you cannot ${verb} it: someone else must.` };
  }
  const mine = (request.approvals ?? []).find((approval) => approval.by === principal.id);
  if (mine) {
    return {
      code: "already_approved",
      reason: `You already approved this request (stage ${mine.stage}); a principal approves once and cannot then reject.`,
    };
  }
  const stage = currentStage(request);
  const roles = stage?.eligibleRoles ?? [];
  if (roles.length > 0 && !roles.some((role) => (principal.roles ?? []).includes(role))) {
    const held = (principal.roles ?? []).length ? `you hold ${principal.roles.join(", ")}` : "you hold no role";
    return {
      code: "not_eligible",
      reason: `Stage ${request.stage} needs one of the roles ${roles.join(", ")}; ${held}.`,
    };
  }
  return null;
}

/**
 * `{ approve, reject, cancel, comment }`, each `null` when allowed or
 * `{ code, reason }` when not. `principal` is `{ id, roles }` or null when
 * nobody is signed in; `now` is epoch milliseconds.
 */
export function allowedActions(request, principal, now = Date.now()) {
  if (!principal?.id) {
    const block = { code: "unauthenticated", reason: "Sign in to act on requests." };
    return { approve: block, reject: block, cancel: block, comment: block };
  }
  const cancel = lifecycleBlock(request, now)
    ?? (request.requestedBy === principal.id
      ? null
      : { code: "forbidden", reason: `Only the requester (${request.requestedBy}) can cancel this request.` });
  const comment = (request.history ?? []).length >= MAX_HISTORY
    ? { code: "invalid_request", reason: `The history is full (${MAX_HISTORY} entries); no more comments.` }
    : null;
  return {
    approve: decisionBlock(request, principal, now, "approve"),
    reject: decisionBlock(request, principal, now, "reject"),
    cancel,
    comment,
  };
}
