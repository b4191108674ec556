// Which actions the signed-in principal may take on a request, and why not,
// so that a button is disabled with its reason before anyone clicks.
//
// The engine decides: `allowedActions` of the signoff package answers, for
// each action, the code of the error the action itself would give (it tries
// the action with the core's own lifecycle rules). This module only words
// each refusal for the person reading it, from the request on screen.

/** The stage object of the request's current stage, if pending. */
export function currentStage(request) {
  return (request.stages ?? []).find((stage) => stage.name === request.stage) ?? null;
}

function rolesHeld(principal) {
  return (principal.roles ?? []).length ? `you hold ${principal.roles.join(", ")}` : "you hold no role";
}

/** A sentence for a refusal of `verb` by `principal` on `request`. */
function sentence(refusal, verb, request, principal) {
  switch (refusal.code) {
    case "expired":
      return request.status === "expired"
        ? "This request expired; nothing can approve, reject or cancel it any more."
        : "This request has passed its expiry time; nothing can approve, reject or cancel it.";
    case "not_pending":
      return verb === "review"
        ? "This request has no open review."
        : `This request is ${request.status}; it no longer takes decisions.`;
    case "self_approval":
      return `You filed this request, so you cannot ${verb} it: someone else must.`;
    case "already_approved": {
      const mine = (request.approvals ?? []).find((approval) => approval.by === principal.id);
      return `You already approved this request${mine ? ` (stage ${mine.stage})` : ""}; a principal approves once and cannot then reject.`;
    }
    case "not_eligible": {
      if (verb === "review") {
        return `Reviewing needs a role eligible for a stage of level ${request.level}; ${rolesHeld(principal)}.`;
      }
      const roles = currentStage(request)?.eligibleRoles ?? [];
      return `Stage ${request.stage} needs one of the roles ${roles.join(", ")}; ${rolesHeld(principal)}.`;
    }
    case "forbidden":
      return verb === "cancel" || verb === "amend"
        ? `Only the requester (${request.requestedBy}) can ${verb} this request.`
        : refusal.reason;
    case "invalid_request":
      return verb === "comment" ? "The history of this request is full; no more comments." : refusal.reason;
    default:
      return refusal.reason;
  }
}

const ACTIONS = ["approve", "reject", "cancel", "comment", "amend", "review"];

/**
 * `{ approve, reject, cancel, comment, amend, review }`, each `null` when allowed or
 * `{ code, reason }` when not, as the engine (`engine.allowedActions`)
 * decides. `principal` is `{ id, roles }` or null when nobody is signed in;
 * `now` is epoch milliseconds.
 */
export function allowedActions(engine, request, principal, now = Date.now()) {
  const all = (block) => Object.fromEntries(ACTIONS.map((verb) => [verb, block]));
  if (!principal?.id) return all({ code: "unauthenticated", reason: "Sign in to act on requests." });
  if (!engine) return all({ code: "unavailable", reason: "The signoff engine has not loaded." });
  let decided;
  try {
    decided = engine.allowedActions(request, principal, now);
  } catch (error) {
    return all({ code: error.code ?? "invalid_request", reason: `This request cannot be judged here: ${error.message}` });
  }
  const word = (verb) => {
    const refusal = decided[verb];
    return refusal ? { code: refusal.code, reason: sentence(refusal, verb, request, principal) } : null;
  };
  return Object.fromEntries(ACTIONS.map((verb) => [verb, word(verb)]));
}
