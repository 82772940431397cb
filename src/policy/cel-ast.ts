// A node of the AST cel-js parses an expression into ({ op, args }), as the modules that walk it
// (load-time bounds checks, the direct evaluator, the checks in cel.ts) read it.

export interface CelNode {
  op: string;
  args: unknown;
}

export function isCelNode(value: unknown): value is CelNode {
  return typeof value === "object" && value !== null && "op" in value && "args" in value;
}
