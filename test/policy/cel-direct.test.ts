// The direct evaluator must give exactly what cel-js gives (values and errors) for every
// expression it takes over; expressions and inputs are generated.

import { Environment } from "@marcbachmann/cel-js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { directCondition } from "../../src/policy/cel-direct.js";
import { CEL_FIELDS, CEL_READERS, ConditionCompiler, celActivation } from "../../src/policy/cel.js";
import type { CelActivation, Condition } from "../../src/policy/cel.js";
import { policyInput } from "./policy-input.js";

const interpreted = new ConditionCompiler({ direct: false });
const direct = new ConditionCompiler({ direct: true });
const parser = new Environment({ unlistedVariablesAreDyn: true });

const stringAtom = fc.constantFrom(
  "signals.risk", "signals.posture", "signals.credential", "signals.attestation_signer", "request.method",
  "source.spiffe_id", "context.env", "context[\"action\"]", "request.headers[\"x-team\"]",
  "\"low\"", "\"prod\"", "\"\"", "\"GET\"", "\"compliant\"",
);
const boolAtom = fc.constantFrom("signals.fresh", "signals.revoked", "signals.credential_overdue", "signals.attested", "true", "false");

const boolExpr: fc.Arbitrary<string> = fc.letrec<{ expr: string }>((tie) => ({
  expr: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    boolAtom,
    fc.tuple(stringAtom, fc.constantFrom("==", "!="), stringAtom).map(([a, op, b]) => `${a} ${op} ${b}`),
    fc.tuple(boolAtom, fc.constantFrom("==", "!="), boolAtom).map(([a, op, b]) => `${a} ${op} ${b}`),
    fc.tuple(stringAtom, fc.subarray(["none", "low", "prod", "GET", "compliant", "leaked"], { minLength: 1 })).map(([a, list]) => `${a} in ${JSON.stringify(list)}`),
    stringAtom.map((a) => `${a} in signals.anomalies`),
    stringAtom.map((a) => `${a} in context`),
    fc.tuple(stringAtom, fc.constantFrom("startsWith", "endsWith", "contains"), stringAtom).map(([a, m, b]) => `${a}.${m}(${b})`),
    fc.tuple(fc.constantFrom("<", "<=", ">", ">="), fc.constantFrom("60", "12.5", "-1", "0")).map(([op, n]) => `signals.risk_age_seconds ${op} ${n}`),
    tie("expr").map((e) => `!(${e})`),
    fc.tuple(tie("expr"), fc.constantFrom("&&", "||"), tie("expr")).map(([a, op, b]) => `(${a}) ${op} (${b})`),
  ),
})).expr;

const activation: fc.Arbitrary<CelActivation> = fc.record({
  risk: fc.constantFrom("none", "low", "high"),
  posture: fc.constantFrom("compliant", "non_compliant", "unknown"),
  credential: fc.constantFrom("none", "active", "leaked"),
  fresh: fc.boolean(),
  revoked: fc.boolean(),
  overdue: fc.boolean(),
  attested: fc.boolean(),
  age: fc.constantFrom(-1, 0, 12.5, 60, 1e9),
  anomalies: fc.subarray(["low", "prod", "rate_spike"]),
  context: fc.dictionary(fc.constantFrom("env", "action", "low"), fc.constantFrom("prod", "low", "")),
  headers: fc.dictionary(fc.constantFrom("x-team", "accept"), fc.constantFrom("a", "GET")),
  method: fc.constantFrom("GET", "POST"),
}).map((v) => celActivation(policyInput("svc", v.method, "/", {
  caller: "spiffe://example.org/ns/a/sa/low",
  context: v.context,
  request: { headers: v.headers },
  signals: {
    risk: v.risk, posture: v.posture, credential: v.credential, fresh: v.fresh, revoked: v.revoked,
    credential_overdue: v.overdue, attested: v.attested, risk_age_seconds: v.age, anomalies: v.anomalies,
  },
})));

type Answer = { value: boolean } | { error: true };

function answer(condition: Condition, input: CelActivation): Answer {
  try {
    return { value: condition(input) };
  } catch {
    return { error: true };
  }
}

function compiled(compiler: ConditionCompiler, expression: string): Condition {
  const result = compiler.compile(expression);
  if (!result.ok) throw new Error(`${expression}: ${result.error}`);
  return result.condition;
}

describe("direct CEL evaluation", () => {
  it("takes over the generated expressions", () => {
    fc.assert(fc.property(boolExpr, (expression) => {
      expect(directCondition(parser.parse(expression).ast, CEL_FIELDS, CEL_READERS), expression).toBeDefined();
    }), { numRuns: 300 });
  });

  it("agrees with cel-js on values and errors", () => {
    fc.assert(fc.property(boolExpr, fc.array(activation, { minLength: 1, maxLength: 8 }), (expression, inputs) => {
      const reference = compiled(interpreted, expression);
      const fast = compiled(direct, expression);
      for (const input of inputs) expect(answer(fast, input), expression).toEqual(answer(reference, input));
    }), { numRuns: 1500 });
  });

  it.each([
    "now.getHours(\"UTC\") > 9",
    "inCidr(request.source_ip, \"10.0.0.0/8\")",
    "has(context.env)",
    "size(signals.anomalies) > 0",
    "signals.risk_age_seconds == 1.0",
    "signals.risk.matches(\"^l\")",
    "signals.fresh ? true : false",
    "signals.posture_attributes[\"image\"] == \"x\"",
  ])("leaves %s to cel-js unless it is in the subset", (expression) => {
    const reference = compiled(interpreted, expression);
    const fast = compiled(direct, expression);
    const input = celActivation(policyInput("svc", "GET", "/", { signals: { posture_attributes: { image: "x" } } }));
    expect(answer(fast, input)).toEqual(answer(reference, input));
  });

  it("fails closed on inputs that break the PolicyInput contract", () => {
    const fast = compiled(direct, "!signals.revoked");
    const input = celActivation(policyInput("svc", "GET", "/"));
    expect(answer(fast, input)).toEqual({ value: true });
    expect(answer(fast, { ...input, signals: { ...input.signals, revoked: "no" as unknown as boolean } })).toEqual({ error: true });
    const { revoked: _revoked, ...withoutRevoked } = input.signals;
    expect(answer(fast, { ...input, signals: withoutRevoked as CelActivation["signals"] })).toEqual({ error: true });
  });
});

describe("CEL_READERS", () => {
  it("has one reader per declared field, and each reads its own field", () => {
    for (const kind of ["request", "source", "signals"] as const) {
      const names = Object.keys(CEL_FIELDS[kind]).sort();
      expect(Object.keys(CEL_READERS[kind]).sort(), kind).toEqual(names);
      // A view whose every field holds a value of its own.
      const view = Object.fromEntries(names.map((name) => [name, `value of ${name}`]));
      for (const name of names) expect(CEL_READERS[kind][name]?.(view), `${kind}.${name}`).toBe(`value of ${name}`);
    }
  });
});
