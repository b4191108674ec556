// One request: its level and why, its stages with the approvals counted for
// each, the history, a countdown to expiry, and the actions the signed-in
// principal may take (each disabled button says why).

import { byId, formatDuration, h, markBusy, replace, say, settle, statusBadge, timeElement } from "./dom.js";
import { approversView } from "./approvers.js";
import { diffView } from "./diff.js";
import { approvalsNeeded, explanationView, whoMayApprove } from "./explain.js";
import { errorText, plain } from "./messages.js";
import { allowedActions } from "./permissions.js";

const ACTION_WORDS = {
  create: "filed the request",
  approve: "approved",
  reject: "rejected",
  cancel: "cancelled the request",
  comment: "commented",
  expire: "expired the request",
  escalate: "escalated the stage",
  amend: "amended the change",
  emergency: "filed it as an emergency",
  review: "reviewed the emergency",
};

// The fields of the change an amend form offers, with their input kind.
const AMEND_FIELDS = [
  ["title", "Title", "input"],
  ["justification", "Justification", "textarea"],
  ["environment", "Environment", "input"],
  ["riskScore", "Risk score", "input"],
  ["priority", "Priority", "select"],
];
const PRIORITIES = ["low", "normal", "high", "urgent"];

// History actions that end a request, and so name the stage it ended at.
const ENDINGS = new Set(["reject", "cancel", "expire"]);

/**
 * `ctx` gives `engine()` (the signoff package, which decides what the
 * principal may do and checks the history), `backend()`, `principal()`,
 * `directory()` (resolves to who may sign in, `{ known, principals, … }`,
 * and never rejects), `acted(request, action)` (an action went through)
 * and `signInRequired()` (the token was refused while loading).
 */
