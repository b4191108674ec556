// The policy editor: loads the signoff engine (the wasm-bindgen package),
// chooses where requests live (a signoff server, or this browser in local
// mode), keeps the sign-in, and routes between the views by the URL hash.

import { ServerBackend, LocalBackend } from "./backends.js";
import { byId, h, markBusy, replace, say, settle } from "./dom.js";
import { setupForm } from "./form.js";
import { setupInbox } from "./inbox.js";
import { LiveEvents } from "./live.js";
import { errorText } from "./messages.js";
import { setupQueue } from "./queue.js";
import { setupRequestView } from "./request.js";
import { setupRules } from "./rules.js";

const SESSION_KEY = "signoff.session";
const MODE_KEY = "signoff.mode";
// The package sits at /pkg/ on the server; for static use, copy or link
// wasm/pkg/web to www/pkg.
const PACKAGE_URL = new URL("../pkg/index.js", import.meta.url);

const state = {
  engine: null,
  mode: "server",
  server: new ServerBackend(),
  serverReachable: false,
  local: null,
  session: readSession(),
  live: null, // the server's event stream while signed in
  rules: null, // { rules, digest } of the current backend
  // Counts loads and saves of the rules: a load answered after a newer load
  // or a save began is dropped, so a late answer never brings back old rules.
  rulesGeneration: 0,
  directory: null, // { key, promise }: who may sign in, asked once per session
};

function readSession() {
  try {
    const session = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "null");
    return session?.token ? session : null;
  } catch {
    return null;
  }
}

function writeSession(session) {
  state.session = session;
  if (session) sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  else sessionStorage.removeItem(SESSION_KEY);
  state.server.token = session?.token ?? null;
  forgetDirectory();
  followEvents();
}
state.server.token = state.session?.token ?? null;

function backend() {
  return state.mode === "local" && state.local ? state.local : state.server;
}

function principal() {
  if (state.mode === "local") return state.local?.principal ?? null;
  return state.session?.id ? { id: state.session.id, roles: state.session.roles ?? [] } : null;
}

/**
 * Who may sign in where requests live now, `{ known, principals, missing?,
 * failed? }`: the demo principals in local mode, `GET /v1/principals` on the
 * server. Asked once per mode and session; never rejects (a failure is
 * answered as principals unknown, and asked again next time).
 */
function directory() {
  const key = state.mode === "local" ? "local" : `server ${state.session?.token ?? ""}`;
  if (state.directory?.key === key) return state.directory.promise;
  if (state.mode === "server" && !state.session) return Promise.resolve({ known: false, principals: [], failed: true });
  const entry = { key };
  entry.promise = backend().knownPrincipals().catch((error) => {
    if (state.directory === entry) state.directory = null;
    return { known: false, principals: [], failed: true, code: error.code };
  });
  state.directory = entry;
  return entry.promise;
}

/** Who may sign in may differ now (another session or mode). */
function forgetDirectory() {
  state.directory = null;
  rulesView?.forgetPrincipals();
}

function banner(text, tone = "") {
  const element = byId("banner");
  element.hidden = !text;
  element.className = `banner ${tone}`.trim();
  element.textContent = text;
}

// ----- views -------------------------------------------------------------

const form = setupForm({
  engine: () => state.engine,
  rules: () => state.rules?.rules ?? null,
  rulesDigest: () => state.rules?.digest ?? null,
  backend,
  principal,
  canSubmit() {
    if (!state.engine) return "The signoff engine has not loaded.";
    if (state.mode === "server" && !state.session) return "Sign in before filing a request (or switch to local mode).";
    return null;
  },
  created: (request) => acted(request, "create"),
  /** Loads the rules in force again; resolves to their digest. */
  async refreshRules() {
    await loadRules();
    afterRulesChanged();
    return state.rules?.digest ?? null;
  },
});

const inbox = setupInbox({ backend, principal });
const queue = setupQueue({ backend, navigated: markTabs });
const requestView = setupRequestView({ engine: () => state.engine, backend, principal, directory, acted, signInRequired });
const rulesView = setupRules({
  engine: () => state.engine,
  backend,
  principal,
  directory,
  rulesState: () => state.rules,
  async reloadRules() {
    await loadRules();
    afterRulesChanged();
    return state.rules;
  },
  rulesSaved(saved) {
    state.rulesGeneration += 1;
    state.rules = saved;
    afterRulesChanged();
  },
});

