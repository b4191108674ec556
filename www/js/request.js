// One request: its level and why, its stages with the approvals counted for
// each, the history, a countdown to expiry, and the actions the signed-in
// principal may take (each disabled button says why).

import { byId, formatDuration, h, replace, say, statusBadge, timeElement } from "./dom.js";
import { explanationView, whoMayApprove } from "./explain.js";
import { allowedActions } from "./permissions.js";

const ACTION_WORDS = {
  create: "filed the request",
  approve: "approved",
  reject: "rejected",
  cancel: "cancelled the request",
  comment: "commented",
  expire: "expired the request",
};

/** `ctx` gives `backend()`, `principal()` and `learned(request, action)`. */
export function setupRequestView(ctx) {
  const heading = byId("request-heading");
  const body = byId("request-body");
  const announce = byId("request-announcement");
  let request = null;
  let timer = null;
  let reloading = false;

  function stopTimer() {
    if (timer) clearInterval(timer);
    timer = null;
  }

  function stageState(stage, index) {
    if (request.status === "approved") return "passed";
    const current = (request.stages ?? []).findIndex((item) => item.name === request.stage);
    if (request.status !== "pending") {
      return (request.approvals ?? []).some((approval) => approval.stage === stage.name) ? "reached" : "not reached";
    }
    if (index < current) return "passed";
    if (index === current) return "current";
    return "upcoming";
  }

  function stagesView() {
    const stages = request.stages ?? [];
    if (stages.length === 0) {
      return h("p", {}, "This level has no stages: the request was approved when it was filed.");
    }
    return h("ol", { class: "stages", id: "stages" }, stages.map((stage, index) => {
      const approvals = (request.approvals ?? []).filter((approval) => approval.stage === stage.name);
      const state = stageState(stage, index);
      return h("li", { class: state, dataset: { stage: stage.name, state } },
        h("div", {}, h("strong", {}, stage.name), " ", h("span", { class: "tag" }, state)),
        h("div", {}, whoMayApprove(stage)),
        h("div", { class: "approval-count" }, `${approvals.length} of ${stage.requiredApprovals} approvals`),
        approvals.length > 0
          ? h("ul", {}, approvals.map((approval) => h("li", {},
            `${approval.by} approved at `, timeElement(approval.at), approval.comment ? ` — “${approval.comment}”` : "")))
          : null);
    }));
  }

  function historyView() {
    return h("ol", { class: "timeline", id: "history" }, (request.history ?? []).map((entry) => h("li", { dataset: { action: entry.action } },
      timeElement(entry.at), " — ", h("strong", {}, entry.actor), ` ${ACTION_WORDS[entry.action] ?? entry.action}`,
      entry.stage ? ` (stage ${entry.stage})` : "",
      entry.comment ? [": ", h("q", {}, entry.comment)] : "")));
  }

  function countdownView() {
    if (request.status !== "pending") return null;
    const text = h("span", { class: "countdown", id: "countdown", role: "timer", "aria-live": "off" });
    const tick = () => {
      const left = Date.parse(request.expiresAt) - Date.now();
      text.textContent = left > 0 ? `expires in ${formatDuration(left)}` : "expiry time reached";
      if (left <= 0 && !reloading) {
        reloading = true;
        stopTimer();
        // A read past expiresAt records the expiry; show what the engine says.
        setTimeout(() => show(request.id).finally(() => { reloading = false; }), 500);
      }
    };
    tick();
    stopTimer();
    timer = setInterval(tick, 1000);
    return h("p", {}, "Pending: ", text, " (", timeElement(request.expiresAt), ")");
  }

  function actionForm({ name, label, blocked, textarea, onSubmit }) {
    const reasonId = `${name}-reason`;
    const statusId = `${name}-status`;
    let field = null;
    if (textarea) {
      field = h("div", { class: "field" },
        h("label", { for: `${name}-text` }, textarea.label),
        h("textarea", { id: `${name}-text`, rows: 2, disabled: Boolean(blocked), "aria-describedby": statusId }));
    }
    const button = h("button", {
      type: "submit",
      id: `${name}-button`,
      class: name === "reject" || name === "cancel" ? "danger" : null,
      "aria-disabled": blocked ? "true" : null,
      "aria-describedby": blocked ? reasonId : null,
      dataset: blocked ? { blocked: blocked.code } : {},
    }, label);
    const status = h("div", { id: statusId, role: "status", "aria-live": "polite", class: "notice" });
    const form = h("form", { class: "act", id: `${name}-form`, "aria-label": label }, field,
      h("div", { class: "actions" }, button, h("span", { class: "reason", id: reasonId }, blocked ? blocked.reason : "")),
      status);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (button.getAttribute("aria-disabled") === "true") return;
      const text = field ? form.querySelector("textarea").value : "";
      if (textarea?.required && text.trim() === "") {
        say(status, textarea.required, "error");
        form.querySelector("textarea").focus();
        return;
      }
      button.setAttribute("aria-disabled", "true");
      say(status, "Sending…");
      try {
        const updated = await onSubmit(text.trim());
        ctx.learned(updated, name);
        request = updated;
        render(`${label}: done. Status ${updated.status}${updated.stage ? `, stage ${updated.stage}` : ""}.`);
      } catch (error) {
        button.removeAttribute("aria-disabled");
        say(status, `${error.message} (${error.code})`, "error");
      }
    });
    return form;
  }

  function actionsView() {
    const principal = ctx.principal();
    const allowed = allowedActions(request, principal);
    const backend = ctx.backend();
    const id = request.id;
    return h("section", { class: "panel", "aria-labelledby": "actions-heading" },
      h("h2", { id: "actions-heading" }, "Act on this request"),
      h("p", { class: "muted" }, principal ? `As ${principal.id}${principal.roles?.length ? ` (${principal.roles.join(", ")})` : ""}.` : "Nobody is signed in."),
      actionForm({
        name: "approve", label: "Approve", blocked: allowed.approve,
        textarea: { label: "Approval comment (optional)" },
        onSubmit: (text) => backend.approve(id, { comment: text || undefined }),
      }),
      actionForm({
        name: "reject", label: "Reject", blocked: allowed.reject,
        textarea: { label: "Reason for rejecting (required)", required: "A reason is required to reject." },
        onSubmit: (text) => backend.reject(id, { reason: text }),
      }),
      actionForm({
        name: "cancel", label: "Cancel request", blocked: allowed.cancel,
        onSubmit: () => backend.cancel(id),
      }),
      actionForm({
        name: "comment", label: "Add comment", blocked: allowed.comment,
        textarea: { label: "Comment", required: "Write a comment first." },
        onSubmit: (text) => backend.comment(id, { text }),
      }));
  }

  function render(announcement = "") {
    const change = request.change;
    heading.textContent = change.title;
    say(announce, announcement, announcement ? "ok" : "");
    replace(body,
      h("p", {}, statusBadge(request.status), " ", h("span", { id: "request-status", dataset: { status: request.status } }, request.status),
        request.stage ? [" · current stage ", h("strong", { id: "request-stage" }, request.stage)] : null),
      countdownView(),
      h("div", { class: "request-grid" },
        h("div", {},
          h("section", { class: "panel", "aria-labelledby": "level-heading" },
            h("h2", { id: "level-heading" }, "Approval level ", h("span", { class: "level-name", id: "request-level" }, request.level)),
            explanationView(request.levelExplanation, "request-explanation"),
            h("h3", {}, "Stages"),
            stagesView(),
            request.rejection
              ? h("p", { class: "notice error", id: "rejection" }, `Rejected by ${request.rejection.by} at stage ${request.rejection.stage}: “${request.rejection.reason}”`)
              : null),
          h("section", { class: "panel", "aria-labelledby": "change-heading" },
            h("h2", { id: "change-heading" }, "The change"),
            h("dl", { class: "details" },
              h("dt", {}, "Policy"), h("dd", {}, h("code", {}, change.policyId)),
              h("dt", {}, "Type"), h("dd", {}, change.policyType),
              h("dt", {}, "Kind"), h("dd", {}, change.changeKind),
              h("dt", {}, "Environment"), h("dd", {}, change.environment ?? "—"),
              h("dt", {}, "Risk score"), h("dd", {}, change.riskScore ?? "—"),
              h("dt", {}, "Priority"), h("dd", {}, change.priority),
              h("dt", {}, "Requested by"), h("dd", { id: "requested-by" }, request.requestedBy),
              h("dt", {}, "Filed"), h("dd", {}, timeElement(request.createdAt)),
              h("dt", {}, "Updated"), h("dd", {}, timeElement(request.updatedAt)),
              h("dt", {}, "Rules digest"), h("dd", {}, h("code", {}, request.rulesDigest)),
              h("dt", {}, "Justification"), h("dd", { style: "white-space: pre-wrap" }, change.justification),
              Object.keys(change.metadata ?? {}).length > 0
                ? [h("dt", {}, "Metadata"), h("dd", {}, h("ul", {}, Object.entries(change.metadata).map(([key, value]) => h("li", {}, h("code", {}, key), ` = ${JSON.stringify(value)}`))))]
                : null),
            change.diff ? [h("h3", {}, "Diff"), h("pre", { class: "diff" }, change.diff)] : null),
          h("section", { class: "panel", "aria-labelledby": "history-heading" },
            h("h2", { id: "history-heading" }, "History"),
            historyView())),
        actionsView()));
  }

  /** Loads and shows the request `id`. */
  async function show(id) {
    stopTimer();
    heading.textContent = "Request";
    say(announce, "");
    replace(body, h("p", { role: "status" }, "Loading…"));
    try {
      request = await ctx.backend().get(id);
      render();
    } catch (error) {
      request = null;
      replace(body, h("p", { class: "notice error", role: "alert" }, `The request could not load: ${error.message} (${error.code}).`));
    }
  }

  return {
    show,
    hide: stopTimer,
    /** Re-renders the buttons after the principal changed. */
    refresh() {
      if (request) render();
    },
  };
}
