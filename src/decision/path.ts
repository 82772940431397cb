// Is a request path in normal form? Rules match paths as written, and the app behind Envoy may
// decode, resolve dot segments or treat "\" and ";" as separators: `/v1/deploy/../admin`,
// `//v1/deploy` or `/v1/hosts/%2F..%2Fx/quarantine` could match a broad allow rule and reach
// something else, or slip past a narrow deny. Envoy normalises honest traffic first
// (normalize_path, merge_slashes, path_with_escaped_slashes_action: REJECT_REQUEST in envoy/), so
// anything still not normal here was not sent through those settings: it is refused, not repaired.
// One pass over the characters, no regex: this runs on every Check.

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
 */
export function pathProblem(path: string, end: number = path.length): string | undefined {
  if (end === 0 || path.charCodeAt(0) !== 47 /* / */) return "path does not start with /";
  let segmentStart = 1;
  let dots = 0;
  let other = false;
  for (let i = 1; i < end; i++) {
    const c = path.charCodeAt(i);
    if (c === 47 /* / */) {
      if (i === segmentStart) return "path has an empty segment (//)";
      if (!other && dots <= 2) return "path has a dot segment (. or ..)";
      segmentStart = i + 1;
      dots = 0;
      other = false;
    } else if (c === 46 /* . */) {
      dots++;
    } else if (c === 37 /* % */) {
      const high = i + 1 < end ? hexValue(path.charCodeAt(i + 1)) : -1;
      const low = i + 2 < end ? hexValue(path.charCodeAt(i + 2)) : -1;
      if (high < 0 || low < 0) return "path has a malformed percent-encoding";
      const decoded = high * 16 + low;
      if (decoded === 47 || decoded === 92) return "path has an encoded slash or backslash (%2F, %5C)";
      if (decoded === 46) return "path has an encoded dot (%2E)";
      if (decoded === 37) return "path has a double percent-encoding (%25)";
      if (decoded === 59) return "path has an encoded semicolon (%3B)";
      if (decoded < 32 || decoded === 127) return "path has an encoded control character";
      other = true;
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
      other = true;
    }
  }
  if (end > segmentStart && !other && dots <= 2) return "path has a dot segment (. or ..)";
  return undefined;
}

/** 0–15 for an ASCII hex digit, -1 otherwise. */
function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}