export function setupRequestView(ctx) {
  const heading = byId("request-heading");
  const body = byId("request-body");
  const announce = byId("request-announcement");
  let request = null;
  let directory = null; // who may sign in, as ctx.directory() last answered
  let timer = null;
  let reloading = false;
  let sending = false; // an action of this page is on its way
  let loadSeq = 0; // only the newest load of the view is shown

  function stopTimer() {
    if (timer) clearInterval(timer);
    timer = null;
  }

  /**
   * The stage a rejected, expired or cancelled request ended at: the
   * rejection's stage, else the stage its ending history entry names, else
   * the first stage whose approvals were not all given.
   */
  function endedAt() {
    if (request.rejection?.stage) return request.rejection.stage;
    const ending = [...(request.history ?? [])].reverse().find((entry) => ENDINGS.has(entry.action));
    if (ending?.stage) return ending.stage;
    const count = (name) => (request.approvals ?? []).filter((approval) => approval.stage === name).length;
    return (request.stages ?? []).find((stage) => count(stage.name) < approvalsNeeded(stage))?.name ?? null;
  }

  /** `{ state, label }` of one stage: passed, current, upcoming, ended or not reached. */
  function stageState(stage, index) {
    if (request.status === "approved") return { state: "passed", label: "passed" };
    const stages = request.stages ?? [];
    if (request.status !== "pending") {
      const ended = stages.findIndex((item) => item.name === endedAt());
      if (index < ended) return { state: "passed", label: "passed" };
      if (index === ended) return { state: "ended", label: `${request.status} here` };
      return { state: "not reached", label: "not reached" };
    }
    const current = stages.findIndex((item) => item.name === request.stage);
    if (index < current) return { state: "passed", label: "passed" };
    if (index === current) return { state: "current", label: "current" };
    return { state: "upcoming", label: "upcoming" };
  }

  /** "1 of 2 approvals", or per group: "dba 1 of 1 · network 0 of 1". */
  function approvalCount(stage, approvals) {
    if (!stage.groups?.length) return `${approvals.length} of ${stage.requiredApprovals} approvals`;
    return stage.groups.map((group) => {
      const counted = approvals.filter((approval) => approval.group === group.name).length;
      return `${group.name} ${counted} of ${group.requiredApprovals}`;
    }).join(" · ");
  }

  function stagesView() {
    const stages = request.stages ?? [];
    if (stages.length === 0) {
      return h("p", {}, "This level has no stages: the request was approved when it was filed.");
    }
    return h("ol", { class: "stages", id: "stages" }, stages.map((stage, index) => {
      const approvals = (request.approvals ?? []).filter((approval) => approval.stage === stage.name);
      const { state, label } = stageState(stage, index);
      return h("li", { class: state.replace(" ", "-"), dataset: { stage: stage.name, state } },
        h("div", {}, h("strong", {}, stage.name), " ", h("span", { class: "tag" }, label)),
        h("div", {}, whoMayApprove(stage)),
        h("div", { class: "approval-count" }, approvalCount(stage, approvals)),
        approvals.length > 0
          ? h("ul", {}, approvals.map((approval) => h("li", {},
            `${approval.by} approved at `, timeElement(approval.at), approval.comment ? ` — “${approval.comment}”` : "")))
          : null);
    }));
  }

  /**
   * The audit chain of the history, as the engine judges it
   * (`verifyHistory`): `{ verified, held, broken? }`, or null when it
   * cannot judge here.
   */
  function verification() {
    const engine = ctx.engine();
    if (typeof engine?.verifyHistory !== "function") return null;
    try {
      return engine.verifyHistory(request);
    } catch {
      return null;
    }
  }

  function auditView(judged) {
    if (!judged) {
      return h("p", { class: "audit", id: "history-audit", dataset: { verified: "unknown" } },
        "The history's audit chain was not checked: the signoff engine on this page cannot check it.");
    }
    if (judged.verified) {
      return h("p", { class: "audit verified", id: "history-audit", dataset: { verified: "true" } },
        h("span", { "aria-hidden": "true" }, "✓ "),
        `History verified: ${judged.held === 1 ? "its entry holds" : `all ${judged.held} entries hold`} in the audit chain.`);
    }
    const { index, reason } = judged.broken;
    const entry = (request.history ?? [])[index];
    const which = entry ? `entry ${index + 1} (${entry.actor} ${ACTION_WORDS[entry.action] ?? entry.action})` : `entry ${index + 1}`;
    return h("p", { class: "audit broken", id: "history-audit", role: "alert", dataset: { verified: "false", brokenIndex: String(index) } },
      `History not verified: ${which} breaks the audit chain, so it and everything after it may have been altered. ${plain(reason)[0].toUpperCase()}${plain(reason).slice(1)}.`);
  }

  function historyView(judged) {
    const brokenAt = judged?.broken?.index ?? null;
    return h("ol", { class: "timeline", id: "history" }, (request.history ?? []).map((entry, index) => h("li", {
      class: brokenAt !== null && index >= brokenAt ? "unverified" : null,
      dataset: { action: entry.action },
    },
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
        const id = request.id;
        setTimeout(() => show(id).finally(() => { reloading = false; }), 500);
      }
    };
    tick();
    stopTimer();
    timer = setInterval(tick, 1000);
    return h("p", {}, "Pending: ", text, " (", timeElement(request.expiresAt), ")");
  }

  /**
   * Sends one action and shows its outcome: `run()` calls the backend,
   * `done(updated)` adds words to the outcome. `form` is the name of the
   * form it came from (its texts are cleared once sent), `status` the
   * element that says a sign-in is needed.
   */
  async function perform({ name, label, form, status, run, done = null }) {
    markBusy(status);
    say(status, "Sending…");
    sending = true;
    try {
      const updated = await run();
      sending = false;
      ctx.acted(updated, name);
      request = updated;
      body.dataset.version = String(request.version);
      const outcome = `${label}: done. Status ${updated.status}${updated.stage ? `, stage ${updated.stage}` : ""}.`;
      render({ text: done ? `${outcome} ${done(updated)}` : outcome, tone: "ok" }, { sent: form });
      settle(body, "acted");
    } catch (error) {
      // Someone may have acted meanwhile: show the request as it is now,
      // with the refusal above it, rather than the copy this page holds.
      sending = false;
      const refusal = { text: `${label} was refused. ${errorText(error)}`, tone: "error", code: error.code };
      if (error.code === "unauthenticated") {
        say(status, refusal.text, "error");
        status.dataset.code = error.code;
        settle(status, "refused");
        ctx.signInRequired();
        return;
      }
      await show(request.id, { notice: refusal, refused: name });
    }
  }

  /** A submit button that stays focusable when blocked, and says why. */
  function actionButton(name, label, blocked, { tone = null, value = null } = {}) {
    return h("button", {
      type: "submit",
      id: `${name}-button`,
      name: value ? "action" : null,
      value,
      class: tone,
      "aria-disabled": blocked ? "true" : null,
      "aria-describedby": blocked ? `${name}-reason` : null,
      dataset: blocked ? { blocked: blocked.code } : {},
    }, label);
  }

  /**
   * One action's form (cancel, amend, review). `fields` are extra controls
   * before the text area; `check(form)` answers why the form cannot be sent
   * yet (or null); `onSubmit(text, form)` sends it; `done(updated)` words
   * the outcome.
   */
  function actionForm({ name, label, blocked, textarea, confirm, fields = null, check = null, onSubmit, done = null }) {
    const reasonId = `${name}-reason`;
    const statusId = `${name}-status`;
    let field = null;
    if (textarea) {
      field = h("div", { class: "field" },
        h("label", { for: `${name}-text` }, textarea.label),
        h("textarea", { id: `${name}-text`, rows: 2, disabled: Boolean(blocked), "aria-describedby": statusId }));
    }
    const button = actionButton(name, label, blocked, { tone: name === "cancel" ? "danger" : null });
    const status = h("div", { id: statusId, role: "status", "aria-live": "polite", class: "notice" });
    // An action that cannot be undone asks first, in the page (not a
    // browser dialog), and sends nothing until it is confirmed.
    const question = confirm
      ? h("div", { class: "confirm", id: `${name}-confirm`, role: "group", "aria-labelledby": `${name}-confirm-question`, hidden: true },
        h("p", { id: `${name}-confirm-question` }, confirm.question),
        h("div", { class: "actions" },
          h("button", { type: "button", class: "danger", id: `${name}-confirm-yes`, onclick: () => send("") }, confirm.yes),
          h("button", {
            type: "button",
            class: "secondary",
            id: `${name}-confirm-no`,
            onclick: () => {
              question.hidden = true;
              say(status, "Nothing was sent.");
              button.focus();
            },
          }, confirm.no)))
      : null;
    const form = h("form", { class: "act", id: `${name}-form`, "aria-label": label }, fields, field,
      h("div", { class: "actions" }, button, h("span", { class: "reason", id: reasonId }, blocked ? blocked.reason : "")),
      question,
      status);

    function send(text) {
      if (question) question.hidden = true;
      button.setAttribute("aria-disabled", "true");
      return perform({ name, label, form: name, status, run: () => onSubmit(text, form), done });
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (button.getAttribute("aria-disabled") === "true") {
        // A disabled button sends nothing; it says why once more.
        if (blocked) {
          say(status, `Not sent: ${blocked.reason}`);
          settle(status, "blocked");
        }
        return;
      }
      const text = field ? byId(`${name}-text`).value.trim() : "";
      if (textarea?.required && text === "") {
        say(status, textarea.required, "error");
        settle(status, "invalid");
        byId(`${name}-text`).focus();
        return;
      }
      const problem = check?.(form);
      if (problem) {
        say(status, problem.text, "error");
        settle(status, "invalid");
        problem.focus?.focus();
        return;
      }
      if (question) {
        question.hidden = false;
        say(status, "");
        byId(`${name}-confirm-no`).focus();
        return;
      }
      send(text);
    });
    return form;
  }

  /**
   * The review box: one comment text area and the actions approve (the
   * text is its optional comment), reject (the text is the reason it
   * requires) and comment (the text is the comment). Each blocked button
   * says why, below the buttons.
   */
  function respondForm(allowed) {
    const backend = ctx.backend();
    const id = request.id;
    const actions = [
      {
        name: "approve", label: "Approve", blocked: allowed.approve, tone: null,
        run: (text) => backend.approve(id, { comment: text || undefined }),
      },
      {
        name: "reject", label: "Reject", blocked: allowed.reject, tone: "danger",
        required: "A reason is required to reject: write it in the comment box.",
        run: (text) => backend.reject(id, { reason: text }),
      },
      {
        name: "comment", label: "Add comment", blocked: allowed.comment, tone: "secondary",
        required: "Write a comment first.",
        run: (text) => backend.comment(id, { text }),
      },
    ];
    const allBlocked = actions.every((action) => action.blocked);
    const status = h("div", { id: "respond-status", role: "status", "aria-live": "polite", class: "notice" });
    const text = h("textarea", { id: "respond-text", rows: 3, disabled: allBlocked, "aria-describedby": "respond-help respond-status" });
    const blockedOnes = actions.filter((action) => action.blocked);
    const form = h("form", { class: "act", id: "respond-form", "aria-label": "Approve, reject or comment" },
      h("div", { class: "field" },
        h("label", { for: "respond-text" }, "Comment"),
        text,
        h("p", { class: "help", id: "respond-help" }, "Optional when you approve; required to reject (it is the reason) or to add a comment.")),
      h("div", { class: "actions" }, actions.map((action) => actionButton(action.name, action.label, action.blocked, { tone: action.tone, value: action.name }))),
      blockedOnes.length > 0
        ? h("ul", { class: "reasons" }, blockedOnes.map((action) => h("li", { class: "reason", id: `${action.name}-reason` },
          h("strong", {}, `${action.label}: `), action.blocked.reason)))
        : null,
      status);

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const action = actions.find((candidate) => candidate.name === event.submitter?.value);
      if (!action) return;
      if (event.submitter.getAttribute("aria-disabled") === "true") {
        // A disabled button sends nothing; it says why once more.
        if (action.blocked) {
          say(status, `Not sent: ${action.blocked.reason}`);
          status.dataset.action = action.name;
          settle(status, "blocked");
        }
        return;
      }
      const written = text.value.trim();
      status.dataset.action = action.name;
      if (action.required && written === "") {
        say(status, action.required, "error");
        settle(status, "invalid");
        text.focus();
        return;
      }
      for (const button of form.querySelectorAll("button[type=submit]")) button.setAttribute("aria-disabled", "true");
      perform({ name: action.name, label: action.label, form: "respond", status, run: () => action.run(written) });
    });
    return form;
  }

  /** The amend form's controls, filled with the change as it stands. */
  function amendFields() {
    const change = request.change;
    return h("fieldset", {},
      h("legend", {}, "The change"),
      h("p", { class: "help", id: "amend-help" }, "Approvals are kept when only the title or the justification change and the level stays; any other change starts the request again at its first stage."),
      AMEND_FIELDS.map(([key, label, kind]) => {
        const id = `amend-${key}`;
        const value = change[key] === undefined || change[key] === null ? "" : String(change[key]);
        const control = kind === "select"
          ? h("select", { id, name: key }, PRIORITIES.map((priority) => h("option", { value: priority, selected: priority === value }, priority)))
          : h(kind, { id, name: key, ...(kind === "textarea" ? { rows: 3 } : { autocomplete: "off", spellcheck: "false" }) });
        if (kind !== "select") control.value = value;
        return h("div", { class: "field" }, h("label", { for: id }, label), control);
      }));
  }

  /**
   * The change an amend sends: the one filed, with the form's fields in
   * place of its own. The server validates it; an empty optional field is
   * left out, and a risk score that is not a number is sent as typed so
   * that the refusal names it.
   */
  function amendedChange(form) {
    const { emergency, ...change } = structuredClone(request.change);
    void emergency; // an amend may not carry one (not_allowed)
    for (const [key, , kind] of AMEND_FIELDS) {
      const raw = form.querySelector(`#amend-${key}`).value;
      const value = kind === "select" ? raw : raw.trim();
      if (value === "" && (key === "environment" || key === "riskScore")) delete change[key];
      else if (key === "riskScore") change[key] = Number.isFinite(Number(value)) ? Number(value) : value;
      else change[key] = value;
    }
    return change;
  }

  /** Whether the amend just made kept the approvals, in words. */
  function amendOutcome(updated) {
    const entry = [...(updated.history ?? [])].reverse().find((item) => item.action === "amend");
    return entry?.approvalsReset
      ? "The approvals were dropped: the request starts again at its first stage."
      : "The approvals were kept.";
  }

  function reviewFields() {
    // Choosing an outcome answers the "choose one" message, so it goes.
    return h("fieldset", { class: "choice", id: "review-outcome", onchange: () => say(byId("review-status"), "") },
      h("legend", {}, "Outcome"),
      [["ratified", "Ratified: the emergency was justified"], ["flagged", "Flagged: it was not"]].map(([value, text]) =>
        h("label", {}, h("input", { type: "radio", name: "outcome", value, id: `review-outcome-${value}` }), ` ${text}`)));
  }

  /** What an emergency request says about itself and its review. */
  function emergencyView() {
    const emergency = request.emergency;
    if (!emergency) return null;
    const review = emergency.review ?? {};
    return h("section", { class: "panel", "aria-labelledby": "emergency-heading", id: "emergency", dataset: { review: review.status ?? "" } },
      h("h2", { id: "emergency-heading" }, "Emergency"),
      h("p", {}, "Filed as an emergency: ", h("q", {}, emergency.reason)),
      review.status === "open"
        ? h("p", { id: "review-state" }, "The review after the fact is open, due ", timeElement(review.dueAt), ".")
        : h("p", { id: "review-state" }, `Reviewed: ${review.status} by ${review.by} at `, timeElement(review.at),
          review.comment ? [" — ", h("q", {}, review.comment)] : ""));
  }

  function actionsView() {
    const principal = ctx.principal();
    const allowed = allowedActions(ctx.engine(), request, principal);
    const backend = ctx.backend();
    const id = request.id;
    return h("section", { class: "panel", "aria-labelledby": "actions-heading" },
      h("h2", { id: "actions-heading" }, "Act on this request"),
      h("p", { class: "muted" }, principal ? `As ${principal.id}${principal.roles?.length ? ` (${principal.roles.join(", ")})` : ""}.` : "Nobody is signed in."),
      respondForm(allowed),
      actionForm({
        name: "cancel", label: "Cancel request", blocked: allowed.cancel,
        confirm: {
          question: "Cancel this request? Nobody can approve it afterwards, and this cannot be undone.",
          yes: "Yes, cancel it",
          no: "Keep it",
        },
        onSubmit: () => backend.cancel(id),
      }),
      // Offered only to whom the engine allows them: the requester of a
      // pending request amends; an eligible reviewer closes an emergency's
      // open review.
      allowed.amend === null
        ? actionForm({
          name: "amend", label: "Amend the change", blocked: null,
          fields: amendFields(),
          onSubmit: (_text, form) => backend.amend(id, amendedChange(form)),
          done: amendOutcome,
        })
        : null,
      allowed.review === null
        ? actionForm({
          name: "review", label: "Close the review", blocked: null,
          fields: reviewFields(),
          textarea: { label: "Review comment (optional)" },
          check: (form) => (form.querySelector('input[name="outcome"]:checked')
            ? null
            : { text: "Choose an outcome: ratified or flagged.", focus: byId("review-outcome-ratified") }),
          onSubmit: (text, form) => backend.review(id, {
            outcome: form.querySelector('input[name="outcome"]:checked').value,
            comment: text || undefined,
          }),
        })
        : null);
  }

  /** Shows `notice` (`{ text, tone, code }`, or null for none) above the request. */
  function announceNotice(notice) {
    say(announce, notice?.text ?? "", notice?.tone ?? "");
    if (notice?.code) announce.dataset.code = notice.code;
    else delete announce.dataset.code;
  }

  /**
   * Draws the request. `notice` (`{ text, tone, code }`) is announced above
   * it (`undefined` keeps the one on show). Texts typed into the action
   * forms survive a redraw, except the one just `sent`, and so does the
   * focus.
   */
  function render(notice = null, { sent = null } = {}) {
    const change = request.change;
    const typed = new Map([...body.querySelectorAll("form.act textarea, form.act input:not([type=radio]), form.act select")].map((field) => [field.id, field.value]));
    const focused = body.contains(document.activeElement) ? document.activeElement.id : null;
    const judged = verification();
    heading.textContent = change.title;
    if (notice !== undefined) announceNotice(notice);
    replace(body,
      // The status once, as its badge; then the stage a pending request is at.
      h("p", {}, statusBadge(request.status, { id: "request-status", dataset: { status: request.status } }),
        request.stage ? [" · current stage ", h("strong", { id: "request-stage" }, request.stage)] : null),
      countdownView(),
      h("div", { class: "request-grid" },
        h("div", {},
          h("section", { class: "panel", "aria-labelledby": "level-heading" },
            h("h2", { id: "level-heading" }, "Approval level ", h("span", { class: "level-name", id: "request-level" }, request.level)),
            explanationView(request.levelExplanation, "request-explanation"),
            h("h3", {}, "Stages"),
            stagesView(),
            approversView(ctx.engine(), request, directory),
            request.rejection
              ? h("p", { class: "notice error", id: "rejection" }, `Rejected by ${request.rejection.by} at stage ${request.rejection.stage}: “${request.rejection.reason}”`)
              : null),
          emergencyView(),
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
            change.diff ? [h("h3", { id: "change-diff-heading" }, "Diff"), diffView(change.diff, { id: "change-diff", label: "Diff of the change" })] : null),
          h("section", { class: "panel", "aria-labelledby": "history-heading" },
            h("h2", { id: "history-heading" }, "History"),
            auditView(judged),
            historyView(judged))),
        actionsView()));
    for (const [id, value] of typed) {
      const field = document.getElementById(id);
      if (field && !field.disabled && !id.startsWith(`${sent}-`)) field.value = value;
    }
    if (focused && !sent) document.getElementById(focused)?.focus();
  }

  /**
   * Someone changed request `id` (an event of the server's stream): when it
   * is the one on show, fetch it and redraw it if it moved on. This is no
   * load of the view, so `#request-body` keeps its settled state; the
   * request shown is `data-version`.
   */
  async function changed(id) {
    if (!request || request.id !== id || sending) return;
    const seq = loadSeq;
    let fresh;
    try {
      fresh = await ctx.backend().get(id);
    } catch {
      return; // what is shown stays; the next event or load tries again
    }
    if (seq !== loadSeq || sending || request?.id !== id || fresh.version <= request.version) return;
    request = fresh;
    render(undefined);
    body.dataset.version = String(request.version);
  }

  /**
   * Loads and shows the request `id`; `notice` is announced above it (a
   * refusal that made the page load the request again). `#request-body`
   * settles as "loaded" (or "refused" after a refusal, "error").
   */
  async function show(id, { notice = null, refused = null } = {}) {
    const mine = ++loadSeq;
    stopTimer();
    body.dataset.id = id;
    markBusy(body);
    if (notice) {
      // The refusal shows at once, and stays if the request cannot load.
      announceNotice(notice);
    } else {
      heading.textContent = "Request";
      say(announce, "");
      replace(body, h("p", { role: "status" }, "Loading…"));
    }
    try {
      // Who may sign in names those who could approve; it is asked once
      // per session, alongside the request.
      const [fresh, known] = await Promise.all([ctx.backend().get(id), ctx.directory()]);
      if (mine !== loadSeq) return;
      request = fresh;
      directory = known;
      render(notice);
      body.dataset.version = String(request.version);
      settle(body, refused ? "refused" : "loaded");
    } catch (error) {
      if (mine !== loadSeq) return;
      request = null;
      if (error.code === "unauthenticated") {
        settle(body, "error");
        ctx.signInRequired();
        return;
      }
      replace(body, h("p", { class: "notice error", role: "alert", dataset: { code: error.code } },
        `The request could not load. ${errorText(error)}`));
      settle(body, "error");
    }
  }

  return {
    show,
    changed,
    hide() {
      stopTimer();
      loadSeq += 1;
      delete body.dataset.state;
    },
    /** Re-renders the buttons after the principal changed. */
    refresh() {
      if (!request) return;
      render(null);
      settle(body, "loaded");
    },
  };
}
