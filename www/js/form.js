// The change form: collects a PolicyChange, validates it on every keystroke
// with the engine (previewChange with the rules in force, or validateChange
// before the rules are known), shows each problem next to its field, shows
// the approval level and why, and files the request.

import { problemsOf } from "./backends.js";
import { byId, h, markBusy, replace, say, settle } from "./dom.js";
import { describeStages, explanationView } from "./explain.js";
import { FIELD_LABELS as LABELS, errorText, problemText } from "./messages.js";

const FIELDS = ["policyId", "policyType", "changeKind", "environment", "title", "justification", "diff", "riskScore", "priority"];

const INTEGER = /^[+-]?\d+$/;
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

let rowCounter = 0;

/**
 * Wires the form. `ctx` gives `engine()`, `rules()` (the document or null),
 * `rulesDigest()`, `refreshRules()` (loads the rules in force again and
 * resolves to their digest), `backend()`, `principal()`, `canSubmit()` (null
 * or a reason) and `created(request)`.
 */
export function setupForm(ctx) {
  const form = byId("change-form");
  const rowsBox = byId("metadata-rows");
  const summary = byId("validation-summary");
  const levelPanel = byId("level-panel");
  const status = byId("submit-status");
  const touched = new Set();
  let showAll = false;
  let lastShown = null;
  let lastRules = null;
  // { body, key, filed }: one Idempotency-Key per draft. Submitting the same
  // draft again (a second click, a retry after an error, or after it was
  // filed) reuses the key, so the server answers with the request already
  // filed instead of filing a second one. Any edit starts a new draft.
  let draft = null;
  let filing = false;

  function control(name) {
    return form.elements.namedItem(name);
  }

  function addRow({ key = "", type = "string", value = "" } = {}) {
    rowCounter += 1;
    const id = `m${rowCounter}`;
    const keyInput = h("input", { id: `${id}-key`, class: "meta-key", autocomplete: "off", spellcheck: "false", "aria-describedby": `${id}-err` });
    keyInput.value = key;
    const typeSelect = h("select", { id: `${id}-type`, class: "meta-type" },
      h("option", { value: "string" }, "text"),
      h("option", { value: "number" }, "number"),
      h("option", { value: "boolean" }, "true/false"));
    typeSelect.value = type;
    const valueBox = h("div", { class: "field" });
    const row = h("div", { class: "meta-row", dataset: { row: id } },
      h("div", { class: "field" }, h("label", { for: `${id}-key` }, "Key"), keyInput),
      h("div", { class: "field" }, h("label", { for: `${id}-type` }, "Type"), typeSelect),
      valueBox,
      h("button", {
        type: "button",
        class: "secondary remove-row",
        "aria-label": "Remove this metadata row",
        onclick: () => {
          const next = row.nextElementSibling ?? row.previousElementSibling;
          row.remove();
          validate();
          (next?.querySelector(".meta-key") ?? byId("add-metadata")).focus();
        },
      }, "Remove"),
      h("ul", { class: "field-error", id: `${id}-err` }));
    const renderValue = (current) => {
      const attrs = { id: `${id}-value`, class: "meta-value", "aria-describedby": `${id}-err` };
      let input;
      if (typeSelect.value === "boolean") {
        input = h("select", attrs, h("option", { value: "true" }, "true"), h("option", { value: "false" }, "false"));
        input.value = current === "false" ? "false" : "true";
      } else {
        input = h("input", { ...attrs, autocomplete: "off", inputmode: typeSelect.value === "number" ? "decimal" : null });
        input.value = current;
      }
      replace(valueBox, h("label", { for: `${id}-value` }, "Value"), input);
    };
    renderValue(String(value));
    typeSelect.addEventListener("change", () => renderValue(row.querySelector(".meta-value").value));
    rowsBox.append(row);
    return row;
  }

  function rows() {
    return [...rowsBox.querySelectorAll(".meta-row")].map((row) => ({
      row,
      key: row.querySelector(".meta-key").value,
      type: row.querySelector(".meta-type").value,
      value: row.querySelector(".meta-value").value,
    }));
  }

  /** The change as the form holds it; empty optional fields are left out. */
  function collect() {
    const change = {};
    for (const name of ["policyId", "policyType", "changeKind", "environment", "title", "justification", "diff"]) {
      const value = control(name).value;
      if (value !== "") change[name] = value;
    }
    const risk = control("riskScore").value.trim();
    if (risk !== "") change.riskScore = INTEGER.test(risk) ? Number(risk) : risk;
    change.priority = control("priority").value;
    const filled = rows().filter((row) => row.key !== "" || row.value !== "");
    if (filled.length > 0) {
      change.metadata = {};
      for (const row of filled) {
        let value = row.value;
        if (row.type === "number") value = NUMBER.test(value.trim()) ? Number(value) : value;
        if (row.type === "boolean") value = value === "true";
        change.metadata[row.key] = value;
      }
    }
    return change;
  }

  /**
   * Problems the engine cannot see: a key given twice would be lost in JSON,
   * and a "number" value that is not one would be sent as text.
   */
  function localProblems() {
    const seen = new Map();
    const problems = [];
    for (const { row, key, type, value } of rows()) {
      if (type === "number" && value.trim() !== "" && !NUMBER.test(value.trim())) {
        problems.push({ row, control: ".meta-value", item: { path: `metadata.${key}`, code: "invalid_type", message: "must be a number, such as 3 or 2.5" } });
      }
      if (key === "") continue;
      if (seen.has(key)) {
        problems.push({ row, item: { path: `metadata.${key}`, code: "duplicate", message: `the key “${key}” is already used above` } });
      }
      seen.set(key, row);
    }
    return problems;
  }

  function rowForKey(key) {
    // The last row with a key is the one whose value is sent.
    const matching = rows().filter((row) => row.key === key);
    return matching.at(-1)?.row ?? null;
  }

  function clearErrors() {
    for (const list of form.querySelectorAll(".field-error")) list.replaceChildren();
    for (const element of form.querySelectorAll("[aria-invalid]")) element.removeAttribute("aria-invalid");
  }

  function errorItem(item) {
    return h("li", { dataset: { code: item.code, path: item.path } }, problemText(item));
  }

  /**
   * Shows `items` next to their fields. Returns the control of the first
   * problem, for focus. Untouched fields stay quiet unless `everything`.
   */
  function showErrors(items, extra, everything) {
    clearErrors();
    let first = null;
    const mark = (element) => {
      element?.setAttribute("aria-invalid", "true");
      first ??= element;
    };
    for (const { row, item, control: which = ".meta-key" } of extra) {
      row.querySelector(".field-error").append(errorItem(item));
      mark(row.querySelector(which));
    }
    for (const item of items) {
      const path = item.path ?? "";
      const top = path.split(/[.[]/)[0];
      if (path.startsWith("metadata.")) {
        const row = rowForKey(path.slice("metadata.".length));
        if (row) {
          if (!everything && !touched.has("metadata")) continue;
          row.querySelector(".field-error").append(errorItem(item));
          mark(row.querySelector(item.code === "invalid_format" ? ".meta-key" : ".meta-value"));
          continue;
        }
      }
      if (FIELDS.includes(top) || top === "metadata") {
        if (!everything && !touched.has(top)) continue;
        byId(`e-${top}`).append(errorItem(item));
        mark(top === "metadata" ? rowsBox.querySelector("input") ?? byId("add-metadata") : control(top));
      } else {
        byId("e-form").append(h("li", { dataset: { code: item.code, path: item.path } }, path ? `${path}: ${problemText(item)}` : problemText(item)));
      }
    }
    return first;
  }

  function summarize(items, extra, level) {
    const all = [...extra.map((entry) => entry.item), ...items];
    if (all.length === 0) {
      summary.className = "validation-summary ok";
      replace(summary, level ? `Valid. This change needs the approval level ${level}.` : "Valid.");
      return;
    }
    summary.className = "validation-summary bad";
    replace(summary,
      all.length === 1 ? "1 problem to fix:" : `${all.length} problems to fix:`,
      h("ul", {}, all.map((item) => {
        const top = (item.path ?? "").split(/[.[]/)[0];
        const label = item.path?.startsWith("metadata.") ? `Metadata ${item.path.slice(9)}` : LABELS[top] ?? (item.path || "Change");
        return h("li", { dataset: { code: item.code, path: item.path } }, `${label}: ${problemText(item)}`);
      })));
  }

  function showLevel(result, rules) {
    if (!result.valid || !result.level) {
      replace(levelPanel, h("p", { class: "muted" }, rules
        ? "The approval level shows here once the change is valid."
        : "Sign in (or use local mode) to load the rules: the approval level shows here once they are known."));
      return;
    }
    const level = (rules?.levels ?? []).find((item) => item.name === result.level);
    replace(levelPanel,
      h("p", {}, "Approval level ", h("span", { class: "level-name", id: "preview-level" }, result.level)),
      level ? describeStages(level) : null,
      explanationView(result.explanation));
  }

  // The rules in force, validated once per document rather than on every
  // keystroke (parsing the rules is most of a preview's cost).
  let compiled = { source: null, rules: null };
  function compiledRules(engine, rules) {
    if (compiled.source !== rules) {
      const fresh = new engine.CompiledRules(rules);
      compiled.rules?.free();
      compiled = { source: rules, rules: fresh };
    }
    return compiled.rules;
  }

  /** Validates the form now; returns `{ valid, first }`. */
  function validate({ everything = showAll } = {}) {
    const engine = ctx.engine();
    if (!engine) return { valid: false, first: null };
    const change = collect();
    const rules = ctx.rules();
    let result;
    try {
      result = rules
        ? engine.previewChange(change, compiledRules(engine, rules))
        : (() => {
          const errors = engine.validateChange(change);
          return { valid: errors.length === 0, errors, level: null, explanation: null };
        })();
    } catch (error) {
      result = { valid: false, errors: [{ path: "", code: error.code ?? "internal", message: error.message }], level: null, explanation: null };
    }
    const extra = localProblems();
    const first = showErrors(result.errors ?? [], extra, everything);
    // Re-render the summary and the level only when they change: an
    // unchanged live region is not announced again, and the page does not
    // jump under the pointer.
    const shown = JSON.stringify([result, extra.map((entry) => entry.item), Boolean(rules)]);
    if (shown !== lastShown || rules !== lastRules) {
      lastShown = shown;
      lastRules = rules;
      summarize(result.errors ?? [], extra, result.valid ? result.level : null);
      showLevel({ ...result, valid: result.valid && extra.length === 0 }, rules);
    }
    form.dataset.valid = String(result.valid && extra.length === 0);
    return { valid: result.valid && extra.length === 0, first, change, level: result.valid ? result.level : null };
  }

  function touch(event) {
    const target = event.target;
    if (target.closest(".meta-row, fieldset.metadata")) touched.add("metadata");
    else if (target.name) touched.add(target.name);
  }

  form.addEventListener("input", (event) => {
    touch(event);
    validate();
  });
  form.addEventListener("change", (event) => {
    touch(event);
    validate();
  });
  form.addEventListener("focusout", (event) => {
    // Leaving a field you typed in, or left empty, shows its problems.
    if (event.target.value !== undefined && event.target.matches("input, textarea, select")) {
      touch(event);
      validate();
    }
  });
  byId("add-metadata").addEventListener("click", () => {
    const row = addRow();
    row.querySelector(".meta-key").focus();
    validate();
  });
  form.addEventListener("reset", () => {
    // After the browser resets the controls.
    setTimeout(() => {
      rowsBox.replaceChildren();
      touched.clear();
      showAll = false;
      draft = null;
      say(status, "");
      validate();
    });
  });

  /** The submit button is busy while a request is being filed. */
  function setFiling(on) {
    filing = on;
    const button = byId("submit-change");
    button.disabled = on;
    if (on) button.setAttribute("aria-busy", "true");
    else button.removeAttribute("aria-busy");
  }

  /** Ends a submission: its message, tone and outcome (`data-state`). */
  function outcome(state, text, tone, code = null) {
    say(status, text, tone);
    if (code) status.dataset.code = code;
    else delete status.dataset.code;
    settle(status, state);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (filing) return;
    showAll = true;
    const shown = validate({ everything: true });
    if (!shown.valid) {
      outcome("invalid", "The change has problems: they are listed next to each field.", "error");
      (shown.first ?? summary).focus();
      return;
    }
    const blocked = ctx.canSubmit();
    if (blocked) {
      outcome("blocked", blocked, "error");
      return;
    }
    setFiling(true);
    markBusy(status);
    say(status, "Checking the rules in force…");
    try {
      // The rules may have changed since this page loaded them: the level on
      // show would then not be the one the request gets. Check the digest
      // first, and when it moved, preview again before filing anything.
      const previewedWith = ctx.rulesDigest();
      const digest = await ctx.refreshRules();
      if (digest === null && previewedWith !== null) {
        outcome("refused", "The rules in force could not be loaded, so nothing was filed. Try again in a moment.", "error");
        return;
      }
      let note = "";
      let checked = shown;
      if (digest !== previewedWith) {
        checked = validate({ everything: true });
        if (!checked.valid) {
          outcome("rules-changed",
            "The rules in force changed since this page loaded them, and this change no longer fits them: nothing was filed. The problems are listed next to each field.",
            "error");
          (checked.first ?? summary).focus();
          return;
        }
        if (checked.level !== shown.level) {
          outcome("rules-changed",
            `The rules in force changed since this page loaded them: this change now needs the approval level ${checked.level} (it showed ${shown.level}). Nothing was filed: check the preview and submit again.`,
            "error");
          byId("preview-heading").scrollIntoView({ block: "nearest" });
          return;
        }
        note = ` The rules in force changed meanwhile; the level stayed ${checked.level}.`;
      }
      const body = JSON.stringify(checked.change);
      if (draft?.body !== body) draft = { body, key: crypto.randomUUID(), filed: null };
      say(status, "Filing the request…");
      const request = await ctx.backend().create(checked.change, { idempotencyKey: draft.key });
      const again = draft.filed === request.id;
      draft.filed = request.id;
      if (request.level !== checked.level && !again) {
        note += ` The rules changed while it was being filed: it got the level ${request.level}, not ${checked.level}.`;
      }
      say(status, "");
      status.classList.add("ok");
      replace(status,
        again ? "This draft was already filed, so nothing new was filed: " : `Filed: level ${request.level}, status ${request.status}.${note} `,
        h("a", { href: `#request/${request.id}`, id: "created-link", dataset: { id: request.id } }, `Open “${request.change.title}”`));
      delete status.dataset.code;
      settle(status, again ? "already-filed" : "filed");
      ctx.created(request);
    } catch (error) {
      const items = problemsOf(error);
      if (items.length > 0) {
        // The server judged with the rules in force there, which may be newer
        // than the ones this page holds: show its items, then catch up.
        const firstBad = showErrors(items, localProblems(), true);
        summarize(items, [], null);
        showLevel({ valid: false }, ctx.rules());
        lastShown = null;
        firstBad?.focus();
        await ctx.refreshRules();
      }
      outcome("refused", `The request was not filed. ${errorText(error)}`, "error", error.code);
    } finally {
      setFiling(false);
    }
  });

  return {
    validate,
    addRow,
    /** Fills the form from a change object (used to try an example). */
    fill(change) {
      for (const name of FIELDS) {
        if (change[name] !== undefined) control(name).value = String(change[name]);
      }
      rowsBox.replaceChildren();
      for (const [key, value] of Object.entries(change.metadata ?? {})) {
        addRow({ key, value, type: typeof value === "number" ? "number" : typeof value === "boolean" ? "boolean" : "string" });
      }
      validate();
    },
  };
}
