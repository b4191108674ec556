// The rules view: the document in force with its digest, and an editor that
// validates the JSON with the engine on every keystroke, lists every problem
// (path, code, message), and saves with If-Match so that nobody overwrites a
// change they have not seen.

import { diffView, unifiedDiff } from "./diff.js";
import { byId, h, markBusy, replace, say, settle } from "./dom.js";
import { formatSeconds, whoMayApprove } from "./explain.js";
import { errorText, plain, problemText } from "./messages.js";

function conditionText(when) {
  const parts = [];
  if (when.policyTypes) parts.push(`type is ${when.policyTypes.join(" or ")}`);
  if (when.changeKinds) parts.push(`kind is ${when.changeKinds.join(" or ")}`);
  if (when.environments) parts.push(`environment is ${when.environments.join(" or ")}`);
  if (when.policyIdPrefix !== undefined && when.policyIdPrefix !== null) parts.push(`policy id starts with “${when.policyIdPrefix}”`);
  if (when.riskScoreAtLeast !== undefined && when.riskScoreAtLeast !== null) parts.push(`risk score ≥ ${when.riskScoreAtLeast}`);
  if (when.priorities) parts.push(`priority is ${when.priorities.join(" or ")}`);
  for (const [key, value] of Object.entries(when.metadata ?? {})) parts.push(`metadata ${key} = ${JSON.stringify(value)}`);
  return parts.length ? parts.join(" and ") : "every change";
}

