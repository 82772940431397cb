// A direct evaluator for the small part of CEL most policy conditions are written in (signal
// fields compared with literals, `in` lists, &&, ||, !). Such an expression is turned into plain
// closures that run several times faster than the general interpreter; anything else returns
// undefined and is left to cel-js. It only ever sees expressions that already passed cel-js's
// type check against the PolicyInput shape, and it keeps CEL's semantics:
//   - a missing map key or a field of the wrong runtime type is an error (so the rule denies);
//   - `&&` / `||` absorb an error when the other side decides (false && error → false).
// test/policy/cel-direct.test.ts checks it against cel-js on generated expressions and inputs.

import { hasPrefix } from "../util/prefix.js";
import type { CelActivation, Condition } from "./cel-activation.js";
import { isCelNode } from "./cel-ast.js";

type Kind = "string" | "bool" | "int" | "double" | "list<string>" | "map<string,string>" | "request" | "source" | "signals";

interface Compiled {
  kind: Kind;
  run: (activation: CelActivation) => unknown;
}

/** Field kinds of the objects CEL sees (mirrors the check schema in cel.ts). */
export type FieldKinds = Readonly<Record<"request" | "source" | "signals", Readonly<Record<string, string>>>>;

/** Reads one field of a view, its name written as a constant (see FieldReaders). */
export type FieldReader = (view: Readonly<Record<string, unknown>>) => unknown;

/**
 * A reader per declared field. `object[field]` with the field name in a variable is a keyed load
 * V8 cannot specialise (megamorphic: about 140 instructions per read, callgrind); a reader whose
 * name is a constant is one load on the views' single shape. A field without one is left to cel-js.
 */
export type FieldReaders = Readonly<Record<"request" | "source" | "signals", Readonly<Record<string, FieldReader>>>>;

function kindOf(type: string): Kind | undefined {
  switch (type) {
    case "string":
    case "bool":
    case "double":
      return type;
    case "list<string>":
      return "list<string>";
    case "map<string, string>":
      return "map<string,string>";
    default:
      return undefined;
  }
}

class DirectError extends Error {
  override readonly name = "DirectError";
}

function expectKind(value: unknown, kind: Kind, what: string): unknown {
  switch (kind) {
    case "string":
      if (typeof value === "string") return value;
      break;
    case "bool":
      if (typeof value === "boolean") return value;
      break;
    case "double":
      if (typeof value === "number") return value;
      break;
    case "int":
      if (typeof value === "bigint") return value;
      break;
    case "list<string>":
      if (Array.isArray(value)) return value;
      break;
    case "map<string,string>":
    case "request":
    case "source":
    case "signals":
      if (typeof value === "object" && value !== null && !Array.isArray(value)) return value;
      break;
  }
  throw new DirectError(`${what} is not a ${kind}`);
}

function mapValue(map: unknown, key: unknown): string {
  const record = map as Record<string, unknown>;
  if (typeof key !== "string" || !Object.hasOwn(record, key)) throw new DirectError(`No such key: ${String(key)}`);
  const value = record[key];
  if (typeof value !== "string") throw new DirectError(`value of ${key} is not a string`);
  return value;
}

const COMPARISONS: Readonly<Record<string, (a: number | bigint, b: number | bigint) => boolean>> = {
  "<": (a, b) => a < b,
  "<=": (a, b) => a <= b,
  ">": (a, b) => a > b,
  ">=": (a, b) => a >= b,
};

const STRING_METHODS: Readonly<Record<string, (receiver: string, argument: string) => boolean>> = {
  startsWith: (receiver, argument) => hasPrefix(receiver, argument),
  endsWith: (receiver, argument) => receiver.endsWith(argument),
  contains: (receiver, argument) => receiver.includes(argument),
};

