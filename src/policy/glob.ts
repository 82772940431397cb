// Patterns for SPIFFE IDs, paths and destinations, compiled once into one matcher per list:
// exact strings become a Set lookup, "<prefix>/**" a prefix test, anything else a segment-wise
// matcher that runs in time bounded by value length × pattern length (no RegExp, no backtracking).
//
//   "*"  matches within one "/"-separated segment: a whole segment "*" needs at least one
//        character, "v*" inside a segment matches any (possibly empty) rest of that segment.
//   "**" as the last segment matches the prefix itself and everything below it:
//        "/v1/**" matches "/v1", "/v1/" and "/v1/a/b"; "spiffe://example.org/ns/ci/**" every
//        identity in namespace ci. A pattern that is just "*" or "**" matches any non-empty value.

import { hasPrefix } from "../util/prefix.js";

/** "name": destinations and MCP tool names, where only "*" is special. */
export type PatternKind = "source" | "path" | "name";

export type StringMatcher = (value: string) => boolean;

/** Why a pattern is unusable, or undefined when it is fine. */
export function globProblem(pattern: string, kind: PatternKind): string | undefined {
  if (/\s/.test(pattern)) return "must not contain whitespace";
  if (pattern === "*" || pattern === "**") return undefined;
  if (kind === "path") {
    if (!pattern.startsWith("/")) return "must start with \"/\" (or be \"*\" / \"**\")";
    if (pattern.includes("?")) return "paths are matched without the query string; remove \"?…\"";
  }
  if (kind === "source" && !pattern.startsWith("spiffe://")) {
    return "expected a SPIFFE ID pattern such as \"spiffe://example.org/ns/ci/sa/deployer\" (or \"*\" / \"**\")";
  }
  const segments = pattern.split("/");
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] ?? "";
    if (segment === "**") {
      if (i !== segments.length - 1) return "\"**\" is only allowed as the last segment (\"/v1/**\")";
    } else if (segment.includes("**")) {
      return "\"**\" must be a whole segment; use \"*\" within a segment";
    }
  }
  return undefined;
}

// Matching is done by hand rather than by a RegExp: "*" compiled to "[^/]*" backtracks, and
// "/files/*.*.*" against one long segment took seconds. Here a value is cut at "/" once per
// pattern segment and each segment is matched by greedy search for the pieces between stars,
// which is exact for "*"-only globs: O(value length × pattern length) at worst, never more.

/**
 * Whether value[start, end), one "/"-free segment of a value, matches one pattern segment, split
 * at "*". Tested in place: a Check tests many rules' patterns, and a slice per segment per rule
 * was most of what matching cost.
 */
type SegmentTest = (value: string, start: number, end: number) => boolean;

function segmentTest(segment: string): SegmentTest {
  // A whole segment "*" needs at least one character; "v*" may leave the rest empty.
  if (segment === "*") return (_value, start, end) => end > start;
  const pieces = segment.split("*");
  if (pieces.length === 1) return (value, start, end) => end - start === segment.length && value.startsWith(segment, start);
  const first = pieces[0] ?? "";
  const last = pieces[pieces.length - 1] ?? "";
  const middle = pieces.slice(1, -1).filter((piece) => piece !== "");
  const fixedLength = first.length + last.length;
  return (value, start, end) => {
    if (end - start < fixedLength || !value.startsWith(first, start) || !value.endsWith(last, end)) return false;
    // Leftmost placement of each middle piece leaves the most room for the ones after it.
    let position = start + first.length;
    const limit = end - last.length;
    for (const piece of middle) {
      const found = value.indexOf(piece, position);
      if (found === -1 || found + piece.length > limit) return false;
      position = found + piece.length;
    }
    return true;
  };
}

/** One pattern with "*" in it: its "/"-separated segments, and whether it ends in "/**". */
function globTest(pattern: string): StringMatcher {
  const segments = pattern.split("/");
  const rest = segments[segments.length - 1] === "**";
  const patternSegments = rest ? segments.slice(0, -1) : segments;
  // The literal segments before the first "*" are one prefix test, with the "/" that must follow
  // them (a "*" segment always comes after): most values fail it, at the cost of one comparison.
  let literal = 0;
  while (literal < patternSegments.length && !(patternSegments[literal] ?? "").includes("*")) literal++;
  const prefix = literal === 0 ? "" : `${patternSegments.slice(0, literal).join("/")}/`;
  const tests = patternSegments.slice(literal).map(segmentTest);
  const count = tests.length;
  return (value) => {
    if (!hasPrefix(value, prefix)) return false;
    let start = prefix.length;
    for (let index = 0; index < count; index++) {
      const slash = value.indexOf("/", start);
      const lastSegment = index === count - 1;
      // Segments of the value beyond the pattern's are only allowed under a trailing "/**".
      if (slash === -1 ? !lastSegment : lastSegment && !rest) return false;
      const end = slash === -1 ? value.length : slash;
      const test = tests[index];
      if (test === undefined || !test(value, start, end)) return false;
      start = end + 1;
    }
    return true;
  };
}

/** Compiles a list of patterns (already validated by globProblem) into one matcher. */
export function compileGlobs(patterns: readonly string[]): StringMatcher {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  const globs: StringMatcher[] = [];
  let any = false;
  for (const pattern of patterns) {
    if (pattern === "*" || pattern === "**") {
      any = true;
    } else if (!pattern.includes("*")) {
      exact.add(pattern);
    } else if (pattern.endsWith("/**") && !pattern.slice(0, -3).includes("*")) {
      prefixes.push(pattern.slice(0, -3));
    } else {
      globs.push(globTest(pattern));
    }
  }
  if (any) return (value) => value !== "";
  // The common lists (one prefix, one glob, exact names) get a matcher of their own: a Check tests
  // several rules' lists, each touched seldom enough to be out of cache, and every object a
  // matcher reaches (a Set, an array of pairs) is one more memory load (issue #9).
  if (globs.length === 0 && prefixes.length === 0) {
    if (exact.size === 1) {
      const only = [...exact][0];
      return (value) => value === only;
    }
    return (value) => exact.has(value);
  }
  if (exact.size === 0 && globs.length === 0 && prefixes.length === 1) {
    const prefix = prefixes[0] ?? "";
    const below = `${prefix}/`;
    return (value) => value !== "" && (value === prefix || hasPrefix(value, below));
  }
  if (exact.size === 0 && prefixes.length === 0 && globs.length === 1) {
    const glob = globs[0];
    return glob === undefined ? () => false : (value) => value !== "" && glob(value);
  }
  const below = prefixes.map((prefix) => `${prefix}/`);
  return (value) => {
    if (value === "") return false;
    if (exact.size > 0 && exact.has(value)) return true;
    for (let i = 0; i < prefixes.length; i++) {
      if (value === prefixes[i] || hasPrefix(value, below[i] ?? "")) return true;
    }
    for (const glob of globs) {
      if (glob(value)) return true;
    }
    return false;
  };
}

/** True when a pattern list contains something other than plain strings. */
export function hasWildcard(patterns: readonly string[]): boolean {
  return patterns.some((pattern) => pattern.includes("*"));
}

// A path that is not in normal form (dot segments, doubled or encoded slashes, encoded dots,
// backslashes) never matches a path pattern: the upstream may resolve it to a path a rule did not
// mean. Envoy should normalise paths (normalize_path, merge_slashes, REJECT on escaped slashes).
const NOT_NORMAL = /\/\/|\/\.\.?(?:\/|$)|%2e|%2f|%5c|\\/i;

export function isNormalPath(path: string): boolean {
  return path.startsWith("/") && !NOT_NORMAL.test(path);
}
