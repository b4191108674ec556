// Small DOM helpers shared by the views. No framework: elements are built
// with `h` and replaced wholesale when their data changes.

/**
 * Creates an element. `attrs` keys are attributes, except `on*` functions
 * (event listeners) and `dataset`; `null`, `undefined` and `false` attributes
 * are left out. Children may be nodes, strings, numbers, arrays or nullish.
 */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(parent, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces the children of `parent`. */
export function replace(parent, ...children) {
  parent.replaceChildren();
  append(parent, children);
}

/** `#id` lookup that fails loudly when the page and the code disagree. */
export function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no element #${id}`);
  return element;
}

/** A readable local date and time for an RFC 3339 string. */
export function formatTime(value) {
  if (!value) return "";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

/** A `<time>` element for an RFC 3339 string. */
export function timeElement(value) {
  return h("time", { datetime: value }, formatTime(value));
}

/** "2 d 03:04:05" for a number of milliseconds (at least 0). */
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const days = Math.floor(total / 86400);
  const hours = Math.floor((total % 86400) / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  const clock = [hours, minutes, seconds].map((n) => String(n).padStart(2, "0")).join(":");
  return days > 0 ? `${days} d ${clock}` : clock;
}

/**
 * Shows a short message in a status element, with a tone (`ok`, `error` or
 * none). Every status element is a `notice`, so an error looks like one
 * wherever it is shown.
 */
export function say(element, text, tone = "") {
  element.className = element.className.replace(/\b(ok|error)\b/g, "").trim();
  element.classList.add("notice");
  if (tone) element.classList.add(tone);
  replace(element, text);
}

/**
 * Marks `element` as working: `aria-busy`, and `data-state="busy"` until
 * `settle` records how the work ended.
 */
export function markBusy(element) {
  element.setAttribute("aria-busy", "true");
  element.dataset.state = "busy";
}

/**
 * Records that the work of `element` ended in `state` ("loaded", "filed",
 * "refused"…) and counts it in `data-seq`. The tests wait for a count past
 * the one they saw before acting, and for the state they expect, so they
 * never read a page that has not settled, nor an earlier result.
 */
export function settle(element, state) {
  element.removeAttribute("aria-busy");
  element.dataset.state = state;
  element.dataset.seq = String(Number(element.dataset.seq ?? 0) + 1);
}

/** A status pill; `attrs` are more attributes of it (an id, say). */
export function statusBadge(status, attrs = {}) {
  return h("span", { ...attrs, class: `status status-${status}` }, status);
}

/**
 * A table that a phone shows as a card per row (styles.css, `table.cards`):
 * each cell carries the name of its column (`data-label`) to show beside
 * its value there. Every part has its role in the markup too: some browsers
 * stop telling screen readers of a table's rows, headers and cells once
 * its parts are `display: block`. `columns` are `[key, name]` pairs (a
 * header's class is `col-<key>`); the cells of each row in `rows` come in
 * their order.
 */
export function cardTable(attrs, caption, columns, rows) {
  for (const row of rows) {
    row.setAttribute("role", "row");
    [...row.cells].forEach((cell, index) => {
      cell.setAttribute("role", "cell");
      cell.dataset.label = columns[index][1];
    });
  }
  return h("table", { ...attrs, class: ["cards", attrs.class].filter(Boolean).join(" "), role: "table" },
    caption,
    h("thead", { role: "rowgroup" }, h("tr", { role: "row" },
      columns.map(([key, name]) => h("th", { scope: "col", role: "columnheader", class: `col-${key}` }, name)))),
    h("tbody", { role: "rowgroup" }, rows));
}