/**
 * After an action of this page went through. On the server the event stream
 * brings every change, this page's included; in local mode nobody else acts
 * on this browser's store, so the page refreshes what the action may have
 * moved itself.
 */
function acted() {
  if (state.mode === "local") inbox.load({ quiet: currentView() !== "inbox" });
}

function afterRulesChanged() {
  const types = state.rules?.rules?.policyTypes ?? [];
  replace(byId("policy-types"), types.map((type) => h("option", { value: type })));
  form.validate();
  rulesView.render();
}

// ----- live updates ----------------------------------------------------------

const LIVE_WORDS = {
  connecting: "live updates: connecting…",
  live: "live updates: on",
  reconnecting: "live updates: reconnecting…",
  refused: "live updates: off (sign in again)",
  stopped: "live updates: off",
};

/**
 * Follows the server's event stream while signed in to it, and only then:
 * local mode has no other writer than this page, which refreshes what its
 * own actions moved (`acted`).
 */
function followEvents() {
  const token = state.mode === "server" ? state.session?.token ?? null : null;
  if (state.live?.token === token) return;
  state.live?.stop();
  state.live = null;
  if (!token) return;
  const status = byId("live-status");
  state.live = new LiveEvents({
    token,
    onEvent: eventArrived,
    onState(live) {
      status.textContent = LIVE_WORDS[live] ?? "";
      status.dataset.state = live;
    },
  });
  state.live.start();
}

// The events of one commit come together (an approval, its stage passed,
// the request approved): they are gathered for a moment and acted on once.
let arrived = null;

function eventArrived(event) {
  // Only a request's events move what the inbox, the queue and a request
  // show: new rules leave the requests already filed as they were.
  if (!event.requestId) return;
  if (!arrived) {
    arrived = new Set();
    setTimeout(refreshAfterEvents, 100);
  }
  arrived.add(event.requestId);
}

function refreshAfterEvents() {
  const requests = arrived;
  arrived = null;
  if (state.mode !== "server" || !state.session) return;
  inbox.load({ quiet: true });
  const view = currentView();
  if (view === "queue") queue.refresh();
  if (view === "request") for (const id of requests) requestView.changed(id);
}

// ----- who is acting -------------------------------------------------------

function renderWho() {
  const who = byId("who");
  const localWho = byId("local-who");
  const navSignin = byId("nav-signin");
  if (state.mode === "local") {
    replace(who);
    localWho.hidden = !state.local;
    navSignin.textContent = "Local data";
    return;
  }
  localWho.hidden = true;
  navSignin.textContent = state.session ? "Account" : "Sign in";
  // The sign-in form offers Sign out only to someone signed in.
  byId("signout").hidden = !state.session;
  if (state.session) {
    const roles = state.session.roles?.length ? ` (${state.session.roles.join(", ")})` : "";
    replace(who, "Signed in as ", h("strong", { id: "who-id" }, state.session.id), h("span", { class: "roles" }, roles), " ",
      h("button", { type: "button", class: "secondary", id: "header-signout", onclick: signOut }, "Sign out"));
  } else {
    replace(who, h("a", { href: "#signin" }, "Sign in"));
  }
}

function renderLocalPrincipals() {
  const select = byId("local-principal");
  const list = byId("local-principals");
  if (!state.local) return;
  replace(select, state.local.principals.map((p) => h("option", { value: p.id }, `${p.id} (${p.roles.join(", ")})`)));
  select.value = state.local.principal.id;
  replace(list, state.local.principals.map((p) => h("li", {}, h("strong", {}, p.id), ` — ${p.roles.join(", ")}`)));
}

byId("local-principal").addEventListener("change", (event) => {
  state.local.actAs(event.target.value);
  requestView.refresh();
  rulesView.render();
  inbox.load({ quiet: currentView() !== "inbox" });
});

