// How signals sit in the KV bucket: the key for a (subject, kind, name) and back. Kept apart from
// the store so that the key scheme (what a hostile bus client must match to be read at all) can
// be read and tested on its own.

import { VigilError } from "../errors/index.js";
import { SIGNAL_KINDS } from "./model.js";
import type { SignalKind } from "./model.js";
import type { SignalAddress } from "./signal-index.js";

// KV keys allow only [-/_=.a-zA-Z0-9], and dots separate tokens. The kind stays readable as the
// first token (so `risk.>` can be watched alone); subject and name are base64url, which uses
// only [-_a-zA-Z0-9] and never pads. An empty name gets no token.
const KINDS: ReadonlySet<string> = new Set(SIGNAL_KINDS);

/** Whether a key's first token names a signal kind (for logging a refused key's kind only). */
export function isSignalKind(token: string): boolean {
  return KINDS.has(token);
}

function keyToken(text: string, field: string): string {
  const bytes = Buffer.from(text, "utf8");
  // A lone UTF-16 surrogate has no UTF-8 form: the key would not decode back to the signal.
  if (bytes.toString("utf8") !== text) {
    throw new VigilError("invalid_input", `${field} is not well-formed Unicode text`);
  }
  return bytes.toString("base64url");
}

/** The KV key for a signal key; VigilError("invalid_input") for text with lone surrogates. */
export function kvKeyFor(subject: string, kind: SignalKind, name: string): string {
  const subjectToken = keyToken(subject, "subject");
  if (name === "") return `${kind}.${subjectToken}`;
  return `${kind}.${subjectToken}.${keyToken(name, "name")}`;
}

/** The signal a KV key holds, or undefined for a key Vigil did not write. */
export function addressForKvKey(kvKey: string): SignalAddress | undefined {
  const [kind, subjectToken, nameToken, ...rest] = kvKey.split(".");
  if (kind === undefined || !KINDS.has(kind) || subjectToken === undefined || rest.length > 0) return undefined;
  const subject = Buffer.from(subjectToken, "base64url").toString("utf8");
  const name = nameToken === undefined ? "" : Buffer.from(nameToken, "base64url").toString("utf8");
  // Decoding is lenient; only a key that encodes back to itself is one Vigil wrote.
  if (subject === "" || kvKeyFor(subject, kind as SignalKind, name) !== kvKey) return undefined;
  return { subject, kind: kind as SignalKind, name };
}
