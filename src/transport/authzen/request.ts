// AuthZEN 1.0 request bodies (Authorization API 1.0, §6 and §7) to validated evaluations. Pure
// functions over parsed JSON: a missing or mistyped required attribute is a 400 naming the path,
// unknown fields are ignored, nesting is bounded before anything else looks at the value.
//
//   single       { subject: {type, id, properties?}, action: {name, properties?},
//                  resource: {type, id, properties?}, context? }
//   evaluations  the same four at the top level as defaults, `evaluations: [ {…}, … ]` where an
//                item's key replaces the default entity whole, and
//                `options.evaluations_semantic`: execute_all (default) | deny_on_first_deny |
//                permit_on_first_permit. An absent or empty `evaluations` is one evaluation.

import { VigilError } from "../../errors/index.js";
import type { Evaluation } from "../../model/index.js";
import { isRecord } from "../../util/guards.js";

export const EVALUATION_SEMANTICS = ["execute_all", "deny_on_first_deny", "permit_on_first_permit"] as const;
export type EvaluationSemantic = (typeof EVALUATION_SEMANTICS)[number];

/** Longest type, id or action name accepted. */
export const MAX_NAME_LENGTH = 1024;

export interface EvaluationsRequest {
  /** undefined: the request had no (or an empty) `evaluations` array and is one evaluation. */
  items: Evaluation[] | undefined;
  /** The single evaluation when items is undefined. */
  single: Evaluation | undefined;
  semantic: EvaluationSemantic;
}

type Json = Record<string, unknown>;

function invalid(message: string): VigilError {
  return new VigilError("invalid_input", message);
}

/** Throws a 400 when `value` nests deeper than `max` (arrays and objects count), without recursion limits of its own. */
export function checkDepth(value: unknown, max: number): void {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop() as [unknown, number];
    if (typeof item !== "object" || item === null) continue;
    if (depth > max) throw invalid(`request body nests deeper than ${max} levels`);
    for (const child of Array.isArray(item) ? item : Object.values(item)) {
      if (typeof child === "object" && child !== null) stack.push([child, depth + 1]);
    }
  }
}

function text(parent: Json, key: string, where: string): string {
  const value = parent[key];
  if (typeof value !== "string" || value === "") throw invalid(`${where}.${key} is required (a non-empty string)`);
  if (value.length > MAX_NAME_LENGTH) throw invalid(`${where}.${key} is longer than ${MAX_NAME_LENGTH} characters`);
  return value;
}

function properties(parent: Json, key: string, where: string): Json {
  const value = parent[key];
  if (value === undefined || value === null) return {};
  if (!isRecord(value)) throw invalid(`${where}.${key} must be an object`);
  return value;
}

function contextOf(parent: Json, where: string): Json {
  const value = parent.context;
  if (value === undefined || value === null) return {};
  if (!isRecord(value)) throw invalid(`${where}context must be an object`);
  return value;
}

type Part = "subject" | "action" | "resource";

function part(source: Json, key: Part, where: string): Json {
  const value = source[key];
  if (value === undefined) throw invalid(`${where}${key} is required`);
  if (!isRecord(value)) throw invalid(`${where}${key} must be an object`);
  return value;
}

/** One evaluation from `source`, taking what it lacks from `defaults`; `where` prefixes paths in errors. */
function evaluationOf(source: Json, defaults: Json, where: string, destination: string): Evaluation {
  const pick = (key: Part): { value: Json; at: string } => {
    if (source[key] !== undefined) return { value: part(source, key, where), at: `${where}${key}` };
    return { value: part(defaults, key, ""), at: key };
  };
  const subject = pick("subject");
  const action = pick("action");
  const resource = pick("resource");
  const contextSource = source.context !== undefined ? source : defaults;
  return {
    subject: {
      type: text(subject.value, "type", subject.at),
      id: text(subject.value, "id", subject.at),
      properties: properties(subject.value, "properties", subject.at),
    },
    action: { name: text(action.value, "name", action.at), properties: properties(action.value, "properties", action.at) },
    resource: {
      type: text(resource.value, "type", resource.at),
      id: text(resource.value, "id", resource.at),
      properties: properties(resource.value, "properties", resource.at),
    },
    context: contextOf(contextSource, source === contextSource ? where : ""),
    destination,
  };
}

/** A single evaluation request body (POST /access/v1/evaluation). */
export function parseEvaluationRequest(body: unknown, destination: string): Evaluation {
  if (!isRecord(body)) throw invalid("the request body must be a JSON object");
  return evaluationOf(body, {}, "", destination);
}

/** An evaluations request body (POST /access/v1/evaluations). */
export function parseEvaluationsRequest(body: unknown, destination: string, maxEvaluations: number): EvaluationsRequest {
  if (!isRecord(body)) throw invalid("the request body must be a JSON object");
  let semantic: EvaluationSemantic = "execute_all";
  const options = body.options;
  if (options !== undefined && options !== null) {
    if (!isRecord(options)) throw invalid("options must be an object");
    const chosen = options.evaluations_semantic;
    if (chosen !== undefined) {
      if (typeof chosen !== "string" || !(EVALUATION_SEMANTICS as readonly string[]).includes(chosen)) {
        throw invalid(`options.evaluations_semantic must be one of ${EVALUATION_SEMANTICS.join(", ")}`);
      }
      semantic = chosen as EvaluationSemantic;
    }
  }
  const list = body.evaluations;
  if (list === undefined || list === null || (Array.isArray(list) && list.length === 0)) {
    return { items: undefined, single: evaluationOf(body, {}, "", destination), semantic };
  }
  if (!Array.isArray(list)) throw invalid("evaluations must be an array");
  if (list.length > maxEvaluations) throw invalid(`evaluations holds more than ${maxEvaluations} items`);
  const items = list.map((item: unknown, index) => {
    if (!isRecord(item)) throw invalid(`evaluations[${index}] must be an object`);
    return evaluationOf(item, body, `evaluations[${index}].`, destination);
  });
  return { items, single: undefined, semantic };
}
