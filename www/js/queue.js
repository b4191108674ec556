// The queue: requests of one status (pending first by priority, the others
// most recently updated first), filtered by policy type, one page at a time
// with the opaque `nextCursor`.

import { byId, h, replace, say, statusBadge, timeElement } from "./dom.js";

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
    replace(table, h("table", { id: "queue-list" },
      h("caption", {}, `${query.status[0].toUpperCase()}${query.status.slice(1)} requests${query.policyType ? ` of type ${query.policyType}` : ""}, page ${page}`),
      h("thead", {}, h("tr", {},
        ["Title", "Policy", "Type", "Environment", "Priority", "Level", pending ? "Stage" : "Status", "Requested by", "Filed", pending ? "Expires" : "Updated"]
          .map((name) => h("th", { scope: "col" }, name)))),
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
        h("td", {}, timeElement(pending ? request.expiresAt : request.updatedAt)))))));
  }

  async function load() {
    query ??= readFilter();
    say(status, "Loading…");
    try {
      const result = await ctx.backend().list({ ...query, cursor });
      nextCursor = result.nextCursor;
      render(result.items);
      say(status, `${result.items.length} shown on page ${page}${nextCursor ? "; more on the next page" : ""}.`);
    } catch (error) {
      nextCursor = null;
      replace(table);
      say(status, `The queue could not load: ${error.message} (${error.code}).`, "error");
    }
    next.disabled = !nextCursor;
    first.disabled = page === 1;
  }

  filter.addEventListener("submit", (event) => {
    event.preventDefault();
    query = readFilter();
    cursor = null;
    page = 1;
    load();
  });
  filter.addEventListener("change", () => filter.requestSubmit());
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

  return {
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
