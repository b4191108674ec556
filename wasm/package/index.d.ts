// Types of the `signoff` package: the declarations wasm-bindgen generates
// from the Rust types (with tsify), with the few that JavaScript callers need
// wider or self-contained declared here (a local export shadows the
// generated one of the same name).
export * from "./signoff_wasm.js";
import type { CompiledRules, ErrorCode, ErrorDetails, Preview, Principal, Rules, RulesWarning, Violation } from "./signoff_wasm.js";

declare global {
  // The classes' `[Symbol.dispose]()` needs `Symbol.dispose`, which only
  // TypeScript's `esnext.disposable` library or @types/node declare:
  // declared here so that the package type-checks with neither.
  interface SymbolConstructor {
    readonly dispose: unique symbol;
  }
}

/**
 * Every problem of `change` (empty when it is a valid change), checked
 * against `rules` when given. Takes any value: untrusted JSON needs no cast,
 * and anything that is not a change is reported, never thrown.
 */
export function validateChange(change: unknown, rules?: Rules | CompiledRules | null): Violation[];

/**
 * Validation and level of `change` under `rules`, storing nothing. Takes any
 * value: anything that is not a valid change answers `{ valid: false, errors }`.
 * Throws `invalid_request` when the rules are invalid.
 */
export function previewChange(change: unknown, rules: Rules | CompiledRules): Preview;

/**
 * Every problem of a rules document (empty when valid). Takes any value:
 * anything that is not a rules document is reported, never thrown.
 */
export function validateRules(rules: unknown): Violation[];
/**
 * With `options.principals`: the problems, then, for a valid document, the
 * stages those principals could never meet as warnings `{ path, code:
 * "unsatisfiable", message }`. A warning never makes the document invalid;
 * tell them apart by `code`.
 */
export function validateRules(
  rules: unknown,
  options: { principals?: Principal[] } | null | undefined,
): Array<Violation | RulesWarning>;

/** The codes of `SignoffError`: the core's `ErrorCode` (`not_initialized` included: an export used before `init()`). */
export type SignoffErrorCode = ErrorCode;

/** Every failure of signoff is thrown (or rejected) as a `SignoffError`. */
export class SignoffError extends Error {
  readonly name: "SignoffError";
  /** The stable code. */
  readonly code: SignoffErrorCode;
  /** Validation items (`invalid_request`), or `{ retryAfterSeconds }` (`rate_limited`). */
  readonly details?: ErrorDetails;
}
