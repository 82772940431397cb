// Strings read from files kept one byte per character. V8 stores a string whose characters all fit
// in one byte (Latin-1) one byte per character, and any other two bytes per character; a string
// cut out of a longer text keeps the text's width (Node 24 copies cuts under 13 characters into
// strings as narrow as their characters; longer ones stay slices of the text on every Node). The
// text of a YAML file with a single wider character anywhere, an em dash in a comment say, is two
// bytes wide, and so is every name, reason and expression parsed from it, though they are plain
// ASCII. On the Check path such a string costs at every use: a rule's name and reason make each
// decision line two bytes wide (flattened into a two-byte copy, then re-encoded to UTF-8 by the
// log writer), and comparing one with the one-byte strings the request decoder makes cannot use a
// byte comparison. Measured on the example policy, whose files all carry such comments: about
// 6 µs of CPU per allowed Check spent copying and re-encoding the decision line (issue #9, perf
// over h2load).
// What is read from YAML once at load (policies, entities, seed signals, settings) is copied here
// into one-byte strings; strings with a character beyond Latin-1 stay as they are. JSON needs
// none of this: V8's JSON.parse makes each string as narrow as its own characters allow.
// Not the yaml library's `reviver` option: it recurses without remembering what it visited, so
// an alias inside itself (which yaml accepts) overflows the stack, where today the schema names
// the field instead.

const BEYOND_LATIN1 = /[\u0100-\u{10ffff}]/u;

/** `value` itself, or, when every character fits in one byte, a one-byte copy of it. */
export function oneByteString(value: string): string {
  return BEYOND_LATIN1.test(value) ? value : Buffer.from(value, "latin1").toString("latin1");
}

/**
 * A copy of parsed data (plain objects, arrays, scalars: what a YAML or JSON parser returns) whose
 * string values are one-byte where they can be (oneByteString). Other objects are kept as they
 * are. Keys are kept as the parser made them, own data properties ("__proto__" included, which an
 * assignment would turn into a prototype change): V8 keeps one shared copy of each property key,
 * the first one made, so a one-byte copy of a key would be swapped back for it; and keys are
 * compared by identity, not character by character. A node reached twice (a YAML alias, even one
 * inside itself) is copied once, so the copy has the same shape.
 */
export function withOneByteStrings(value: unknown): unknown {
  return copyOf(value, new Map());
}

function copyOf(value: unknown, copies: Map<object, unknown>): unknown {
  if (typeof value === "string") return oneByteString(value);
  if (typeof value !== "object" || value === null) return value;
  const done = copies.get(value);
  if (done !== undefined) return done;
  if (Array.isArray(value)) {
    const copy: unknown[] = [];
    copies.set(value, copy);
    for (const item of value as unknown[]) copy.push(copyOf(item, copies));
    return copy;
  }
  const prototype: unknown = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return value;
  const copy = Object.create(prototype) as Record<string, unknown>;
  copies.set(value, copy);
  for (const [key, item] of Object.entries(value)) {
    Object.defineProperty(copy, key, { value: copyOf(item, copies), enumerable: true, writable: true, configurable: true });
  }
  return copy;
}
