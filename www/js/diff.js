// Diffs for people: a unified diff of two texts (the rules draft against the
// rules in force), and a unified diff drawn with colour and, besides colour,
// the kept "+" and "-" signs, <ins>/<del> elements and words for screen
// readers (a change's `diff` field, and that draft diff).

import { h } from "./dom.js";

// Past this many differing lines the two texts are shown as one removal and
// one addition: a Myers diff of two unrelated documents costs O(N·D).
const MAX_EDITS = 2000;

function lines(text) {
  const all = String(text ?? "").split("\n");
  if (all.length > 0 && all.at(-1) === "") all.pop();
  return all;
}

/**
 * The shortest edit script from `a` to `b` (arrays of lines), as
 * `[kind, line]` pairs with kind `same`, `del` or `add` (Myers' algorithm;
 * removals before additions within a change), or null past MAX_EDITS.
 */
function myers(a, b) {
  const n = a.length;
  const m = b.length;
  const max = n + m;
  const offset = max + 1;
  const v = new Int32Array(2 * max + 3);
  // trace[d]: v before step d, for k in -d-1..d+1 (index k + d + 1).
  const trace = [];
  for (let d = 0; d <= Math.min(max, MAX_EDITS); d += 1) {
    trace.push(v.slice(offset - d - 1, offset + d + 2));
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[offset + k - 1] < v[offset + k + 1]) ? v[offset + k + 1] : v[offset + k - 1] + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x += 1;
        y += 1;
      }
      v[offset + k] = x;
      if (x >= n && y >= m) return backtrack(trace, a, b);
    }
  }
  return null;
}

function backtrack(trace, a, b) {
  const script = [];
  let x = a.length;
  let y = b.length;
  for (let d = trace.length - 1; d >= 0; d -= 1) {
    const v = trace[d];
    const at = (k) => v[k + d + 1];
    const k = x - y;
    const prevK = k === -d || (k !== d && at(k - 1) < at(k + 1)) ? k + 1 : k - 1;
    const prevX = d === 0 ? 0 : at(prevK);
    const prevY = d === 0 ? 0 : prevX - prevK;
    while (x > prevX && y > prevY) {
      script.push(["same", a[x - 1]]);
      x -= 1;
      y -= 1;
    }
    if (d > 0) {
      if (x === prevX) script.push(["add", b[prevY]]);
      else script.push(["del", a[prevX]]);
    }
    x = prevX;
    y = prevY;
  }
  return script.reverse();
}

/** The edit script from `a` to `b`, common head and tail set aside first. */
function editScript(a, b) {
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start += 1;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA -= 1;
    endB -= 1;
  }
  const midA = a.slice(start, endA);
  const midB = b.slice(start, endB);
  const middle = myers(midA, midB) ?? [...midA.map((line) => ["del", line]), ...midB.map((line) => ["add", line])];
  return [
    ...a.slice(0, start).map((line) => ["same", line]),
    ...middle,
    ...a.slice(endA).map((line) => ["same", line]),
  ];
}

function range(start, length) {
  // A hunk of no old (or new) lines names the line before it.
  return `${length === 0 ? start : start + 1},${length}`;
}

/**
 * The unified diff from `before` to `after` (`---`/`+++` headers named
 * `from` and `to`, hunks with `context` lines around each change), or ""
 * when the texts have the same lines.
 */
export function unifiedDiff(before, after, { from = "before", to = "after", context = 3 } = {}) {
  const script = editScript(lines(before), lines(after));
  const changed = script.map(([kind], index) => (kind === "same" ? -1 : index)).filter((index) => index >= 0);
  if (changed.length === 0) return "";
  // Changes closer than twice the context share a hunk.
  const spans = [];
  for (const index of changed) {
    const last = spans.at(-1);
    if (last && index - last.end <= 2 * context) last.end = index;
    else spans.push({ start: index, end: index });
  }
  // Where each entry of the script sits in the old and the new text.
  const oldAt = [];
  const newAt = [];
  let oldLine = 0;
  let newLine = 0;
  for (const [kind] of script) {
    oldAt.push(oldLine);
    newAt.push(newLine);
    if (kind !== "add") oldLine += 1;
    if (kind !== "del") newLine += 1;
  }
  const out = [`--- ${from}`, `+++ ${to}`];
  for (const span of spans) {
    const first = Math.max(0, span.start - context);
    const last = Math.min(script.length - 1, span.end + context);
    const body = script.slice(first, last + 1);
    const oldLength = body.filter(([kind]) => kind !== "add").length;
    const newLength = body.filter(([kind]) => kind !== "del").length;
    out.push(`@@ -${range(oldAt[first], oldLength)} +${range(newAt[first], newLength)} @@`);
    for (const [kind, line] of body) out.push(`${kind === "add" ? "+" : kind === "del" ? "-" : " "}${line}`);
  }
  return `${out.join("\n")}\n`;
}

