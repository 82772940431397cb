// `when:` conditions: CEL over request, source, context, signals and now. Each expression is
// parsed once and type-checked against the exact PolicyInput shape (so `signals.rsk` or
// `signals.risk == 1` fail at load time, not at request time), then evaluated in an environment
// that takes the plain objects as they are, without converting them per call.
//
// The CEL surface:
//   request   RequestView fields (request.method, request.path_only, request.headers["x"], …)
//   source    SourceView fields (source.spiffe_id, source.trust_domain, …)
//   context   map<string, string>: the route's context_extensions
//   signals   SignalsView fields; numbers such as risk_age_seconds are doubles
//   subject   EntityView: type, id, properties (the AuthZEN request's), known, roles and
//             attributes (the entities file's, --entities); on the Envoy path the caller's workload
//   resource  EntityView, the same; on the Envoy path type "route" and the path as id
//   action    name and properties: the AuthZEN action, or the HTTP / JSON-RPC method on the Envoy path
//   request.mcp   map: method, tool, arguments (map), uri, prompt of an MCP call
//   request.properties   map: an AuthZEN request's context ({} on the Envoy path)
//   now       google.protobuf.Timestamp of the decision (PolicyInput.now): now.getHours("UTC"),
//             now.getDayOfWeek("Europe/Berlin") (0 = Sunday), now > timestamp("2026-01-01T00:00:00Z")
//   inCidr(ip, cidr) / inCidr(ip, [cidr, …])   bool; false for an empty or malformed ip
//   s.matches(re)   RE2 syntax (no backreferences or lookaround), linear time; an input longer
//                   than MAX_MATCH_INPUT is an evaluation error (see cel-bounds.ts for all bounds)
//
// A missing map key (context.env on a route without env, request.headers["x"] when absent) is an
// evaluation error, which the evaluator treats as deny: guard with `"env" in context` or
// `has(context.env)`, or use the rule's `context:` matcher instead.

import { Environment } from "@marcbachmann/cel-js";
import { CEL_LIMITS, MATCHES_FUNCTION, MAX_MATCH_INPUT, MAX_SPLIT_PARTS, RegexCache, SPLIT_FUNCTION, applyBounds, boundedSplit } from "./cel-bounds.js";
import type { Condition } from "./cel-activation.js";
import { isCelNode } from "./cel-ast.js";
import { headerReferences, readsEntities, type HeaderReferences } from "./cel-refs.js";
import { directCondition } from "./cel-direct.js";
import type { FieldKinds, FieldReader, FieldReaders } from "./cel-direct.js";
import { CidrCache, cidrProblem } from "./cidr.js";
import type { ActionView, EntityView, RequestView, SignalsView, SourceView } from "./types.js";

export { celActivation, type CelActivation, type Condition } from "./cel-activation.js";

const REQUEST_FIELDS: Record<keyof RequestView, string> = {
  method: "string",
  path: "string",
  path_only: "string",
  host: "string",
  scheme: "string",
  headers: "map<string, string>",
  grpc_service: "string",
  grpc_method: "string",
  mcp_method: "string",
  mcp_tool: "string",
  mcp: "map<string, dyn>",
  properties: "map<string, dyn>",
  source_ip: "string",
  destination: "string",
};

const SOURCE_FIELDS: Record<keyof SourceView, string> = {
  spiffe_id: "string",
  trust_domain: "string",
  path: "string",
  identity_source: "string",
  credential_fingerprint: "string",
  credential_scheme: "string",
  credential_fingerprints: "list<string>",
  problems: "list<string>",
};

const SIGNALS_FIELDS: Record<keyof SignalsView, string> = {
  fresh: "bool",
  risk: "string",
  risk_reason: "string",
  risk_age_seconds: "double",
  posture: "string",
  posture_attributes: "map<string, string>",
  credential: "string",
  credential_states: "list<string>",
  credential_overdue: "bool",
  credential_owner: "string",
  credential_findings: "list<string>",
  revoked: "bool",
  anomalies: "list<string>",
  attested: "bool",
  attestation_signer: "string",
};

const ENTITY_FIELDS: Record<keyof EntityView, string> = {
  type: "string",
  id: "string",
  properties: "map<string, dyn>",
  known: "bool",
  roles: "list<string>",
  attributes: "map<string, dyn>",
};

