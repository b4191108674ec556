// The two places requests can live: the signoff server (HTTP API, docs/CONTRACT.md
// section 7) and this browser (the JS ApprovalManager over IndexedDB). Both
// answer the same methods, so the views do not care which one they talk to.
// Failures are the package's own `SignoffError`s (one class for the engine
// and the server alike) carrying the stable `code` and `details`: the
// validation items of `invalid_request`, or `{ retryAfterSeconds }` of
// `rate_limited`.

import { SignoffError } from "../pkg/index.js";
import { DEMO_RULES, DEMO_PRINCIPALS } from "./demo.js";

/** The validation items of an `invalid_request` error, or an empty list. */
export function problemsOf(error) {
  return Array.isArray(error?.details) ? error.details : [];
}

/** Turns whatever an engine or fetch threw into a SignoffError. */
export function asSignoffError(error) {
  if (error instanceof SignoffError) return error;
  if (error && typeof error === "object" && typeof error.code === "string") {
    return new SignoffError(error.code, error.message ?? String(error), error.details ?? undefined);
  }
  return new SignoffError("internal", error?.message ?? String(error));
}

/** The code of an error answer whose body names none. */
function codeOfStatus(status) {
  if (status === 401) return "unauthenticated";
  if (status === 404) return "not_found";
  return "internal";
}

function stripQuotes(etag) {
  if (!etag) return null;
  return etag.replace(/^W\//, "").replace(/^"(.*)"$/, "$1");
}

/** The HTTP API of a signoff server at `base` (same origin by default). */
export class ServerBackend {
  constructor({ base = "", token = null } = {}) {
    this.kind = "server";
    this.base = base;
    this.token = token;
  }

  async call(method, path, { body, headers = {} } = {}) {
    const init = { method, headers: { Accept: "application/json", ...headers } };
    if (this.token) init.headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(this.base + path, init);
    } catch (error) {
      throw new SignoffError("unavailable", `the server could not be reached (${error.message})`);
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!response.ok) {
      const error = data?.error;
      const code = error?.code ?? codeOfStatus(response.status);
      const retryAfter = Number(response.headers.get("Retry-After")) || null;
      const details = error?.details ?? (code === "rate_limited" && retryAfter ? { retryAfterSeconds: retryAfter } : undefined);
      throw new SignoffError(code, error?.message ?? `the server answered ${response.status} ${response.statusText}`, details);
    }
    return { data, response };
  }

  /** Whether a signoff server answers at this origin (GET /healthz). */
  async reachable() {
    try {
      const response = await fetch(`${this.base}/healthz`, { cache: "no-store" });
      return response.ok;
    } catch {
      return false;
    }
  }

  /** `{ id, roles }`: the principal the token names (GET /v1/me). */
  async me() {
    return (await this.call("GET", "/v1/me")).data;
  }

  /** `{ rules, digest }`: the rules in force and their digest (the ETag). */
  async rules() {
    const { data, response } = await this.call("GET", "/v1/rules");
    return { rules: data, digest: stripQuotes(response.headers.get("ETag")) };
  }

  /** Replaces the rules when `digest` is still the one in force. */
  async putRules(rules, digest) {
    const headers = { "If-Match": digest ? `"${digest}"` : "*" };
    const { data, response } = await this.call("PUT", "/v1/rules", { body: rules, headers });
    const newDigest = stripQuotes(response.headers.get("ETag"));
    // The answer is the document in force with the stages the server's
    // principals could never meet beside its fields: keep them apart, so
    // that the document saved next is a rules document again.
    const { warnings = [], ...document } = data ?? {};
    return { rules: document.levels ? document : rules, digest: newDigest, warnings };
  }

  /** What `rules` would change, judged by the server (needs `admin`). */
  async simulateRules(rules) {
    return (await this.call("POST", "/v1/rules/simulate", { body: { rules } })).data;
  }

  async create(change, { idempotencyKey } = {}) {
    const headers = idempotencyKey ? { "Idempotency-Key": idempotencyKey } : {};
    return (await this.call("POST", "/v1/requests", { body: change, headers })).data;
  }

  /**
   * One page of requests. `q` (a search in titles and policy ids),
   * `emergencyReview` (`open` or `overdue`) and `view` (`full` or
   * `summary`) are sent only when given.
   */
  async list({ status, policyType, q, emergencyReview, view, limit, cursor } = {}) {
    const query = new URLSearchParams();
    if (status) query.set("status", status);
    if (policyType) query.set("policyType", policyType);
    if (q) query.set("q", q);
    if (emergencyReview) query.set("emergencyReview", emergencyReview);
    if (view) query.set("view", view);
    if (limit) query.set("limit", String(limit));
    if (cursor) query.set("cursor", cursor);
    const { data } = await this.call("GET", `/v1/requests?${query}`);
    return { items: data.items ?? [], nextCursor: data.nextCursor ?? null };
  }

  /**
   * Who may sign in, as the server knows them (GET /v1/principals):
   * `{ known, principals }`. A server that signs people in through OpenID
   * Connect knows nobody in advance (`known: false`); an older server has
   * no such route (404), and is answered the same way, with `missing`.
   */
  async knownPrincipals() {
    try {
      const { data } = await this.call("GET", "/v1/principals");
      const known = data?.known === true;
      return { known, principals: known && Array.isArray(data.data) ? data.data : [], missing: false };
    } catch (error) {
      if (error.code === "not_found") return { known: false, principals: [], missing: true };
      throw error;
    }
  }

  /**
   * One page of the pending requests the caller may act on now (the server
   * decides: `actionableBy=me`), without their long fields.
   */
  async actionable({ limit, cursor } = {}) {
    const query = new URLSearchParams({ status: "pending", actionableBy: "me", view: "summary" });
    if (limit) query.set("limit", String(limit));
    if (cursor) query.set("cursor", cursor);
    const { data } = await this.call("GET", `/v1/requests?${query}`);
    return { items: data.items ?? [], nextCursor: data.nextCursor ?? null };
  }

  async get(id) {
    return (await this.call("GET", `/v1/requests/${encodeURIComponent(id)}`)).data;
  }

  async approve(id, { comment } = {}) {
    const body = comment ? { comment } : {};
    return (await this.call("POST", `/v1/requests/${encodeURIComponent(id)}/approve`, { body })).data;
  }

  async reject(id, { reason }) {
    return (await this.call("POST", `/v1/requests/${encodeURIComponent(id)}/reject`, { body: { reason } })).data;
  }

  async cancel(id) {
    return (await this.call("POST", `/v1/requests/${encodeURIComponent(id)}/cancel`)).data;
  }

  async comment(id, { text }) {
    return (await this.call("POST", `/v1/requests/${encodeURIComponent(id)}/comments`, { body: { text } })).data;
  }

  /** Replaces the change of a pending request (the requester only). */
  async amend(id, change) {
    return (await this.call("POST", `/v1/requests/${encodeURIComponent(id)}/amend`, { body: change })).data;
  }

  /** Closes the after-the-fact review of an emergency: `outcome` is `ratified` or `flagged`. */
  async review(id, { outcome, comment }) {
    const body = comment ? { outcome, comment } : { outcome };
    return (await this.call("POST", `/v1/requests/${encodeURIComponent(id)}/review`, { body })).data;
  }
}

