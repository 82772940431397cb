// Bounds on what a `when:` condition may cost, so no request can stall the event loop through it:
// parse limits for cel-js, no comprehension inside another (their cost multiplies), `split` giving
// at most MAX_SPLIT_PARTS parts (so a comprehension's range stays small), and `matches` run by RE2
// (re2js, linear time) instead of a backtracking JS RegExp, each pattern compiled once.
//
// cel-js has no runtime cost limit, and its own `string.matches` builds `new RegExp` on every call
// and cannot be replaced (overloads may not overlap). So `x.matches(p)` nodes of a parsed condition
// are renamed to MATCHES_FUNCTION before the first evaluation, and the run-time environment
// registers that function over a RegexCache; `split` likewise becomes SPLIT_FUNCTION. The type
// check still sees the CEL names, so a policy that names the replacements itself is refused.

import { RE2JS } from "re2js";
import { isCelNode } from "./cel-ast.js";

/** Parse limits (cel-js `limits`): far above what a policy condition needs, far below a stall. */
export const CEL_LIMITS = {
  maxAstNodes: 1000,
  maxDepth: 32,
  maxListElements: 256,
  maxMapEntries: 64,
  maxCallArguments: 8,
} as const;

export const MATCHES_FUNCTION = "vigil_re2_matches";
export const SPLIT_FUNCTION = "vigil_bounded_split";

/**
 * Most parts `split` may give; more is an evaluation error. Without it, `request.path.split("")`
 * is a 60,000-element range for a comprehension whose body may itself scan the path.
 */
export const MAX_SPLIT_PARTS = 1024;

/** CEL `s.split(separator[, limit])` as cel-js defines it, refusing more than MAX_SPLIT_PARTS parts. */
export function boundedSplit(text: string, separator: string, limit?: bigint): string[] {
  const wanted = limit === undefined ? -1 : Number(limit);
  if (wanted === 0) return [];
  const parts = text.split(separator, MAX_SPLIT_PARTS + 1);
  if (wanted > 0 && wanted <= MAX_SPLIT_PARTS) {
    if (parts.length <= wanted) return parts;
    // The last part keeps the rest of the text, separators included.
    const head = parts.slice(0, wanted - 1);
    const consumed = head.reduce((length, part) => length + part.length + separator.length, 0);
    head.push(text.slice(consumed));
    return head;
  }
  if (parts.length > MAX_SPLIT_PARTS) throw new RangeError(`split: more than ${MAX_SPLIT_PARTS} parts`);
  return parts;
}

/**
 * Longest string `matches` runs on; a longer one is an evaluation error, so the rule denies.
 * RE2 is linear, but at 60 KB even linear costs milliseconds; 8 KiB is the URL limit of common
 * proxies and servers (nginx's header buffers), well past honest service-to-service values.
 */
export const MAX_MATCH_INPUT = 8192;
/** A pattern that is not a literal (from context or a header) is compiled at most this long… */
export const MAX_DYNAMIC_PATTERN = 1024;
/** …and the last this many are kept. */
export const MAX_DYNAMIC_PATTERNS = 128;

/** Comprehension macros (list/map receiver); their bodies run once per element. */
const COMPREHENSIONS = new Set(["all", "exists", "exists_one", "map", "filter"]);

function compileProblem(pattern: string): string | undefined {
  try {
    RE2JS.compile(pattern);
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** RE2 programs for `matches`: literal patterns from the policy, and a few recent dynamic ones. */
export class RegexCache {
  readonly #literal = new Map<string, RE2JS>();
  readonly #dynamic = new Map<string, RE2JS>();

  /** Compiles a pattern written in the policy; returns why RE2 refuses it, or undefined. */
  addLiteral(pattern: string): string | undefined {
    if (this.#literal.has(pattern)) return undefined;
    const problem = compileProblem(pattern);
    if (problem !== undefined) return problem;
    this.#literal.set(pattern, RE2JS.compile(pattern));
    return undefined;
  }

  /** CEL `input.matches(pattern)`: true when the pattern matches any part of the input. Throws on bad input. */
  matches(input: string, pattern: string): boolean {
    if (input.length > MAX_MATCH_INPUT) throw new RangeError(`matches: input longer than ${MAX_MATCH_INPUT} characters`);
    return this.#program(pattern).test(input);
  }

  get dynamicCount(): number {
    return this.#dynamic.size;
  }

  #program(pattern: string): RE2JS {
    const literal = this.#literal.get(pattern);
    if (literal !== undefined) return literal;
    const cached = this.#dynamic.get(pattern);
    if (cached !== undefined) return cached;
    if (pattern.length > MAX_DYNAMIC_PATTERN) throw new RangeError(`matches: pattern longer than ${MAX_DYNAMIC_PATTERN} characters`);
    let program: RE2JS;
    try {
      program = RE2JS.compile(pattern);
    } catch {
      // The pattern may come from a request: say what failed, not what it was.
      throw new SyntaxError("matches: invalid regular expression (RE2 syntax)");
    }
    // Oldest first out: a Map iterates in insertion order.
    if (this.#dynamic.size >= MAX_DYNAMIC_PATTERNS) {
      const oldest = this.#dynamic.keys().next();
      if (oldest.done !== true) this.#dynamic.delete(oldest.value);
    }
    this.#dynamic.set(pattern, program);
    return program;
  }
}

/**
 * Checks a parsed condition against the bounds and prepares it for the RegexCache: literal
 * `matches` patterns are compiled now (an RE2 refusal, such as a backreference or lookaround, is
 * a problem), and `matches` / `split` nodes are renamed to their bounded versions. Returns the problems.
 */
export function applyBounds(root: unknown, regexes: RegexCache): string[] {
  const problems: string[] = [];
  const visit = (value: unknown, comprehensions: number): void => {
    if (Array.isArray(value)) {
      for (const item of value) visit(item, comprehensions);
      return;
    }
    if (!isCelNode(value)) return;
    if (value.op === "rcall" && Array.isArray(value.args)) {
      const args: unknown[] = value.args;
      const [name, , callArgs] = args;
      if (name === MATCHES_FUNCTION || name === SPLIT_FUNCTION) problems.push(`${name} is not a CEL function`);
      if (name === "split" && Array.isArray(callArgs) && (callArgs.length === 1 || callArgs.length === 2)) args[0] = SPLIT_FUNCTION;
      if (name === "matches" && Array.isArray(callArgs) && callArgs.length === 1) {
        const pattern: unknown = callArgs[0];
        if (isCelNode(pattern) && pattern.op === "value" && typeof pattern.args === "string") {
          const problem = regexes.addLiteral(pattern.args);
          if (problem !== undefined) problems.push(`matches: RE2 cannot run ${JSON.stringify(pattern.args)}: ${problem}`);
        }
        args[0] = MATCHES_FUNCTION;
      }
      let inside = comprehensions;
      if (typeof name === "string" && COMPREHENSIONS.has(name) && Array.isArray(callArgs) && callArgs.length >= 2) {
        if (comprehensions > 0) problems.push(`${name}(): a comprehension inside another is not allowed (its cost grows with the product of the list sizes)`);
        inside = comprehensions + 1;
      }
      // The receiver is evaluated once; only the arguments run per element.
      visit(args[1], comprehensions);
      visit(callArgs, inside);
      return;
    }
    visit(value.args, comprehensions);
  };
  visit(root, 0);
  return problems;
}
