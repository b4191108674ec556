// The queue: requests of one status (pending first by priority, the others
// most recently updated first), filtered by policy type and by a search of
// titles and policy ids, one page at a time with the opaque `nextCursor`;
// and the emergency requests whose review after the fact is open or
// overdue. Every filter lives in the URL (`#queue?status=approved&q=…`), so
// a view can be shared, survives a reload, and the back button restores the
// filters shown before.

import { byId, cardTable, formatDuration, h, markBusy, replace, say, settle, statusBadge, timeElement } from "./dom.js";
import { errorText } from "./messages.js";

const STATUSES = ["pending", "approved", "rejected", "expired", "cancelled"];
const REVIEWS = ["open", "overdue"];
const VIEWS = ["summary", "full"];
const LIMITS = [10, 25, 50, 100];
const DEFAULTS = { status: "pending", policyType: "", q: "", emergencyReview: "", view: "summary", limit: 25 };
// The server takes a search of 1 to 200 characters.
const MAX_SEARCH = 200;
// The overdue reviews are counted up to this many, then shown as "500+".
const COUNT_PAGE = 100;
const COUNT_PAGES = 5;

/** The filters a URL query names, each one checked (an unknown value is the default). */
export function filtersFrom(params) {
  const pick = (name, allowed) => (allowed.includes(params.get(name)) ? params.get(name) : DEFAULTS[name]);
  const emergencyReview = pick("emergencyReview", REVIEWS);
  return {
    // Emergency reviews are of approved requests (the filter implies it).
    status: emergencyReview ? "approved" : pick("status", STATUSES),
    policyType: (params.get("policyType") ?? "").trim(),
    q: [...(params.get("q") ?? "").trim()].slice(0, MAX_SEARCH).join(""),
    emergencyReview,
    view: pick("view", VIEWS),
    limit: LIMITS.includes(Number(params.get("limit"))) ? Number(params.get("limit")) : DEFAULTS.limit,
  };
}

/** The URL hash of `filters`: only what differs from the defaults. */
export function hashOf(filters) {
  const params = new URLSearchParams();
  if (filters.status !== DEFAULTS.status && !filters.emergencyReview) params.set("status", filters.status);
  for (const name of ["policyType", "q", "emergencyReview", "view", "limit"]) {
    if (filters[name] !== DEFAULTS[name]) params.set(name, String(filters[name]));
  }
  const text = params.toString();
  return text ? `#queue?${text}` : "#queue";
}

/** "in 2 h"-style words for when a review is or was due. */
function dueCell(request) {
  const review = request.emergency?.review;
  if (!review?.dueAt) return h("td", {}, "—");
  const due = Date.parse(review.dueAt);
  const left = due - Date.now();
  if (review.status === "open" && left <= 0) {
    const ago = -left < 1000 ? "just now" : `${formatDuration(-left)} ago`;
    return h("td", { class: "overdue", dataset: { due: "overdue" } },
      h("strong", {}, "Overdue"), ": was due ", timeElement(review.dueAt), ` (${ago})`);
  }
  return h("td", { dataset: { due: "due" } }, "Due ", timeElement(review.dueAt), ` (in ${formatDuration(left)})`);
}