// The package's IndexedDB cache, beside the package itself (see app.js).
const INDEXEDDB_URL = new URL("../pkg/indexeddb.js", import.meta.url);

// Where an earlier version kept local rules; `reset` still clears it.
const RULES_KEY = "signoff.local.rules";
const PRINCIPAL_KEY = "signoff.local.principal";

/**
 * Local mode: the signoff engine (wasm) in this page over an IndexedDB
 * cache, with demo rules (editable by the demo admin, kept by the engine in
 * that cache) and demo principals to act as. No server, no token.
 */
export class LocalBackend {
  /**
   * Opens the local store; `engine` is the imported JS package. Its
   * IndexedDB cache is the package's own (`signoff/indexeddb`), served next
   * to it at /pkg/.
   */
  static async open(engine, { database = "signoff-local" } = {}) {
    const { IndexedDbCache } = await import(INDEXEDDB_URL.href);
    const cache = await IndexedDbCache.open(database);
    const backend = new LocalBackend(engine, cache);
    await backend.loadRules();
    return backend;
  }

  constructor(engine, cache) {
    this.kind = "local";
    this.engine = engine;
    this.cache = cache;
    this.principals = DEMO_PRINCIPALS;
    this.principal = this.principals.find((p) => p.id === localStorage.getItem(PRINCIPAL_KEY)) ?? this.principals[0];
    this.currentRules = structuredClone(DEMO_RULES);
    this.manager = this.makeManager(this.currentRules);
  }

