// The queue: requests of one status (pending first by priority, the others
// most recently updated first), filtered by policy type, one page at a time
// with the opaque `nextCursor`.

import { byId, h, markBusy, replace, say, settle, statusBadge, timeElement } from "./dom.js";
import { errorText } from "./messages.js";

/** `ctx` gives `backend()`. Returns `{ load }`. */
export function setupQueue(ctx) {
  const filter = byId("queue-filter");
  const table = byId("queue-table");
  const status = byId("queue-status");
  const next = byId("queue-next");
  const first = byId("queue-first");
  let query = null;
  let cursor = null;
  let nextCursor = null;
  let page = 1;
  // The load whose answer may be shown: an older answer that arrives late
  // (the filter changed meanwhile) is dropped, not painted over a newer one.
  let latest = null;

  function readFilter() {
    const data = new FormData(filter);
    return {
      status: data.get("status") || "pending",
      policyType: String(data.get("policyType") ?? "").trim() || null,
      limit: Number(data.get("limit")) || 25,
    };
  }

  function render(items) {
    const pending = query.status === "pending";
    if (items.length === 0) {
      replace(table, h("p", { class: "panel" }, page === 1
        ? `No ${query.status} requests${query.policyType ? ` of type ${query.policyType}` : ""}.`
        : "No more requests."));
      return;
    }
    // Wide tables scroll inside their own box, never the whole page.
    replace(table, h("div", { class: "table-scroll", role: "region", "aria-labelledby": "queue-caption", tabindex: "0" }, h("table", { id: "queue-list" },
      h("caption", { id: "queue-caption" }, `${query.status[0].toUpperCase()}${query.status.slice(1)} requests${query.policyType ? ` of type ${query.policyType}` : ""}, page ${page}`),
      h("thead", {}, h("tr", {},
        [["title", "Title"], ["policy", "Policy"], ["type", "Type"], ["environment", "Environment"], ["priority", "Priority"], ["level", "Level"],
          ["stage", pending ? "Stage" : "Status"], ["by", "Requested by"], ["filed", "Filed"], ["expires", pending ? "Expires" : "Updated"]]
          .map(([key, name]) => h("th", { scope: "col", class: `col-${key}` }, name)))),
      h("tbody", {}, items.map((request) => h("tr", { dataset: { id: request.id } },
        h("td", {}, h("a", { href: `#request/${request.id}` }, request.change.title)),
        h("td", {}, h("code", {}, request.change.policyId)),
        h("td", {}, request.change.policyType),
        h("td", {}, request.change.environment ?? "—"),
        h("td", {}, request.change.priority),
        h("td", {}, request.level),
        h("td", {}, pending ? request.stage ?? "—" : statusBadge(request.status)),
        h("td", {}, request.requestedBy),
        h("td", {}, timeElement(request.createdAt)),
        h("td", {}, timeElement(pending ? request.expiresAt : request.updatedAt))))))));
  }

  /** What is loaded, as `data-query` shows it to the tests. */
  function queryKey() {
    return new URLSearchParams({
      status: query.status,
      policyType: query.policyType ?? "",
      limit: String(query.limit),
      page: String(page),
    }).toString();
  }

  function load() {
    query ??= readFilter();
    const key = queryKey();
    // The same page asked for again while it loads (a filter's change event
    // and its submit, say) is fetched once.
    if (latest?.key === key && latest.running) return latest.promise;
    const mine = { key, running: true };
    latest = mine;
    table.dataset.query = key;
    markBusy(table);
    say(status, "Loading…");
    mine.promise = (async () => {
      let result = null;
      let failure = null;
      try {
        result = await ctx.backend().list({ ...query, cursor });
      } catch (error) {
        failure = error;
      }
      mine.running = false;
      if (latest !== mine) return;
      if (failure) {
        nextCursor = null;
        replace(table);
        say(status, `The queue could not load. ${errorText(failure)}`, "error");
        status.dataset.code = failure.code;
      } else {
        nextCursor = result.nextCursor;
        render(result.items);
        say(status, `${result.items.length} shown on page ${page}${nextCursor ? "; more on the next page" : ""}.`);
        delete status.dataset.code;
      }
      next.disabled = !nextCursor;
      first.disabled = page === 1;
      settle(table, failure ? "error" : "loaded");
    })();
    return mine.promise;
  }

  filter.addEventListener("submit", (event) => {
    event.preventDefault();
    query = readFilter();
    cursor = null;
    page = 1;
    load();
  });
  // A new status or page size shows at once; a typed policy type waits for
  // Show (or Enter), so leaving the field and clicking Show fetches once.
  filter.addEventListener("change", (event) => {
    if (event.target.tagName === "SELECT") filter.requestSubmit();
  });
  next.addEventListener("click", () => {
    if (!nextCursor) return;
    cursor = nextCursor;
    page += 1;
    load();
  });
  first.addEventListener("click", () => {
    cursor = null;
    page = 1;
    load();
  });

  /**
   * Fetches the page shown again in the background (an event said something
   * changed) and redraws it, without the busy state of a load: a load the
   * person started wins, and is followed by this refresh if it was running.
   */
  async function refresh() {
    if (!query) return;
    if (latest?.running) {
      await latest.promise;
      return refresh();
    }
    const shown = latest;
    const key = queryKey();
    let result;
    try {
      result = await ctx.backend().list({ ...query, cursor });
    } catch {
      return; // the next event or load tries again; what is shown stays
    }
    if (latest !== shown || queryKey() !== key) return;
    nextCursor = result.nextCursor;
    render(result.items);
    next.disabled = !nextCursor;
    table.dataset.refreshed = String(Number(table.dataset.refreshed ?? 0) + 1);
  }

  return {
    refresh,
    /** Reloads the page shown (the first page when `reset`). */
    load({ reset = false } = {}) {
      if (reset) {
        query = readFilter();
        cursor = null;
        page = 1;
      }
      return load();
    },
  };
}
