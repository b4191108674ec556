// "Awaiting my review": the pending requests the signed-in principal may act
// on now, and their count in the tab. Which requests those are is decided by
// the backend (`actionableBy=me` on the server, the engine's `actionableBy`
// list option in the page), never here.

import { byId, cardTable, h, markBusy, replace, say, settle, timeElement } from "./dom.js";
import { errorText } from "./messages.js";

// A count past this many requests is shown as "500+": enough for a person's
// inbox, and a bounded number of calls per refresh.
const PAGE_SIZE = 100;
const MAX_PAGES = 5;
const COLUMNS = [["title", "Title"], ["policy", "Policy"], ["priority", "Priority"], ["level", "Level"],
  ["stage", "Stage"], ["by", "Requested by"], ["expires", "Expires"]];

/**
 * `ctx` gives `backend()` and `principal()` (null when nobody is signed in).
 * Returns `{ load, clear }`.
 */
export function setupInbox(ctx) {
  const heading = byId("inbox-heading");
  const greeting = byId("inbox-greeting");
  const list = byId("inbox-list");
  const status = byId("inbox-status");
  const count = byId("inbox-count");
  // Only the newest load is shown: a refresh that a live event started
  // after another one must not be painted over by the older answer.
  let latest = 0;

  function showCount(shown, more) {
    const text = more ? `${shown}+` : String(shown);
    count.hidden = false;
    count.textContent = text;
    count.dataset.count = text;
    count.setAttribute("aria-label", `${text} awaiting my review`);
    heading.textContent = `Awaiting my review (${text})`;
  }

  function clear() {
    latest += 1;
    count.hidden = true;
    count.textContent = "";
    delete count.dataset.count;
    heading.textContent = "Awaiting my review";
    replace(greeting);
    replace(list);
    say(status, "");
  }

  function render(items) {
    if (items.length === 0) {
      replace(list, h("p", { class: "panel", id: "inbox-empty" }, "Nothing awaits your review."));
      return;
    }
    // A phone shows each request as a card (`cardTable`), so nothing scrolls.
    replace(list, h("div", { class: "table-scroll", role: "region", "aria-labelledby": "inbox-caption", tabindex: "0" },
      cardTable({ id: "inbox-table" },
        h("caption", { id: "inbox-caption" }, "Requests you may approve or reject now"),
        COLUMNS,
        items.map((request) => h("tr", { dataset: { id: request.id } },
          h("td", {}, h("a", { href: `#request/${request.id}` }, request.change.title)),
          h("td", {}, h("code", {}, request.change.policyId)),
          h("td", {}, request.change.priority),
          h("td", {}, request.level),
          h("td", {}, request.stage ?? "—"),
          h("td", {}, request.requestedBy),
          h("td", {}, timeElement(request.expiresAt)))))));
  }

  /**
   * Loads the requests awaiting the principal, and their count.
   * `#inbox-list` settles as `loaded` or `error`; `quiet` (a refresh in the
   * background) leaves what is shown in place until the answer comes.
   */
  async function load({ quiet = false } = {}) {
    const principal = ctx.principal();
    if (!principal) {
      clear();
      return;
    }
    const mine = ++latest;
    if (!quiet) {
      markBusy(list);
      say(status, "Loading…");
    }
    greeting.textContent = `Hello, ${principal.id}.`;
    try {
      const items = [];
      let cursor = null;
      for (let page = 0; page < MAX_PAGES; page += 1) {
        const answer = await ctx.backend().actionable({ limit: PAGE_SIZE, cursor });
        items.push(...answer.items);
        cursor = answer.nextCursor;
        if (!cursor) break;
      }
      if (mine !== latest) return;
      render(items);
      showCount(items.length, Boolean(cursor));
      say(status, items.length === 1 ? "1 request awaits you." : `${items.length}${cursor ? "+" : ""} requests await you.`);
      delete status.dataset.code;
      settle(list, "loaded");
    } catch (error) {
      if (mine !== latest) return;
      replace(list);
      say(status, `The requests awaiting you could not load. ${errorText(error)}`, "error");
      status.dataset.code = error.code;
      settle(list, "error");
    }
  }

  return { load, clear };
}
