// The JavaScript half of the binding: the error class, and the check that an
// argument is plain JSON data before its text crosses into WebAssembly.
//
// wasm-bindgen copies this file into the package (`snippets/`). It decides
// nothing about changes, rules or requests: the Rust core does.

/** The longest JSON text of one argument, in UTF-16 units (1 MiB, like HTTP bodies). */
const MAX_JSON_UNITS = 1 << 20;

/**
 * Every failure of signoff: `code` is the stable snake_case code, `details`
 * the validation items (`invalid_request`) or `{ retryAfterSeconds }`
 * (`rate_limited`).
 */
export class SignoffError extends Error {
  constructor(code, message, details) {
    super(message);
    this.name = "SignoffError";
    this.code = code;
    if (details !== undefined && details !== null) {
      this.details = details;
    }
  }
}

export function makeError(code, message, details) {
  return new SignoffError(code, message, details === null ? undefined : details);
}

function describe(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  const type = typeof value;
  if (type !== "object") return type;
  const proto = Object.getPrototypeOf(value);
  const name = proto && proto.constructor && proto.constructor.name;
  return name ? `a ${name}` : "object";
}

function join(path, key, inArray) {
  if (inArray) return `${path}[${key}]`;
  return path === "" ? key : `${path}.${key}`;
}

const encoder = new TextEncoder();

/** Deeper nesting than this is left to the slow path (serde_json stops at 128). */
const MAX_DEPTH = 100;

/** Whether `value` is plain JSON data, checked without allocating. */
function isPlain(value, depth) {
  switch (typeof value) {
    case "string":
    case "boolean":
    case "undefined":
      return true;
    case "number":
      return Number.isFinite(value);
    case "object": {
      if (value === null) return true;
      if (depth > MAX_DEPTH) return false;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          if (!isPlain(value[i], depth + 1)) return false;
        }
        return true;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return false;
      for (const key in value) {
        if (Object.hasOwn(value, key) && !isPlain(value[key], depth + 1)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

/** Every value of `value` that is not plain JSON data, with its path. */
function problemsOf(value, prefix, what) {
  const problems = [];
  const paths = new Map();
  try {
    JSON.stringify(value, function (key, converted) {
      let path = prefix;
      if (paths.has(this)) {
        path = join(paths.get(this), key, Array.isArray(this));
      }
      const raw = this[key];
      switch (typeof raw) {
        case "number":
          if (!Number.isFinite(raw)) {
            problems.push({ path, code: "invalid_type", message: `must be a finite number, got ${raw}` });
            return undefined;
          }
          return raw;
        case "bigint":
        case "function":
        case "symbol":
          problems.push({ path, code: "invalid_type", message: `must be JSON data, got a ${typeof raw}` });
          return undefined;
        case "object": {
          if (raw === null) return null;
          const proto = Object.getPrototypeOf(raw);
          if (!Array.isArray(raw) && proto !== Object.prototype && proto !== null) {
            problems.push({ path, code: "invalid_type", message: `must be a plain object, got ${describe(raw)}` });
            return undefined;
          }
          paths.set(raw, path);
          return raw;
        }
        default:
          return converted;
      }
    });
  } catch (error) {
    // Cycles, and nesting too deep for the engine's stack, end up here.
    return [{ path: prefix, code: "invalid_type", message: `the ${what} is not JSON data: ${error && error.message}` }];
  }
  if (problems.length === 0) {
    problems.push({ path: prefix, code: "invalid_type", message: `the ${what} is nested too deeply` });
  }
  return problems;
}

/**
 * The JSON text of `value` as UTF-8 bytes (a `Uint8Array`: one copy into
 * WebAssembly memory, where a string is copied character by character),
 * `undefined` when `value` is `undefined`, or an
 * array of problems (`{ path, code, message }`) listing every value that is
 * not plain JSON data: non-finite numbers, bigints, functions, symbols, and
 * objects other than plain objects and arrays (Map, Date, class instances...),
 * cycles, nesting deeper than 100, and texts over 1 MiB. Paths start at
 * `prefix`; `what` names the argument in messages.
 */
export function toJsonText(value, prefix, what) {
  if (!isPlain(value, 0)) {
    return problemsOf(value, prefix, what);
  }
  const text = JSON.stringify(value);
  if (text !== undefined && text.length > MAX_JSON_UNITS) {
    return [{ path: prefix, code: "too_large", message: `the ${what} must be at most ${MAX_JSON_UNITS} characters of JSON` }];
  }
  return text === undefined ? undefined : encoder.encode(text);
}