async function signIn(event) {
  event.preventDefault();
  const status = byId("signin-status");
  const data = new FormData(event.target);
  const token = String(data.get("token") ?? "").trim();
  if (!token) {
    say(status, "Paste a bearer token first.", "error");
    settle(status, "invalid");
    byId("s-token").focus();
    return;
  }
  markBusy(status);
  say(status, "Checking the token with the server…");
  try {
    // The server says whose token this is: the editor greets them and
    // offers their actions by that id and those roles.
    const probe = new ServerBackend({ token });
    const { id, roles } = await probe.me();
    const rules = await probe.rules();
    writeSession({ token, id, roles: roles ?? [] });
    state.rulesGeneration += 1;
    state.rules = rules;
    byId("s-token").value = "";
    say(status, `Signed in as ${id}. The server accepted the token.`, "ok");
    delete status.dataset.code;
    renderWho();
    afterRulesChanged();
    settle(status, "signed-in");
    // Back to the page a link named before sign-in was needed, else to what
    // awaits this person's review.
    location.hash = `#${signInTarget() ?? "inbox"}`;
  } catch (error) {
    say(status, error.code === "unauthenticated"
      ? "The server refused this token: check that you pasted all of it, or ask for a new one."
      : `The token could not be checked. ${errorText(error)}`, "error");
    status.dataset.code = error.code;
    settle(status, "refused");
  }
}

/**
 * The view a sign-in should lead to: `#signin/<view>/…` names it, as it
 * stands in the URL (a queue's query stays encoded).
 */
function signInTarget() {
  const { raw, name } = hashParts();
  return name === "signin" && raw.startsWith("signin/") && raw.length > "signin/".length ? raw.slice("signin/".length) : null;
}

/**
 * The server needs a sign-in for the view shown (no session, or its token
 * was refused): show the sign-in form, and come back here after it.
 */
function signInRequired() {
  if (state.session) {
    writeSession(null);
    renderWho();
  }
  const { raw: here, name } = hashParts();
  const target = name === "signin" ? signInTarget() : here;
  history.replaceState(null, "", target ? `#signin/${target}` : "#signin");
  route({ focus: true });
}

function signOut() {
  writeSession(null);
  inbox.clear();
  if (state.mode === "server") state.rules = null;
  say(byId("signin-status"), "Signed out.", "ok");
  renderWho();
  afterRulesChanged();
  requestView.refresh();
}

byId("signin-form").addEventListener("submit", signIn);
byId("signout").addEventListener("click", () => {
  signOut();
  // The button is gone: the focus goes on to the token field, not the page.
  byId("s-token").focus();
});
byId("local-reset").addEventListener("click", async () => {
  if (!state.local) return;
  await state.local.reset();
  state.rules = await state.local.rules();
  afterRulesChanged();
  say(byId("local-status"), "Local requests erased and the demo rules restored.", "ok");
});

// ----- mode -----------------------------------------------------------------

async function loadRules() {
  if (state.mode === "local") {
    state.rules = state.local ? await state.local.rules() : null;
    return;
  }
  if (!state.session) {
    state.rules = null;
    return;
  }
  const generation = ++state.rulesGeneration;
  try {
    const fresh = await state.server.rules();
    if (generation === state.rulesGeneration) state.rules = fresh;
  } catch (error) {
    if (generation !== state.rulesGeneration) return;
    state.rules = null;
    if (error.code === "unauthenticated") {
      writeSession(null);
      renderWho();
      banner("Your session's token is no longer accepted: sign in again.", "error");
    } else {
      banner(`The rules could not load. ${errorText(error)}`, "error");
    }
  }
}

async function setMode(mode) {
  if (mode === "server" && !state.serverReachable) {
    banner("No signoff server answers at this address, so only local mode is available.", "error");
    mode = "local";
  }
  state.mode = mode;
  sessionStorage.setItem(MODE_KEY, mode);
  forgetDirectory();
  followEvents();
  byId(`mode-${mode}`).checked = true;
  byId("signin-server").hidden = mode !== "server";
  byId("signin-local").hidden = mode !== "local";
  if (mode === "local" && !state.local && state.engine) {
    try {
      state.local = await LocalBackend.open(state.engine);
    } catch (error) {
      banner(`Local mode could not open its browser storage: ${error.message}`, "error");
    }
  }
  renderLocalPrincipals();
  renderWho();
  await loadRules();
  afterRulesChanged();
  if (!principal()) inbox.clear();
  await route();
  // The count in the tab shows on every view, not only on the inbox.
  if (currentView() !== "inbox" && principal()) await inbox.load({ quiet: true });
}

for (const radio of document.querySelectorAll('input[name="mode"]')) {
  radio.addEventListener("change", (event) => {
    banner("");
    setMode(event.target.value);
  });
}

// ----- routing --------------------------------------------------------------