/** `ctx` gives `backend()` and `navigated()` (the URL changed). Returns `{ load, refresh }`. */
export function setupQueue(ctx) {
  const heading = byId("queue-heading");
  const filter = byId("queue-filter");
  const statusSelect = byId("q-status");
  const statusHelp = byId("q-status-help");
  const table = byId("queue-table");
  const status = byId("queue-status");
  const overdue = byId("queue-overdue");
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
    // The status select is disabled while emergency reviews are shown.
    if (!data.has("status")) data.set("status", statusSelect.value);
    return filtersFrom(data);
  }

  /** Shows `filters` in the form's controls. */
  function fillForm(filters) {
    statusSelect.value = filters.status;
    byId("q-policyType").value = filters.policyType;
    byId("q-search").value = filters.q;
    byId("q-emergencyReview").value = filters.emergencyReview;
    byId("q-view").value = filters.view;
    byId("q-limit").value = String(filters.limit);
    reviewsShown(Boolean(filters.emergencyReview));
  }

  /** Emergency reviews are approved requests: the status is fixed then. */
  function reviewsShown(shown) {
    statusSelect.disabled = shown;
    if (shown) statusSelect.value = "approved";
    statusHelp.hidden = !shown;
    heading.textContent = shown ? "Emergency reviews" : "Queue";
  }

  function describe() {
    const parts = [];
    if (query.policyType) parts.push(`of type ${query.policyType}`);
    if (query.q) parts.push(`matching “${query.q}”`);
    return parts.length ? ` ${parts.join(" ")}` : "";
  }

  function caption() {
    const what = query.emergencyReview
      ? `Emergency reviews ${query.emergencyReview}`
      : `${query.status[0].toUpperCase()}${query.status.slice(1)} requests`;
    return `${what}${describe()}, page ${page}`;
  }

  function emptyText() {
    if (page > 1) return "No more requests.";
    if (query.emergencyReview === "open") return `No emergency review is open${describe()}.`;
    if (query.emergencyReview === "overdue") return `No emergency review is overdue${describe()}.`;
    return `No ${query.status} requests${describe()}.`;
  }

  /** The title cell: a link, and under it the justification (full view) or the emergency's reason. */
  function titleCell(request) {
    const below = query.emergencyReview ? request.emergency?.reason : query.view === "full" ? request.change.justification : null;
    return h("td", {}, h("a", { href: `#request/${request.id}` }, request.change.title),
      below ? h("p", { class: "cell-note" }, below) : null);
  }

  function columns() {
    if (query.emergencyReview) {
      return [["title", "Title"], ["policy", "Policy"], ["type", "Type"], ["environment", "Environment"],
        ["by", "Filed by"], ["filed", "Filed"], ["due", "Review due"]];
    }
    const pending = query.status === "pending";
    return [["title", "Title"], ["policy", "Policy"], ["type", "Type"], ["environment", "Environment"], ["priority", "Priority"], ["level", "Level"],
      ["stage", pending ? "Stage" : "Status"], ["by", "Requested by"], ["filed", "Filed"], ["expires", pending ? "Expires" : "Updated"]];
  }

  function row(request) {
    const common = [
      titleCell(request),
      h("td", {}, h("code", {}, request.change.policyId)),
      h("td", {}, request.change.policyType),
      h("td", {}, request.change.environment ?? "—"),
    ];
    if (query.emergencyReview) {
      const late = request.emergency?.review?.status === "open" && Date.parse(request.emergency.review.dueAt) <= Date.now();
      return h("tr", { dataset: { id: request.id, overdue: String(late) } }, common,
        h("td", {}, request.requestedBy),
        h("td", {}, timeElement(request.createdAt)),
        dueCell(request));
    }
    const pending = query.status === "pending";
    return h("tr", { dataset: { id: request.id } }, common,
      h("td", {}, request.change.priority),
      h("td", {}, request.level),
      h("td", {}, pending ? request.stage ?? "—" : statusBadge(request.status)),
      h("td", {}, request.requestedBy),
      h("td", {}, timeElement(request.createdAt)),
      h("td", {}, timeElement(pending ? request.expiresAt : request.updatedAt)));
  }

  function render(items) {
    if (items.length === 0) {
      replace(table, h("p", { class: "panel" }, emptyText()));
      return;
    }
    // A wide table scrolls inside its own box, never the whole page; a
    // phone shows each request as a card (`cardTable`), so nothing scrolls.
    replace(table, h("div", { class: "table-scroll", role: "region", "aria-labelledby": "queue-caption", tabindex: "0" },
      cardTable({ id: "queue-list", class: query.emergencyReview ? "reviews" : null },
        h("caption", { id: "queue-caption" }, caption()),
        columns(),
        items.map(row))));
  }

  /** What is loaded, as `data-query` shows it to the tests. */
  function queryKey() {
    return new URLSearchParams({
      status: query.status,
      policyType: query.policyType,
      q: query.q,
      emergencyReview: query.emergencyReview,
      view: query.view,
      limit: String(query.limit),
      page: String(page),
    }).toString();
  }

  /** What the backend is asked for (empty filters left out). */
  function listQuery() {
    return {
      status: query.status,
      policyType: query.policyType || null,
      q: query.q || null,
      emergencyReview: query.emergencyReview || null,
      view: query.view,
      limit: query.limit,
    };
  }

  /** How many emergency reviews are overdue, in all: `{ count, more }`. */
  async function countOverdue() {
    let count = 0;
    let after = null;
    for (let round = 0; round < COUNT_PAGES; round += 1) {
      const answer = await ctx.backend().list({ status: "approved", emergencyReview: "overdue", view: "summary", limit: COUNT_PAGE, cursor: after });
      count += answer.items.length;
      after = answer.nextCursor;
      if (!after) break;
    }
    return { count, more: Boolean(after) };
  }

  function showOverdue(counted) {
    overdue.hidden = !counted;
    if (!counted) {
      delete overdue.dataset.count;
      replace(overdue);
      return;
    }
    const text = `${counted.count}${counted.more ? "+" : ""}`;
    overdue.dataset.count = text;
    overdue.classList.toggle("error", counted.count > 0);
    replace(overdue, counted.count === 1 && !counted.more
      ? "1 emergency review is overdue."
      : counted.count === 0 ? "No emergency review is overdue." : `${text} emergency reviews are overdue.`);
  }

  function fetchPage() {
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
      let counted = null;
      let failure = null;
      try {
        [result, counted] = await Promise.all([
          ctx.backend().list({ ...listQuery(), cursor }),
          query.emergencyReview ? countOverdue() : null,
        ]);
      } catch (error) {
        failure = error;
      }
      mine.running = false;
      if (latest !== mine) return;
      if (failure) {
        nextCursor = null;
        replace(table);
        showOverdue(null);
        say(status, `The queue could not load. ${errorText(failure)}`, "error");
        status.dataset.code = failure.code;
      } else {
        nextCursor = result.nextCursor;
        render(result.items);
        showOverdue(counted);
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
    // A new entry in the browser's history: back shows the filters before.
    const hash = hashOf(query);
    if (location.hash !== hash) {
      history.pushState(null, "", hash);
      ctx.navigated();
    }
    reviewsShown(Boolean(query.emergencyReview));
    fetchPage();
  });
  // A new status, review filter, view or page size shows at once; typed
  // text waits for Show (or Enter), so leaving a field and clicking Show
  // fetches once.
  filter.addEventListener("change", (event) => {
    if (event.target.tagName === "SELECT") filter.requestSubmit();
  });
  next.addEventListener("click", () => {
    if (!nextCursor) return;
    cursor = nextCursor;
    page += 1;
    fetchPage();
  });
  first.addEventListener("click", () => {
    cursor = null;
    page = 1;
    fetchPage();
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
    let counted;
    try {
      [result, counted] = await Promise.all([
        ctx.backend().list({ ...listQuery(), cursor }),
        query.emergencyReview ? countOverdue() : null,
      ]);
    } catch {
      return; // the next event or load tries again; what is shown stays
    }
    if (latest !== shown || queryKey() !== key) return;
    nextCursor = result.nextCursor;
    render(result.items);
    showOverdue(counted);
    next.disabled = !nextCursor;
    table.dataset.refreshed = String(Number(table.dataset.refreshed ?? 0) + 1);
  }

  return {
    refresh,
    /**
     * Shows the queue the URL query `params` names: the page shown before
     * when the filters are the same (back from a request), else their
     * first page.
     */
    load({ params = "" } = {}) {
      const filters = filtersFrom(new URLSearchParams(params));
      const same = query && hashOf(filters) === hashOf(query);
      if (!same) {
        query = filters;
        cursor = null;
        page = 1;
      }
      fillForm(query);
      return fetchPage();
    },
  };
}