/** The rules document in words and tables. */
export function rulesSummary(rules, digest) {
  return h("div", { class: "panel", id: "rules-in-force" },
    h("p", {}, "Digest ", h("code", { id: "rules-digest" }, digest ?? "(not reported)")),
    h("p", {}, "Default level: ", h("strong", {}, rules.defaultLevel),
      rules.policyTypes ? [" · allowed policy types: ", rules.policyTypes.map((type, i) => [i ? ", " : "", h("code", {}, type)])] : null,
      rules.rateLimit
        ? ` · at most ${rules.rateLimit.requests} new requests per ${formatSeconds(rules.rateLimit.perSeconds)} per requester${rules.rateLimit.burst ? ` (bursts of ${rules.rateLimit.burst})` : ""}`
        : null),
    h("table", {},
      h("caption", {}, "Levels, least to most strict"),
      h("thead", {}, h("tr", {}, ["Level", "Pending for", "Stages"].map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, rules.levels.map((level) => h("tr", {},
        h("th", { scope: "row" }, level.name),
        h("td", {}, formatSeconds(level.ttlSeconds)),
        h("td", {}, level.stages.length === 0
          ? "approved at once"
          : h("ol", {}, level.stages.map((stage) => h("li", {}, h("strong", {}, stage.name), ` — ${whoMayApprove(stage)}`)))))))),
    h("table", {},
      h("caption", {}, "Rules (the strictest matching level wins)"),
      h("thead", {}, h("tr", {}, ["Rule", "When", "Level"].map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, (rules.rules ?? []).map((rule) => h("tr", {},
        h("th", { scope: "row" }, rule.name),
        h("td", {}, conditionText(rule.when ?? {})),
        h("td", {}, rule.level))))),
    h("details", {}, h("summary", {}, "The document as JSON"), h("pre", { class: "diff" }, JSON.stringify(rules, null, 2))));
}

/** The answer of a simulation, for people. */
function impactView(what) {
  if (!what.valid) {
    return h("p", { class: "notice error" },
      `The draft is not valid rules (${what.errors.length === 1 ? "1 problem" : `${what.errors.length} problems`}, listed above): nothing was re-decided.`);
  }
  const examined = what.examined === 1 ? "1 request" : `${what.examined} requests`;
  const summary = what.changed === 0
    ? `None of the ${examined} examined would get another level.`
    : `${what.changed} of the ${examined} examined would get another level.`;
  const parts = [h("p", { id: "rules-impact-summary", dataset: { examined: String(what.examined), changed: String(what.changed) } }, summary)];
  if (what.items.length > 0) {
    parts.push(h("table", { id: "rules-impact-list" },
      h("caption", {}, "Requests whose level would change"),
      h("thead", {}, h("tr", {}, ["Request", "Status", "Level now", "Level under the draft", "Why"].map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, what.items.map((item) => h("tr", { dataset: { id: item.id, newLevel: item.newLevel } },
        h("td", {}, h("a", { href: `#request/${item.id}` }, item.title)),
        h("td", {}, item.status),
        h("td", {}, item.level),
        h("td", {}, item.newLevel),
        h("td", {}, item.newExplanation.summary))))));
  }
  if (what.warnings.length > 0) {
    parts.push(h("ul", { id: "rules-impact-warnings", class: "notice warning" },
      what.warnings.map((warning) => h("li", { dataset: { code: warning.code, path: warning.path } },
        `${warning.path}: ${warning.message}`))));
  }
  return parts;
}

// The code of a warning: a stage the known principals could never meet.
const UNSATISFIABLE = "unsatisfiable";

// A stage nobody holds the role of: an engine that judges the principals
// it is given warns of it.
const PROBE = {
  levels: [{ name: "probe", ttlSeconds: 60, stages: [{ name: "probe", requiredApprovals: 1, eligibleRoles: ["probe"] }] }],
  defaultLevel: "probe",
  rules: [],
};
const judging = new WeakMap();

/**
 * Whether this engine's `validateRules(rules, { principals })` warns of
 * unsatisfiable stages (an older package ignores the principals, and would
 * then seem to say that every stage can be met).
 */
function judgesPrincipals(engine) {
  if (!judging.has(engine)) {
    let judges = false;
    try {
      judges = engine.validateRules(PROBE, { principals: [{ id: "probe", roles: ["other"] }] }).some((item) => item.code === UNSATISFIABLE);
    } catch {
      judges = false;
    }
    judging.set(engine, judges);
  }
  return judging.get(engine);
}

/**
 * `ctx` gives `engine()`, `backend()`, `principal()`, `rulesState()` ({ rules,
 * digest } or null), `reloadRules()` (loads the rules in force again and
 * resolves to the new state), `rulesSaved(state)` and `directory()` (resolves
 * to who may sign in, `{ known, principals, … }`, and never rejects).
 */
export function setupRules(ctx) {
  const current = byId("rules-current");
  const status = byId("rules-status");
  const text = byId("rules-text");
  const problems = byId("rules-problems");
  const save = byId("rules-save");
  const reason = byId("rules-save-reason");
  const saveStatus = byId("rules-save-status");
  const warningsBox = byId("rules-warnings");
  const diffBody = byId("rules-diff-body");
  let dirty = false;
  // Who may sign in, once known: the stages they could never meet are
  // warned about as the draft is typed.
  let directory = null;
  let asked = 0; // only the latest question about them is answered

  /**
   * Parses and validates the editor's text: `{ document, items, warnings }`.
   * The engine judges the draft against the principals who may sign in,
   * when they are known: its `unsatisfiable` items are warnings, which never
   * keep a document from being saved.
   */
  function check() {
    let document;
    try {
      document = JSON.parse(text.value);
    } catch (error) {
      return { document: null, items: [{ path: "", code: "invalid_type", message: `is not JSON: ${error.message}` }], warnings: [] };
    }
    const engine = ctx.engine();
    if (!engine) return { document, items: [], warnings: [] };
    try {
      const judged = directory?.known
        ? engine.validateRules(document, { principals: directory.principals })
        : engine.validateRules(document);
      return {
        document,
        items: judged.filter((item) => item.code !== UNSATISFIABLE),
        warnings: judged.filter((item) => item.code === UNSATISFIABLE),
      };
    } catch (error) {
      return { document, items: [{ path: "", code: error.code ?? "internal", message: error.message }], warnings: [] };
    }
  }

  function showProblems(items) {
    text.setAttribute("aria-invalid", items.length ? "true" : "false");
    if (items.length === 0) {
      replace(problems, h("p", { class: "notice ok" }, "No problems: this document can be saved."));
      return;
    }
    replace(problems, h("table", { id: "rules-problem-list" },
      h("caption", {}, items.length === 1 ? "1 problem" : `${items.length} problems`),
      h("thead", {}, h("tr", {}, ["Path", "Code", "Message"].map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, items.map((item) => h("tr", { dataset: { code: item.code, path: item.path } },
        h("td", {}, item.path || "(document)"), h("td", {}, h("code", {}, item.code)), h("td", {}, problemText(item)))))));
  }

  /**
   * The stages nobody known could meet, apart from the problems: they do
   * not keep the draft from being saved. `data-principals` says whether
   * they could be judged (`known`), not (`unknown`), or not yet (`loading`).
   */
  function showWarnings(warnings) {
    const engine = ctx.engine();
    const unsupported = Boolean(directory?.known) && Boolean(engine) && !judgesPrincipals(engine);
    warningsBox.dataset.principals = directory === null ? "loading" : unsupported ? "unsupported" : directory.known ? "known" : "unknown";
    if (directory === null) {
      replace(warningsBox);
      return;
    }
    if (unsupported) {
      replace(warningsBox, h("p", { class: "muted", id: "rules-warnings-unjudged" },
        "Stages nobody could approve are not looked for: the signoff engine on this page cannot judge them yet."));
      return;
    }
    if (!directory.known) {
      replace(warningsBox, h("p", { class: "muted", id: "rules-warnings-unjudged" }, directory.missing || !directory.failed
        ? "Stages nobody could approve are not looked for: the server does not say who may sign in."
        : "Stages nobody could approve are not looked for: who may sign in could not be loaded."));
      return;
    }
    if (warnings.length === 0) {
      replace(warningsBox, h("p", { class: "muted", id: "rules-warnings-none" },
        `Every stage can be met by the ${directory.principals.length} principals who may sign in.`));
      return;
    }
    replace(warningsBox, h("div", { class: "notice warning" },
      h("p", { id: "rules-warnings-heading" }, h("strong", {}, warnings.length === 1 ? "1 warning" : `${warnings.length} warnings`),
        ": saving is still allowed, but nobody who may sign in could meet these stages."),
      h("ul", { id: "rules-warning-list", "aria-labelledby": "rules-warnings-heading" }, warnings.map((warning) =>
        h("li", { dataset: { code: warning.code, path: warning.path } }, h("code", {}, warning.path), ` — ${plain(warning.message)}.`)))));
  }

  /**
   * The draft against the rules in force, line by line: both as the engine
   * would read them (pretty JSON), so that spacing alone changes nothing; a
   * draft that is not JSON is compared as typed.
   */
  function showDiff(document) {
    const state = ctx.rulesState();
    if (!state) {
      replace(diffBody, h("p", { class: "muted" }, "The rules in force are not loaded: nothing to compare with."));
      return;
    }
    const inForce = JSON.stringify(state.rules, null, 2);
    const draft = document === null ? text.value : JSON.stringify(document, null, 2);
    const diff = unifiedDiff(inForce, draft, { from: "rules in force", to: "draft" });
    if (diff === "") {
      replace(diffBody, h("p", { class: "muted", id: "rules-diff-none" }, "No changes: the draft is the rules in force."));
      return;
    }
    replace(diffBody, diffView(diff, { id: "rules-diff-text", label: "Changes of the draft against the rules in force" }));
  }

  /** Checks the draft and shows its problems, warnings and changes. */
  function judge() {
    const judged = check();
    showProblems(judged.items);
    showWarnings(judged.warnings);
    showDiff(judged.document);
    return judged;
  }

  /** Asks who may sign in (once per session), then judges the draft again. */
  function learnPrincipals() {
    const mine = ++asked;
    ctx.directory().then((known) => {
      if (mine !== asked || directory === known) return;
      directory = known;
      judge();
    });
  }

  function updateSave() {
    const principal = ctx.principal();
    const state = ctx.rulesState();
    let why = "";
    // Whether this principal may replace the rules is the engine's decision.
    const refusal = principal && ctx.engine() ? ctx.engine().mayReplaceRules(principal) : null;
    if (!principal) why = "Sign in as an admin to save rules.";
    else if (refusal) why = `Saving rules needs the admin role; ${principal.id} holds ${(principal.roles ?? []).join(", ") || "no role"}.`;
    else if (!state) why = "Load the rules in force first.";
    if (why) {
      save.setAttribute("aria-disabled", "true");
      reason.textContent = why;
    } else {
      save.removeAttribute("aria-disabled");
      reason.textContent = "";
    }
  }

  function fillEditor(force = false) {
    const state = ctx.rulesState();
    if (state && (force || !dirty)) {
      text.value = JSON.stringify(state.rules, null, 2);
      dirty = false;
    }
    judge();
  }

  text.addEventListener("input", () => {
    dirty = true;
    say(saveStatus, "");
    judge();
  });
  // Revert loads the rules in force from where they live: after a refused
  // save the copy this page holds is the stale one.
  const revert = byId("rules-revert");
  revert.addEventListener("click", async () => {
    revert.disabled = true;
    markBusy(saveStatus);
    say(saveStatus, "Loading the rules in force…");
    try {
      const state = await ctx.reloadRules();
      if (!state) {
        say(saveStatus, "The rules in force could not be loaded: nothing was reverted.", "error");
        settle(saveStatus, "error");
        return;
      }
      fillEditor(true);
      say(saveStatus, `Reverted to the rules in force (digest ${state.digest ?? "not reported"}).`, "ok");
      delete saveStatus.dataset.code;
      settle(saveStatus, "reverted");
    } finally {
      revert.disabled = false;
    }
  });
  byId("rules-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (save.getAttribute("aria-disabled") === "true") return;
    // Warnings never keep a document from being saved; problems do.
    const { document, items } = judge();
    if (items.length > 0) {
      say(saveStatus, "Fix the problems listed above first.", "error");
      settle(saveStatus, "invalid");
      text.focus();
      return;
    }
    save.setAttribute("aria-disabled", "true");
    markBusy(saveStatus);
    say(saveStatus, "Saving…");
    try {
      const state = await ctx.backend().putRules(document, ctx.rulesState()?.digest);
      dirty = false;
      ctx.rulesSaved(state);
      // Stages the server's principals could never meet: saved all the
      // same, and said.
      const warnings = (state.warnings ?? []).map((warning) => `${warning.path}: ${plain(warning.message)}`);
      const warned = warnings.length === 0 ? "" : ` Warning: ${warnings.join("; ")}.`;
      say(saveStatus, `Saved. The new digest is ${state.digest ?? "(not reported)"}.${warned}`, "ok");
      delete saveStatus.dataset.code;
      settle(saveStatus, "saved");
    } catch (error) {
      if (error.items?.length) showProblems(error.items);
      const why = error.code === "precondition_failed"
        ? "Someone changed the rules since you loaded them: revert to see theirs, then apply your edit again."
        : errorText(error);
      say(saveStatus, `Not saved. ${why}`, "error");
      saveStatus.dataset.code = error.code;
      settle(saveStatus, "refused");
    } finally {
      updateSave();
    }
  });

  // What the draft would change: the engine (in the server, or in the page
  // over the local cache) re-decides the requests already filed.
  const simulate = byId("rules-simulate");
  const impact = byId("rules-impact");
  simulate.addEventListener("click", async () => {
    const { document, items } = check();
    markBusy(impact);
    if (document === null) {
      // Text that is not JSON is no draft at all: nothing to re-decide.
      replace(impact, h("p", { class: "notice error" },
        `The draft is not JSON (${problemText(items[0])}): nothing was re-decided.`));
      delete impact.dataset.code;
      settle(impact, "invalid");
      return;
    }
    simulate.disabled = true;
    replace(impact, h("p", { class: "muted" }, "Re-deciding the requests already filed…"));
    try {
      const what = await ctx.backend().simulateRules(document);
      replace(impact, impactView(what));
      delete impact.dataset.code;
      settle(impact, what.valid ? "simulated" : "invalid");
    } catch (error) {
      replace(impact, h("p", { class: "notice error" }, `Could not show what the draft would change. ${errorText(error)}`));
      impact.dataset.code = error.code;
      settle(impact, "refused");
    } finally {
      simulate.disabled = false;
    }
  });

  return {
    /** Shows the rules in force (as the app last loaded them). */
    render() {
      const state = ctx.rulesState();
      if (state) {
        say(status, "");
        replace(current, rulesSummary(state.rules, state.digest));
      } else {
        replace(current);
        say(status, ctx.backend().kind === "server" ? "Sign in to see the rules in force." : "Loading the local rules…");
      }
      fillEditor();
      updateSave();
      learnPrincipals();
    },
    /** Who may sign in changed (another mode or session): ask again. */
    forgetPrincipals() {
      asked += 1;
      directory = null;
    },
  };
}
