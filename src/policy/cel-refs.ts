// Which request headers a condition can read, found in its AST at load time, so the decoder can
// leave every other header value as bytes (issue #9: the decoder materialises only what rules and
// identity read), and whether it can read the entities at all (readsEntities). Over-inclusion is
// harmless (a header decoded for nothing); under-inclusion would make a rule judge without a
// header it reads, so anything this walk cannot pin down to constant names — a computed key, the
// map passed whole (size(), a macro, a comparison, a list literal), `request` used as a value —
// makes the condition read "all" headers.

import { isCelNode, type CelNode } from "./cel-ast.js";

/** The request headers a condition reads: `all`, or exactly the listed names. */
export interface HeaderReferences {
  readonly all: boolean;
  readonly names: readonly string[];
}

/** A literal string node ({op: "value", args: "…"}). */
function literalString(value: unknown): string | undefined {
  return isCelNode(value) && value.op === "value" && typeof value.args === "string" ? value.args : undefined;
}

/** `request`, the root variable (a comprehension variable of that name counts too: over-inclusion). */
function isRequest(value: unknown): boolean {
  return isCelNode(value) && value.op === "id" && value.args === "request";
}

/** `request.headers` or `request["headers"]`. */
function isHeadersMap(value: unknown): boolean {
  if (!isCelNode(value) || !Array.isArray(value.args)) return false;
  const [target, key] = value.args as unknown[];
  if (!isRequest(target)) return false;
  if (value.op === ".") return key === "headers";
  if (value.op === "[]") return literalString(key) === "headers";
  return false;
}

/** The header names a parsed condition reads (see the module comment). */
export function headerReferences(root: unknown): HeaderReferences {
  const names = new Set<string>();
  // An object, not a let: the walk's closure sets it.
  const found = { all: false };
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) {
      for (const item of value) visit(item);
      return;
    }
    if (!isCelNode(value)) return;
    const node: CelNode = value;
    const args: unknown[] | undefined = Array.isArray(node.args) ? node.args as unknown[] : undefined;
    if (args !== undefined) {
      const [first, second] = args;
      // request.headers.name, request.headers["name"], "name" in request.headers
      if (node.op === "." && isHeadersMap(first) && typeof second === "string") {
        names.add(second);
        return;
      }
      // The key of request.headers[key] or `key in request.headers`: one name, or every header.
      const keyed = node.op === "[]" && isHeadersMap(first) ? second : node.op === "in" && isHeadersMap(second) ? first : undefined;
      if (keyed !== undefined) {
        const key = literalString(keyed);
        if (key === undefined) found.all = true;
        else names.add(key);
        visit(keyed);
        return;
      }
      // request.method, request["method"]: any field but headers, read by name.
      if (node.op === "." && isRequest(first) && typeof second === "string" && second !== "headers") return;
      if (node.op === "[]" && isRequest(first)) {
        const key = literalString(second);
        if (key === undefined || key === "headers") found.all = true;
        visit(second);
        return;
      }
    }
    // Reached here, `request` or its header map is used some other way: as a whole.
    if (isRequest(node) || isHeadersMap(node)) {
      found.all = true;
      return;
    }
    visit(node.args);
  };
  visit(root);
  return { all: found.all, names: found.all ? [] : [...names] };
}

/** The variables that hold the entities of a decision (subject, action, resource). */
const ENTITY_VARIABLES: ReadonlySet<string> = new Set(["subject", "action", "resource"]);

/**
 * Whether a parsed condition can read `subject`, `action` or `resource`: CEL reaches a variable
 * only through an identifier node, so any such node, wherever it is (a comprehension variable of
 * that name too: over-inclusion is harmless), counts. When no condition can, the pipeline need not
 * build the entity views (issue #9).
 */
export function readsEntities(root: unknown): boolean {
  const visit = (value: unknown): boolean => {
    if (Array.isArray(value)) return value.some(visit);
    if (!isCelNode(value)) return false;
    if (value.op === "id" && typeof value.args === "string" && ENTITY_VARIABLES.has(value.args)) return true;
    return visit(value.args);
  };
  return visit(root);
}