const VIEWS = ["inbox", "new", "queue", "request", "rules", "signin"];
// Views whose data the server gives only to a signed-in caller.
const SIGNED_IN_VIEWS = new Set(["inbox", "queue", "request"]);

/**
 * The URL hash in parts: `#queue?status=approved` is the view `queue` with
 * the query `status=approved`; `#request/<id>` the view `request` with the
 * path `[id]`. `raw` is the hash as it stands, without `#`.
 */
function hashParts() {
  const raw = location.hash.slice(1);
  const cut = raw.indexOf("?");
  const [name, ...rest] = decodeURIComponent(cut < 0 ? raw : raw.slice(0, cut)).split("/");
  return { raw, name, rest, query: cut < 0 ? "" : raw.slice(cut + 1) };
}

function currentView() {
  const { name } = hashParts();
  return VIEWS.includes(name) ? name : "new";
}

/**
 * Marks the tab of the view on show: a request belongs to the queue, and
 * the queue of emergency reviews has its own tab.
 */
function markTabs() {
  const view = currentView();
  const reviews = view === "queue" && new URLSearchParams(hashParts().query).has("emergencyReview");
  const tab = view === "request" ? "queue" : reviews ? "reviews" : view;
  for (const link of document.querySelectorAll(".tabs a")) {
    if (link.dataset.route === tab) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

/**
 * Shows the view the URL names and loads its data (not before the mode is
 * known: `load: false` at start shows the view only, so nothing is fetched
 * twice).
 */
async function route({ focus = false, load = true } = {}) {
  const { rest, query } = hashParts();
  const view = currentView();
  if (load && state.mode === "server" && SIGNED_IN_VIEWS.has(view) && !state.session) {
    signInRequired();
    return;
  }
  for (const candidate of VIEWS) byId(`view-${candidate}`).hidden = candidate !== view;
  markTabs();
  if (view !== "request") requestView.hide();
  if (view === "signin") {
    const next = signInTarget();
    const why = byId("signin-next");
    why.hidden = !next || state.mode !== "server";
    why.textContent = next?.startsWith("request/")
      ? "Sign in to open the request the link names: you will land on it."
      : `Sign in to see ${next?.split(/[/?]/)[0] ?? "this page"}: you will land on it.`;
  }
  if (focus) byId(`${view}-heading`).focus();
  if (!load) return;
  if (view === "inbox") await inbox.load();
  if (view === "queue") await queue.load({ params: query });
  if (view === "request") await requestView.show(rest.join("/"));
  if (view === "rules") {
    // Show the rules in force now, not the ones loaded at sign-in.
    const section = byId("view-rules");
    markBusy(section);
    rulesView.render();
    if (state.mode === "server" && state.session) {
      await loadRules();
      afterRulesChanged();
    }
    settle(section, "loaded");
  }
}

window.addEventListener("hashchange", () => route({ focus: true }));

// "Skip to content" goes to the heading of the view on show, without
// changing the URL (a `#main` hash would leave the view).
document.querySelector(".skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  const heading = byId(`${currentView()}-heading`);
  heading.focus();
  heading.scrollIntoView({ block: "start" });
});

// ----- start ----------------------------------------------------------------

async function loadEngine() {
  const engine = await import(PACKAGE_URL.href);
  await engine.default();
  return engine;
}

async function start() {
  route({ load: false });
  const reachable = location.protocol.startsWith("http") ? state.server.reachable() : Promise.resolve(false);
  try {
    state.engine = await loadEngine();
    byId("engine-status").textContent = "signoff engine: loaded (WebAssembly)";
  } catch (error) {
    byId("engine-status").textContent = "signoff engine: failed to load";
    replace(byId("validation-summary"), "The signoff engine could not load, so nothing can be checked here.");
    banner(`The signoff engine could not load from ${PACKAGE_URL.pathname}: ${error.message}`, "error");
  }
  state.serverReachable = await reachable;
  const saved = sessionStorage.getItem(MODE_KEY);
  await setMode(saved === "local" || !state.serverReachable ? "local" : "server");
  if (!state.serverReachable) {
    byId("mode-server").disabled = true;
    banner("No signoff server answers at this address: the editor runs in local mode, with requests kept in this browser.");
  }
  performance.mark("signoff:ready");
  document.documentElement.dataset.ready = state.engine ? "true" : "failed";
}

start();
