// An edge function over signoff: a module whose default export has the
// standard `fetch(request)` handler (Request in, Response out), as Cloudflare
// Workers, Deno Deploy and others call it. It serves part of the HTTP API of
// SPEC section 7 over a KV-like store:
//
//   POST /v1/preview                    validation and level, nothing stored
//   POST /v1/requests                   file a change (Idempotency-Key honoured)
//   GET  /v1/requests?status=&policyType=&limit=&cursor=
//   POST /v1/requests/{id}/approve      { comment? }
//
// Callers authenticate with `Authorization: Bearer <token>`; the demo tokens
// below map to principals. In Node the package instantiates itself on import;
// on workerd, import the `.wasm` as a module and call `initSync({ module })`
// instead of `init()` (see wasm/README.md).
import init, { ApprovalManager, CompiledRules, previewChange } from "signoff";

import { KvStore, kvCache } from "./kv.mjs";

export const TOKENS = {
  "alice-token": { id: "alice", roles: ["engineer"] },
  "bob-token": { id: "bob", roles: ["engineer"] },
  "carol-token": { id: "carol", roles: ["security"] },
};

export const RULES = {
  levels: [
    { name: "peer", ttlSeconds: 86400, stages: [{ name: "review", requiredApprovals: 1, eligibleRoles: ["engineer"] }] },
    {
      name: "security",
      ttlSeconds: 86400,
      stages: [
        { name: "peer", requiredApprovals: 1, eligibleRoles: ["engineer"] },
        { name: "security", requiredApprovals: 1, eligibleRoles: ["security"] },
      ],
    },
  ],
  defaultLevel: "peer",
  rules: [{ name: "production", when: { environments: ["prod"] }, level: "security" }],
  rateLimit: { requests: 30, perSeconds: 60 },
};

/** The HTTP status of each error code (SPEC section 7). */
const STATUS = {
  unauthenticated: 401,
  invalid_request: 400,
  not_found: 404,
  expired: 409,
  not_pending: 409,
  self_approval: 403,
  already_approved: 409,
  not_eligible: 403,
  forbidden: 403,
  rate_limited: 429,
  conflict: 409,
  unavailable: 503,
  payload_too_large: 413,
  unsupported_media_type: 415,
  method_not_allowed: 405,
};

const MAX_BODY_BYTES = 1 << 20;

class HttpError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function json(status, body, headers = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

function errorResponse(error) {
  const code = typeof error?.code === "string" && STATUS[error.code] ? error.code : "internal";
  const body = { error: { code, message: code === "internal" ? "internal error" : error.message } };
  if (error.details !== undefined && code !== "internal") body.error.details = error.details;
  const headers = code === "rate_limited" ? { "retry-after": String(error.details.retryAfterSeconds) } : {};
  return json(STATUS[code] ?? 500, body, headers);
}

function principalOf(request) {
  const header = request.headers.get("authorization") ?? "";
  const match = /^Bearer (\S+)$/.exec(header);
  const principal = match && Object.hasOwn(TOKENS, match[1]) ? TOKENS[match[1]] : undefined;
  if (!principal) throw new HttpError("unauthenticated", "a valid bearer token is required");
  return principal;
}

/** The JSON body; an empty body is `undefined`. */
async function bodyOf(request) {
  const text = await request.text();
  if (new TextEncoder().encode(text).length > MAX_BODY_BYTES) {
    throw new HttpError("payload_too_large", "bodies are at most 1 MiB");
  }
  if (text === "") return undefined;
  const type = (request.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
  if (type !== "application/json") throw new HttpError("unsupported_media_type", "the body must be application/json");
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError("invalid_request", "the body is not JSON");
  }
}

/** A `fetch` handler over `store` (a `KvStore`), with an injectable clock and ids. */
export function createHandler({ store = new KvStore(), clock, ids } = {}) {
  const ready = init();
  const rules = new CompiledRules(RULES);
  const manager = new ApprovalManager({ rules, cache: kvCache(store), clock, ids });

  async function route(request) {
    const url = new URL(request.url);
    const path = url.pathname;
    const method = request.method;
    if (path === "/v1/preview") {
      if (method !== "POST") throw new HttpError("method_not_allowed", "use POST");
      principalOf(request);
      return json(200, previewChange((await bodyOf(request)) ?? null, rules));
    }
    if (path === "/v1/requests") {
      if (method === "POST") {
        const principal = principalOf(request);
        const key = request.headers.get("idempotency-key");
        const change = (await bodyOf(request)) ?? null;
        const created = await manager.create(change, principal, key === null ? undefined : { idempotencyKey: key });
        return json(201, created);
      }
      if (method === "GET") {
        principalOf(request);
        const query = Object.fromEntries(url.searchParams);
        const page = await manager.list(query);
        return json(200, { items: page.items, nextCursor: page.nextCursor ?? null });
      }
      throw new HttpError("method_not_allowed", "use GET or POST");
    }
    const approve = /^\/v1\/requests\/([^/]+)\/approve$/.exec(path);
    if (approve) {
      if (method !== "POST") throw new HttpError("method_not_allowed", "use POST");
      const principal = principalOf(request);
      const body = await bodyOf(request);
      let id;
      try {
        id = decodeURIComponent(approve[1]);
      } catch {
        throw new HttpError("not_found", "no such request");
      }
      return json(200, await manager.approve(id, principal, body));
    }
    throw new HttpError("not_found", `no route for ${method} ${path}`);
  }

  return async function fetch(request) {
    await ready;
    try {
      return await route(request);
    } catch (error) {
      return errorResponse(error);
    }
  };
}

export default { fetch: createHandler() };
