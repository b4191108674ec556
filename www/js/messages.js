// Messages in plain words. The engine and the server describe problems for
// programs: names in backticks, the regular expression a value must match,
// and a stable code. People see sentences instead; the codes stay on the
// elements as `data-code`, where the tests and assistive tools can read them.

import { problemsOf } from "./backends.js";

// What each identifier may hold, in words, for `invalid_format`.
const FORMATS = {
  policyType: "use lowercase letters, digits, “_”, “.” or “-”, starting with a letter (at most 63 characters)",
  environment: "use lowercase letters, digits, “_”, “.” or “-”, starting with a letter or a digit (at most 63 characters)",
  metadata: "a key uses letters, digits, “_”, “.” or “-” (1 to 64 characters)",
};

// The names people see for the fields of a change.
export const FIELD_LABELS = {
  policyId: "Policy id",
  policyType: "Policy type",
  changeKind: "Change kind",
  environment: "Environment",
  title: "Title",
  justification: "Justification",
  diff: "Diff",
  riskScore: "Risk score",
  priority: "Priority",
  metadata: "Metadata",
};

/** "Policy type", "Metadata ticket", or the path itself when it has no name. */
export function fieldLabel(path) {
  const text = String(path ?? "");
  if (text.startsWith("metadata.")) return `Metadata ${text.slice("metadata.".length)}`;
  return FIELD_LABELS[text] ?? text;
}

/**
 * A message without backticks (quoted names instead) and without a regular
 * expression (`^…$`), which is replaced by `format` or a general phrase.
 */
export function plain(message, format = "the allowed format") {
  return String(message ?? "")
    .replace(/must match \^\S*\$/g, format)
    .replace(/\^\S*\$/g, format)
    .replace(/`([^`]*)`/g, "“$1”");
}

/** The message of one validation item (`{ path, code, message }`). */
export function problemText(item) {
  if (item.code === "invalid_format") {
    const top = String(item.path ?? "").split(/[.[]/)[0];
    if (FORMATS[top]) return FORMATS[top];
  }
  return plain(item.message);
}

const BY_CODE = {
  unauthenticated: "The server did not accept your sign-in: sign in again.",
  unavailable: "The server could not be reached, or its storage is down. Try again in a moment.",
  internal: "Something went wrong on the server. Try again; if it goes on, tell an administrator.",
  precondition_failed: "Someone changed the rules since you loaded them.",
  payload_too_large: "This is too large to send (over 1 MiB).",
  not_found: "There is no such request.",
};

/** A refusal or failure in words, for any `SignoffError`. */
export function errorText(error) {
  if (error?.code === "rate_limited") {
    const seconds = error.details?.retryAfterSeconds;
    return seconds
      ? `Too many new requests for now: try again in ${seconds} s.`
      : "Too many new requests for now: try again shortly.";
  }
  const problems = problemsOf(error);
  if (error?.code === "invalid_request" && problems.length) {
    const count = problems.length === 1 ? "1 problem" : `${problems.length} problems`;
    return `${count}: ${problems.map((item) => `${item.path ? `${fieldLabel(item.path)}: ` : ""}${problemText(item)}`).join("; ")}.`;
  }
  if (error?.code === "not_found" && !/request/.test(error?.message ?? "")) return plain(error.message);
  return BY_CODE[error?.code] ?? sentence(plain(error?.message ?? String(error)));
}

/** Capitalised, with a full stop. */
function sentence(text) {
  const trimmed = text.trim();
  if (!trimmed) return "";
  const capital = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}
