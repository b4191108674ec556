// The HTTP routes of signoff's API (docs/API.md) over an `ApprovalManager`,
// as a standard `fetch(request)` handler (Request in, Response out) that edge
// runtimes call: the edge examples (`worker.mjs`, `../cloudflare/worker.mjs`)
// share it.
//
//   POST /v1/preview                       validation and level, nothing stored
//   POST /v1/requests                      file a change (Idempotency-Key honoured)
//   GET  /v1/requests?status=&policyType=&limit=&cursor=
//   GET  /v1/requests/{id}
//   POST /v1/requests/{id}/approve         { comment? }
//   POST /v1/requests/{id}/reject          { reason }
//   POST /v1/requests/{id}/cancel
//   POST /v1/requests/{id}/comments        { text }
//
// Callers authenticate with `Authorization: Bearer <token>`; `principalOf`
// maps a token to a principal `{ id, roles }` (a real deployment verifies a
// signed token instead).
import { previewChange } from "signoff";

/** The HTTP status of each error code (docs/API.md). */
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

/** An HTTP-level failure (authentication, routing, body), with its code. */
export class HttpError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/** A JSON response. */
export function json(status, body, headers = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** The `{ error: { code, message, details? } }` response of a thrown error. */
export function errorResponse(error) {
  const code = typeof error?.code === "string" && STATUS[error.code] ? error.code : "internal";
  const body = { error: { code, message: code === "internal" ? "internal error" : error.message } };
  if (error.details !== undefined && code !== "internal") body.error.details = error.details;
  const headers = code === "rate_limited" ? { "retry-after": String(error.details.retryAfterSeconds) } : {};
  return json(STATUS[code] ?? 500, body, headers);
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

function bearer(request, principalOf, context) {
  const match = /^Bearer (\S+)$/.exec(request.headers.get("authorization") ?? "");
  const principal = match ? principalOf(match[1], ...context) : undefined;
  if (!principal) throw new HttpError("unauthenticated", "a valid bearer token is required");
  return principal;
}

const ACTIONS = {
  approve: (manager, id, principal, body) => manager.approve(id, principal, body),
  reject: (manager, id, principal, body) => manager.reject(id, principal, body ?? {}),
  cancel: (manager, id, principal, body) => {
    if (body !== undefined && (body === null || typeof body !== "object" || Object.keys(body).length > 0)) {
      throw new HttpError("invalid_request", "cancel takes no body (or {})");
    }
    return manager.cancel(id, principal);
  },
  comments: (manager, id, principal, body) => manager.comment(id, principal, body ?? {}),
};

/**
 * A `fetch(request, ...context)` handler. `managerFor(...context)` answers
 * the manager for a request (given what the runtime passes beside it, such
 * as a Worker's `env`), or a Promise of it; `rules()` the rules previews use
 * (a `CompiledRules`), or a Promise of them; `principalOf(token, ...context)`
 * answers a principal or `undefined`.
 */
export function httpHandler({ managerFor, rules, principalOf }) {
  async function route(request, context) {
    const url = new URL(request.url);
    const path = url.pathname;
    const method = request.method;
    if (path === "/v1/preview") {
      if (method !== "POST") throw new HttpError("method_not_allowed", "use POST");
      bearer(request, principalOf, context);
      return json(200, previewChange((await bodyOf(request)) ?? null, await rules()));
    }
    if (path === "/v1/requests") {
      if (method === "POST") {
        const principal = bearer(request, principalOf, context);
        const key = request.headers.get("idempotency-key");
        const change = (await bodyOf(request)) ?? null;
        const manager = await managerFor(...context);
        const created = await manager.create(change, principal, key === null ? undefined : { idempotencyKey: key });
        return json(201, created, { location: `/v1/requests/${created.id}` });
      }
      if (method === "GET") {
        bearer(request, principalOf, context);
        const query = {};
        for (const [name, value] of url.searchParams) {
          if (Object.hasOwn(query, name)) throw new HttpError("invalid_request", `\`${name}\` is repeated`);
          if (value !== "") query[name] = value;
        }
        const page = await (await managerFor(...context)).list(query);
        return json(200, { items: page.items, nextCursor: page.nextCursor ?? null });
      }
      throw new HttpError("method_not_allowed", "use GET or POST");
    }
    const matched = /^\/v1\/requests\/([^/]+)(?:\/(approve|reject|cancel|comments))?$/.exec(path);
    if (matched) {
      let id;
      try {
        id = decodeURIComponent(matched[1]);
      } catch {
        throw new HttpError("not_found", "no such request");
      }
      const action = matched[2];
      if (action === undefined) {
        if (method !== "GET") throw new HttpError("method_not_allowed", "use GET");
        bearer(request, principalOf, context);
        const found = await (await managerFor(...context)).get(id);
        if (found === null) throw new HttpError("not_found", "no such request");
        return json(200, found);
      }
      if (method !== "POST") throw new HttpError("method_not_allowed", "use POST");
      const principal = bearer(request, principalOf, context);
      const body = await bodyOf(request);
      const manager = await managerFor(...context);
      return json(200, await ACTIONS[action](manager, id, principal, body));
    }
    throw new HttpError("not_found", `no route for ${method} ${path}`);
  }

  return async function fetch(request, ...context) {
    try {
      return await route(request, context);
    } catch (error) {
      return errorResponse(error);
    }
  };
}