  /**
   * Decides with the rules stored in the local cache, when an earlier
   * `putRules` stored some (the engine keeps them there, as a server keeps
   * them in its store).
   */
  async loadRules() {
    const stored = await this.run(() => this.manager.storedRules());
    if (stored) this.adopt(stored.rules);
  }

  makeManager(rules) {
    return new this.engine.ApprovalManager({
      rules,
      cache: this.cache,
      clock: () => Date.now(),
      ids: () => crypto.randomUUID(),
    });
  }

  adopt(rules) {
    const previous = this.manager;
    this.manager = this.makeManager(rules);
    previous.free?.();
    this.currentRules = rules;
  }

  /** Chooses the demo principal to act as. */
  actAs(id) {
    const principal = this.principals.find((p) => p.id === id);
    if (!principal) throw new SignoffError("not_found", `no demo principal \`${id}\``);
    this.principal = principal;
    localStorage.setItem(PRINCIPAL_KEY, id);
  }

  async run(body) {
    try {
      return await body();
    } catch (error) {
      throw asSignoffError(error);
    }
  }

  async rules() {
    return { rules: this.currentRules, digest: this.digest() };
  }

  digest() {
    const digest = this.manager.rulesDigest;
    return typeof digest === "function" ? digest.call(this.manager) : digest ?? null;
  }

  /**
   * Replaces the rules as the acting principal, when `digest` (the one the
   * editor read) is still the one in force: the engine checks the admin
   * role, the digest and the document, and stores them in the local cache.
   */
  async putRules(rules, digest) {
    const replaced = await this.run(() =>
      this.manager.replaceRules(rules, this.principal, digest ? { ifMatch: digest } : undefined));
    this.adopt(replaced.rules);
    return { rules: replaced.rules, digest: replaced.digest };
  }

  /**
   * What `rules` would change for the local requests, judged by the engine
   * over the local cache, with the demo principals as the ones known.
   */
  simulateRules(rules) {
    return this.run(() => this.manager.simulateRules(rules, { principals: this.principals }));
  }

  /** The demo principals: everyone who may act in local mode. */
  async knownPrincipals() {
    return { known: true, principals: this.principals, missing: false };
  }

  /** Restores the demo rules and erases every local request. */
  async reset() {
    localStorage.removeItem(RULES_KEY);
    await this.cache.clear();
    this.adopt(structuredClone(DEMO_RULES));
  }

  create(change, { idempotencyKey } = {}) {
    return this.run(() => this.manager.create(change, this.principal, idempotencyKey ? { idempotencyKey } : {}));
  }

  list({ status, policyType, q, emergencyReview, view, limit, cursor } = {}) {
    const query = {};
    if (status) query.status = status;
    if (policyType) query.policyType = policyType;
    if (q) query.q = q;
    if (emergencyReview) query.emergencyReview = emergencyReview;
    if (view) query.view = view;
    if (limit) query.limit = Number(limit);
    if (cursor) query.cursor = cursor;
    return this.run(async () => {
      const page = await this.manager.list(query);
      return { items: page.items ?? [], nextCursor: page.nextCursor ?? null };
    });
  }

  /** The pending requests the acting principal may act on now, as the engine decides. */
  actionable({ limit, cursor } = {}) {
    const query = { status: "pending", actionableBy: this.principal, view: "summary" };
    if (limit) query.limit = Number(limit);
    if (cursor) query.cursor = cursor;
    return this.run(async () => {
      const page = await this.manager.list(query);
      return { items: page.items ?? [], nextCursor: page.nextCursor ?? null };
    });
  }

  get(id) {
    return this.run(async () => {
      const request = await this.manager.get(id);
      if (!request) throw new SignoffError("not_found", `no request \`${id}\``);
      return request;
    });
  }

  approve(id, { comment } = {}) {
    return this.run(() => this.manager.approve(id, this.principal, comment ? { comment } : {}));
  }

  reject(id, { reason }) {
    return this.run(() => this.manager.reject(id, this.principal, { reason }));
  }

  cancel(id) {
    return this.run(() => this.manager.cancel(id, this.principal));
  }

  comment(id, { text }) {
    return this.run(() => this.manager.comment(id, this.principal, { text }));
  }

  amend(id, change) {
    return this.run(() => this.manager.amend(id, this.principal, change));
  }

  review(id, { outcome, comment }) {
    return this.run(() => this.manager.review(id, this.principal, comment ? { outcome, comment } : { outcome }));
  }
}