function compileNode(node: unknown, fields: FieldKinds, readers: FieldReaders): Compiled | undefined {
  if (!isCelNode(node)) return undefined;
  const args = node.args;
  switch (node.op) {
    case "value": {
      if (typeof args === "string") return { kind: "string", run: () => args };
      if (typeof args === "boolean") return { kind: "bool", run: () => args };
      if (typeof args === "bigint") return { kind: "int", run: () => args };
      if (typeof args === "number") return { kind: "double", run: () => args };
      return undefined;
    }
    case "id": {
      // Each read by its constant name (see FieldReaders).
      if (args === "request") return { kind: "request", run: (a) => expectKind(a.request, "request", "request") };
      if (args === "source") return { kind: "source", run: (a) => expectKind(a.source, "source", "source") };
      if (args === "signals") return { kind: "signals", run: (a) => expectKind(a.signals, "signals", "signals") };
      if (args === "context") return { kind: "map<string,string>", run: (a) => expectKind(a.context, "map<string,string>", "context") };
      return undefined;
    }
    case ".": {
      if (!Array.isArray(args)) return undefined;
      const list: unknown[] = args;
      const [target, field] = list;
      const object = compileNode(target, fields, readers);
      if (object === undefined || typeof field !== "string") return undefined;
      if (object.kind === "map<string,string>") {
        return { kind: "string", run: (a) => mapValue(object.run(a), field) };
      }
      if (object.kind !== "request" && object.kind !== "source" && object.kind !== "signals") return undefined;
      const declared = fields[object.kind][field];
      const kind = declared === undefined ? undefined : kindOf(declared);
      if (kind === undefined) return undefined;
      const what = `${object.kind}.${field}`;
      const read = readers[object.kind][field];
      if (read === undefined) return undefined;
      return { kind, run: (a) => expectKind(read(object.run(a) as Record<string, unknown>), kind, what) };
    }
    case "[]": {
      if (!Array.isArray(args)) return undefined;
      const object = compileNode(args[0], fields, readers);
      const key = compileNode(args[1], fields, readers);
      if (object?.kind !== "map<string,string>" || key?.kind !== "string") return undefined;
      return { kind: "string", run: (a) => mapValue(object.run(a), key.run(a)) };
    }
    case "!_": {
      const operand = compileNode(args, fields, readers);
      if (operand?.kind !== "bool") return undefined;
      return { kind: "bool", run: (a) => !(operand.run(a) as boolean) };
    }
    case "-_": {
      const operand = compileNode(args, fields, readers);
      if (operand?.kind === "int") return { kind: "int", run: (a) => -(operand.run(a) as bigint) };
      if (operand?.kind === "double") return { kind: "double", run: (a) => -(operand.run(a) as number) };
      return undefined;
    }
    case "&&":
    case "||": {
      if (!Array.isArray(args)) return undefined;
      const left = compileNode(args[0], fields, readers);
      const right = compileNode(args[1], fields, readers);
      if (left?.kind !== "bool" || right?.kind !== "bool") return undefined;
      // The value that decides on its own: false for &&, true for ||.
      const decisive = node.op === "||";
      return {
        kind: "bool",
        run: (a) => {
          let value: unknown;
          try {
            value = left.run(a);
          } catch (error) {
            if (right.run(a) === decisive) return decisive;
            throw error;
          }
          return value === decisive ? decisive : right.run(a);
        },
      };
    }
    case "==":
    case "!=": {
      if (!Array.isArray(args)) return undefined;
      const left = compileNode(args[0], fields, readers);
      const right = compileNode(args[1], fields, readers);
      if (left === undefined || right === undefined || left.kind !== right.kind) return undefined;
      if (left.kind !== "string" && left.kind !== "bool") return undefined;
      const equal = node.op === "==";
      return { kind: "bool", run: (a) => (left.run(a) === right.run(a)) === equal };
    }
    case "<":
    case "<=":
    case ">":
    case ">=": {
      if (!Array.isArray(args)) return undefined;
      const left = compileNode(args[0], fields, readers);
      const right = compileNode(args[1], fields, readers);
      const compare = COMPARISONS[node.op];
      const numeric = (kind: Kind) => kind === "int" || kind === "double";
      if (compare === undefined || left === undefined || right === undefined || !numeric(left.kind) || !numeric(right.kind)) return undefined;
      return { kind: "bool", run: (a) => compare(left.run(a) as number | bigint, right.run(a) as number | bigint) };
    }
    case "in": {
      if (!Array.isArray(args)) return undefined;
      const element = compileNode(args[0], fields, readers);
      if (element?.kind !== "string") return undefined;
      const container: unknown = args[1];
      if (isCelNode(container) && container.op === "list" && Array.isArray(container.args)) {
        const literals = container.args.map((item: unknown) => (isCelNode(item) && item.op === "value" ? item.args : undefined));
        if (literals.length === 0 || !literals.every((item): item is string => typeof item === "string")) return undefined;
        const members = new Set(literals);
        return { kind: "bool", run: (a) => members.has(element.run(a) as string) };
      }
      const collection = compileNode(container, fields, readers);
      if (collection?.kind === "list<string>") {
        return { kind: "bool", run: (a) => (collection.run(a) as unknown[]).includes(element.run(a)) };
      }
      if (collection?.kind === "map<string,string>") {
        return { kind: "bool", run: (a) => Object.hasOwn(collection.run(a) as object, element.run(a) as string) };
      }
      return undefined;
    }
    case "rcall": {
      if (!Array.isArray(args)) return undefined;
      const list: unknown[] = args;
      const [name, target, callArgs] = list;
      const method = typeof name === "string" ? STRING_METHODS[name] : undefined;
      if (method === undefined || !Array.isArray(callArgs) || callArgs.length !== 1) return undefined;
      const receiver = compileNode(target, fields, readers);
      const argument = compileNode(callArgs[0], fields, readers);
      if (receiver?.kind !== "string" || argument?.kind !== "string") return undefined;
      return { kind: "bool", run: (a) => method(receiver.run(a) as string, argument.run(a) as string) };
    }
    default:
      return undefined;
  }
}

/** A condition evaluated without the interpreter, or undefined when the expression needs it. */
export function directCondition(ast: unknown, fields: FieldKinds, readers: FieldReaders): Condition | undefined {
  const compiled = compileNode(ast, fields, readers);
  if (compiled?.kind !== "bool") return undefined;
  const run = compiled.run;
  return (activation) => run(activation) as boolean;
}