const ACTION_FIELDS: Record<keyof ActionView, string> = {
  name: "string",
  properties: "map<string, dyn>",
};

export const CEL_FIELDS: FieldKinds = { request: REQUEST_FIELDS, source: SOURCE_FIELDS, signals: SIGNALS_FIELDS };

// One reader per field, each naming its field as a constant (cel-direct.ts, FieldReaders); the
// records' key types make them complete, test/policy/cel-direct.test.ts checks each reads its own.
const REQUEST_READERS: Record<keyof RequestView, FieldReader> = {
  method: (v) => v.method, path: (v) => v.path, path_only: (v) => v.path_only, host: (v) => v.host, scheme: (v) => v.scheme,
  headers: (v) => v.headers, grpc_service: (v) => v.grpc_service, grpc_method: (v) => v.grpc_method, mcp_method: (v) => v.mcp_method,
  mcp_tool: (v) => v.mcp_tool, mcp: (v) => v.mcp, properties: (v) => v.properties, source_ip: (v) => v.source_ip,
  destination: (v) => v.destination,
};

const SOURCE_READERS: Record<keyof SourceView, FieldReader> = {
  spiffe_id: (v) => v.spiffe_id, trust_domain: (v) => v.trust_domain, path: (v) => v.path, identity_source: (v) => v.identity_source,
  credential_fingerprint: (v) => v.credential_fingerprint, credential_scheme: (v) => v.credential_scheme,
  credential_fingerprints: (v) => v.credential_fingerprints, problems: (v) => v.problems,
};

const SIGNALS_READERS: Record<keyof SignalsView, FieldReader> = {
  fresh: (v) => v.fresh, risk: (v) => v.risk, risk_reason: (v) => v.risk_reason, risk_age_seconds: (v) => v.risk_age_seconds,
  posture: (v) => v.posture, posture_attributes: (v) => v.posture_attributes, credential: (v) => v.credential,
  credential_states: (v) => v.credential_states, credential_overdue: (v) => v.credential_overdue, credential_owner: (v) => v.credential_owner,
  credential_findings: (v) => v.credential_findings, revoked: (v) => v.revoked, anomalies: (v) => v.anomalies, attested: (v) => v.attested,
  attestation_signer: (v) => v.attestation_signer,
};

export const CEL_READERS: FieldReaders = { request: REQUEST_READERS, source: SOURCE_READERS, signals: SIGNALS_READERS };

const TIMESTAMP = "google.protobuf.Timestamp";

/** A compiled condition, with the request headers it can read (cel-refs.ts). */
export type ConditionCompileResult =
  | { ok: true; condition: Condition; headers: HeaderReferences; /** Whether it can read subject, action or resource. */ entities: boolean }
  | { ok: false; error: string };

function registerFunctions(env: Environment, cidrs: CidrCache): Environment {
  return env
    .registerFunction("inCidr(string, string): bool", (ip: string, range: string) => cidrs.contains(ip, range), {
      description: "Whether the IP address is inside the CIDR range (false for an empty or malformed address)",
    })
    .registerFunction("inCidr(string, list<string>): bool", (ip: string, ranges: string[]) => ranges.some((range) => cidrs.contains(ip, range)), {
      description: "Whether the IP address is inside any of the CIDR ranges",
    });
}

/** Literal ranges given to inCidr are checked at load time rather than failing every request. */
function literalCidrProblems(root: unknown): string[] {
  const problems: string[] = [];
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) {
      for (const item of value) visit(item);
      return;
    }
    if (!isCelNode(value)) return;
    if (value.op === "call" && Array.isArray(value.args) && value.args[0] === "inCidr") {
      const rangeArg: unknown = Array.isArray(value.args[1]) ? value.args[1][1] : undefined;
      const literals = isCelNode(rangeArg) && rangeArg.op === "list" && Array.isArray(rangeArg.args) ? rangeArg.args : [rangeArg];
      for (const literal of literals) {
        if (isCelNode(literal) && literal.op === "value" && typeof literal.args === "string" && cidrProblem(literal.args) !== undefined) {
          problems.push(`inCidr: invalid CIDR "${literal.args}"`);
        }
      }
    }
    visit(value.args);
  };
  visit(root);
  return problems;
}