const HUNK = /^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@/;

/**
 * Each line of a unified diff with its kind: `add`, `del`, `context`,
 * `hunk` (an `@@` header), `file` (the `---`/`+++` headers and the like,
 * outside hunks) or `note` ("\ No newline at end of file"). A hunk's
 * header says how many lines it holds, so a removed line that itself starts
 * with "--" is still a removal. Null when the text holds no hunk: it is not
 * a unified diff, and colouring its "-" lines would misread it.
 */
export function classifyDiff(text) {
  const all = lines(text);
  if (!all.some((line) => HUNK.test(line))) return null;
  let oldLeft = 0;
  let newLeft = 0;
  return all.map((line) => {
    if (oldLeft > 0 || newLeft > 0) {
      if (line.startsWith("\\")) return { kind: "note", line };
      if (line.startsWith("+")) {
        newLeft -= 1;
        return { kind: "add", line };
      }
      if (line.startsWith("-")) {
        oldLeft -= 1;
        return { kind: "del", line };
      }
      oldLeft -= 1;
      newLeft -= 1;
      return { kind: "context", line };
    }
    const hunk = HUNK.exec(line);
    if (hunk) {
      oldLeft = hunk[1] === undefined ? 1 : Number(hunk[1]);
      newLeft = hunk[2] === undefined ? 1 : Number(hunk[2]);
      return { kind: "hunk", line };
    }
    return { kind: line.startsWith("\\") ? "note" : "file", line };
  });
}

// What a screen reader says before each line (the sign stays in the text).
const SPOKEN = { add: "added: ", del: "removed: ", hunk: "hunk: " };

function plural(count, one, many) {
  return `${count} ${count === 1 ? one : many}`;
}

/**
 * A unified diff drawn for people: `#<id>` is the diff (a focusable region,
 * so that a keyboard scrolls it), `#<id>-summary` counts its lines
 * (`data-added`, `data-removed`). A text that is no unified diff is shown
 * as it is, without colour.
 */
export function diffView(text, { id, label = "Diff" }) {
  const classified = classifyDiff(text);
  if (!classified) {
    return [
      h("p", { class: "diff-summary muted", id: `${id}-summary`, dataset: { format: "plain" } }, "Shown as plain text: it is not a unified diff."),
      h("pre", { class: "diff", id, tabindex: "0", role: "region", "aria-label": label }, String(text)),
    ];
  }
  const added = classified.filter((item) => item.kind === "add").length;
  const removed = classified.filter((item) => item.kind === "del").length;
  const hunks = classified.filter((item) => item.kind === "hunk").length;
  const summary = `${plural(added, "line", "lines")} added, ${removed} removed, in ${plural(hunks, "hunk", "hunks")}.`;
  return [
    h("p", { class: "diff-summary", id: `${id}-summary`, dataset: { format: "unified", added: String(added), removed: String(removed) } }, summary),
    h("pre", { class: "diff colored", id, tabindex: "0", role: "region", "aria-label": label, "aria-describedby": `${id}-summary` },
      classified.map(({ kind, line }) => h(kind === "add" ? "ins" : kind === "del" ? "del" : "span",
        { class: `diff-line diff-${kind}`, dataset: { kind } },
        SPOKEN[kind] ? h("span", { class: "sr-only" }, SPOKEN[kind]) : null,
        line === "" ? " " : line))),
  ];
}
