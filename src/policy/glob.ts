// Patterns for SPIFFE IDs, paths and destinations, compiled once into one matcher per list:
// exact strings become a Set lookup, "<prefix>/**" a prefix test, anything else one RegExp.
//
//   "*"  matches within one "/"-separated segment: a whole segment "*" needs at least one
//        character, "v*" inside a segment matches any (possibly empty) rest of that segment.
//   "**" as the last segment matches the prefix itself and everything below it:
//        "/v1/**" matches "/v1", "/v1/" and "/v1/a/b"; "spiffe://example.org/ns/ci/**" every
//        identity in namespace ci. A pattern that is just "*" or "**" matches any non-empty value.

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

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function segmentSource(segment: string): string {
  if (segment === "*") return "[^/]+";
  return segment.split("*").map(escapeRegExp).join("[^/]*");
}

/** Compiles a list of patterns (already validated by globProblem) into one matcher. */
export function compileGlobs(patterns: readonly string[]): StringMatcher {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  const sources: string[] = [];
  let any = false;
  for (const pattern of patterns) {
    if (pattern === "*" || pattern === "**") {
      any = true;
    } else if (!pattern.includes("*")) {
      exact.add(pattern);
    } else if (pattern.endsWith("/**") && !pattern.slice(0, -3).includes("*")) {
      prefixes.push(pattern.slice(0, -3));
    } else {
      const segments = pattern.split("/");
      const rest = segments[segments.length - 1] === "**";
      const fixed = rest ? segments.slice(0, -1) : segments;
      sources.push(fixed.map(segmentSource).join("/") + (rest ? "(?:/.*)?" : ""));
    }
  }
  if (any) return (value) => value !== "";
  const regex = sources.length === 0 ? undefined : new RegExp(`^(?:${sources.join("|")})$`, "s");
  const under = prefixes.map((prefix): [string, string] => [prefix, prefix + "/"]);
  if (regex === undefined && prefixes.length === 0) {
    if (exact.size === 1) {
      const only = [...exact][0];
      return (value) => value === only;
    }
    return (value) => exact.has(value);
  }
  return (value) => {
    if (value === "") return false;
    if (exact.has(value)) return true;
    for (const [prefix, below] of under) {
      if (value === prefix || value.startsWith(below)) return true;
    }
    return regex !== undefined && regex.test(value);
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