export interface ConditionCompilerOptions {
  /** Evaluate simple expressions without the interpreter (default true; off to compare both). */
  direct?: boolean;
}

/** One per compiled policy: the two environments, the inCidr range cache, compiled conditions. */
export class ConditionCompiler {
  readonly #check: Environment;
  readonly #run: Environment;
  readonly #direct: boolean;
  readonly #regexes = new RegexCache();
  /** Policies repeat conditions a lot; each distinct expression is compiled once. */
  readonly #compiled = new Map<string, ConditionCompileResult>();

  constructor(options: ConditionCompilerOptions = {}) {
    this.#direct = options.direct ?? true;
    const cidrs = new CidrCache();
    this.#check = registerFunctions(new Environment({ limits: CEL_LIMITS }), cidrs)
      .registerVariable({ name: "request", schema: REQUEST_FIELDS })
      .registerVariable({ name: "source", schema: SOURCE_FIELDS })
      .registerVariable({ name: "signals", schema: SIGNALS_FIELDS })
      .registerVariable({ name: "subject", schema: ENTITY_FIELDS })
      .registerVariable({ name: "resource", schema: ENTITY_FIELDS })
      .registerVariable({ name: "action", schema: ACTION_FIELDS })
      .registerVariable("context", "map<string, string>")
      .registerVariable("now", TIMESTAMP);
    // Evaluation takes the objects as dyn: the types were proven by the check above, and typed
    // schema variables would copy every object into a Map on each call.
    const regexes = this.#regexes;
    this.#run = registerFunctions(new Environment({ limits: CEL_LIMITS }), cidrs)
      .registerFunction(`string.${MATCHES_FUNCTION}(string): bool`, (input: string, pattern: string) => regexes.matches(input, pattern), {
        description: `matches, run by RE2 on inputs up to ${MAX_MATCH_INPUT} characters`,
      })
      .registerFunction(`string.${SPLIT_FUNCTION}(string): list<string>`, (text: string, separator: string) => boundedSplit(text, separator), {
        description: `split, into at most ${MAX_SPLIT_PARTS} parts`,
      })
      .registerFunction(`string.${SPLIT_FUNCTION}(string, int): list<string>`, (text: string, separator: string, limit: bigint) => boundedSplit(text, separator, limit), {
        description: `split with a limit, into at most ${MAX_SPLIT_PARTS} parts`,
      })
      .registerVariable("request", "dyn")
      .registerVariable("source", "dyn")
      .registerVariable("signals", "dyn")
      .registerVariable("subject", "dyn")
      .registerVariable("resource", "dyn")
      .registerVariable("action", "dyn")
      .registerVariable("context", "dyn")
      .registerVariable("now", TIMESTAMP);
  }

  compile(expression: string): ConditionCompileResult {
    let result = this.#compiled.get(expression);
    if (result === undefined) {
      result = this.#compile(expression);
      this.#compiled.set(expression, result);
    }
    return result;
  }

  #compile(expression: string): ConditionCompileResult {
    let parsed: ReturnType<Environment["parse"]>;
    try {
      parsed = this.#run.parse(expression);
    } catch (error) {
      return { ok: false, error: error instanceof Error ? error.message : String(error) };
    }
    const checked = this.#check.check(expression);
    if (!checked.valid) {
      return { ok: false, error: checked.error?.message ?? "type error" };
    }
    if (checked.type !== "bool" && checked.type !== "dyn") {
      return { ok: false, error: `must be a boolean expression, but it gives ${checked.type ?? "an unknown type"}` };
    }
    // Before the first evaluation: applyBounds also points `matches` at the RE2 cache.
    const problems = [...literalCidrProblems(parsed.ast), ...applyBounds(parsed.ast, this.#regexes)];
    if (problems.length > 0) return { ok: false, error: problems.join("; ") };
    const headers = headerReferences(parsed.ast);
    const entities = readsEntities(parsed.ast);
    const direct = this.#direct ? directCondition(parsed.ast, CEL_FIELDS, CEL_READERS) : undefined;
    if (direct !== undefined) return { ok: true, condition: direct, headers, entities };
    const condition: Condition = (activation) => {
      const value: unknown = parsed(activation);
      if (typeof value !== "boolean") throw new TypeError(`condition gave ${typeof value}, not bool`);
      return value;
    };
    return { ok: true, condition, headers, entities };
  }
}
