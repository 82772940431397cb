// Is a request path in normal form? Rules match paths as written, and the app behind Envoy may
// decode, resolve dot segments or treat "\" and ";" as separators: `/v1/deploy/../admin`,
// `//v1/deploy` or `/v1/hosts/%2F..%2Fx/quarantine` could match a broad allow rule and reach
// something else, or slip past a narrow deny. Envoy normalises honest traffic first
// (normalize_path, merge_slashes, path_with_escaped_slashes_action: REJECT_REQUEST in envoy/), so
// anything still not normal here was not sent through those settings: it is refused, not repaired.
// One pass over the characters, no regex: this runs on every Check.

import { FNV_PRIME as IMPORTED_PRIME, isIdLike } from "../behavior/index.js";

// A module's own const, not the import: optimised code reads an imported binding from its module
// cell in every iteration (a hole check, a number check and a conversion to int32: about 12
// instructions a character in the loop below; callgrind, --print-opt-code), and folds a local
// const into the multiplication.
const FNV_PRIME = IMPORTED_PRIME;

/**
 * pathProblem's `seen`: one dot, anything else, a digit. A segment of 2^20 dots or more carries
 * into OTHER: such a segment is no dot segment either way (more than two dots), and is id-like
 * for its length whatever DIGIT says.
 */
const DOTS = 1;
const OTHER = 1 << 20;
const DIGIT = 1 << 21;

/** The lanes pathProblem works in when it is given none (scratch: nothing reads them). */
const NO_LANES = new Int32Array(5);

/**
 * Why `path` (without its query) is not in normal form, or undefined when it is. Normal: starts
 * with "/"; no empty segment ("//"); no "." or ".." segment, written plainly or percent-encoded;
 * no "\", ";" or "#"; no control character, space or non-ASCII byte; "%" only as "%XX" with hex
 * digits, and never encoding "/", "\", ".", ";", "%" (double encoding) or a control character.
 * The refusals of "%25" and ";" follow Spring Security's StrictHttpFirewall defaults.
 *
 * Only `path[0, end)` is read: the pipeline passes the request's path with the length of its part
 * before the query, so the loop reads the flat string the decoder made. The path without its query
 * is a slice of it (a SlicedString), and each character read through one costs about twice as
 * many instructions (callgrind, issue #9).
 *
 * `lanes`, when given (five slots), holds the two FNV-1a lanes of a behaviour action key after
 * "destination METHOD " (`BehaviorMonitor.seedPath`); the same pass feeds them the path's pattern
 * as behaviour's `pathPattern` writes it (id-like segments as "*"), and for a path in normal form
 * leaves them in `lanes[0]` and `lanes[1]` and `end` in `lanes[2]` (`lanes[3]` and `lanes[4]` are
 * its scratch; a path with a problem leaves the first three as they were). Reading a character
 * costs more than hashing it (optimised code dispatches on the string's representation at every
 * `charCodeAt`), and the hash's multiplications overlap with the next character's reading: a
 * second pass of its own over the path cost far more time than hashing in this one (issue #12).
 */
export function pathProblem(path: string, end: number = path.length, lanes: Int32Array = NO_LANES): string | undefined {
  if (end === 0 || path.charCodeAt(0) !== 47 /* / */) return "path does not start with /";
  // The pattern's lanes as fed so far (x, y); in lanes[3] and lanes[4] as they were at the start
  // of the segment, to feed "*" instead of an id-like segment. The first segment is the empty one
  // before the leading "/". What the segment held so far is in `seen`: its dots (DOTS per dot),
  // whether anything else (OTHER) and whether a digit (DIGIT). Fewer values live through the loop
  // leave TurboFan more registers: with the segment's lanes and three flags as locals it kept the
  // lanes on the stack, and a call took about 83 ns against 70 this way (the check alone: 62; a
  // scratch microbenchmark over the behaviour bench's paths, issue #12).
  let x = Math.imul((lanes[0] as number) ^ 47, FNV_PRIME);
  let y = Math.imul((lanes[1] as number) ^ 47, FNV_PRIME);
  lanes[3] = x;
  lanes[4] = y;
  let seen = 0;
  let segmentStart = 1;
  for (let i = 1; i < end; i++) {
    const c = path.charCodeAt(i);
    if (c === 47 /* / */) {
      if (i === segmentStart) return "path has an empty segment (//)";
      if (seen < OTHER && seen <= 2 * DOTS) return "path has a dot segment (. or ..)";
      if (isIdLike(path, segmentStart, i - segmentStart, (seen & DIGIT) !== 0)) {
        x = Math.imul(lanes[3] ^ 42 /* * */, FNV_PRIME);
        y = Math.imul(lanes[4] ^ 42, FNV_PRIME);
      }
      x = Math.imul(x ^ 47, FNV_PRIME);
      y = Math.imul(y ^ 47, FNV_PRIME);
      lanes[3] = x;
      lanes[4] = y;
      seen = 0;
      segmentStart = i + 1;
      continue;
    }
    x = Math.imul(x ^ c, FNV_PRIME);
    y = Math.imul(y ^ c, FNV_PRIME);
    if (c >= 48 && c <= 126 && c !== 59 && c !== 92) {
      // Digits, letters and the rest of printable ASCII above "/" but ";" and "\": most of any path.
      seen |= c <= 57 ? OTHER | DIGIT : OTHER;
    } else if (c === 46 /* . */) {
      seen += DOTS;
    } else if (c === 37 /* % */) {
      const highChar = i + 1 < end ? path.charCodeAt(i + 1) : -1;
      const lowChar = i + 2 < end ? path.charCodeAt(i + 2) : -1;
      const high = hexValue(highChar);
      const low = hexValue(lowChar);
      if (high < 0 || low < 0) return "path has a malformed percent-encoding";
      const decoded = high * 16 + low;
      if (decoded === 47 || decoded === 92) return "path has an encoded slash or backslash (%2F, %5C)";
      if (decoded === 46) return "path has an encoded dot (%2E)";
      if (decoded === 37) return "path has a double percent-encoding (%25)";
      if (decoded === 59) return "path has an encoded semicolon (%3B)";
      if (decoded < 32 || decoded === 127) return "path has an encoded control character";
      x = Math.imul(Math.imul(x ^ highChar, FNV_PRIME) ^ lowChar, FNV_PRIME);
      y = Math.imul(Math.imul(y ^ highChar, FNV_PRIME) ^ lowChar, FNV_PRIME);
      seen |= high < 10 || low < 10 ? OTHER | DIGIT : OTHER;
      i += 2;
    } else if (c === 92 /* \ */) {
      return "path has a backslash";
    } else if (c === 59 /* ; */) {
      return "path has a semicolon (path parameters)";
    } else if (c === 35 /* # */) {
      return "path has a fragment (#)";
    } else if (c <= 32 || c >= 127) {
      return "path has a space, control or non-ASCII character";
    } else {
      seen |= OTHER;
    }
  }
  if (end > segmentStart && seen < OTHER && seen <= 2 * DOTS) return "path has a dot segment (. or ..)";
  if (lanes !== NO_LANES) {
    if (isIdLike(path, segmentStart, end - segmentStart, (seen & DIGIT) !== 0)) {
      x = Math.imul(lanes[3] ^ 42, FNV_PRIME);
      y = Math.imul(lanes[4] ^ 42, FNV_PRIME);
    }
    lanes[0] = x;
    lanes[1] = y;
    lanes[2] = end;
  }
  return undefined;
}

/** 0–15 for an ASCII hex digit, -1 otherwise. */
function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}
