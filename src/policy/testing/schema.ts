// The policy test document (apiVersion vigil.dev/v1alpha1, kind PolicyTest): cases that give a
// request as Envoy would send it (the proto3 JSON of a CheckRequest), the caller, the signals in
// force and a time, and say what the answer must be. Strict like the policy schema: a misspelt
// expectation must be an error, never a check that silently passes.

import * as z from "zod";
import { OUTCOMES } from "../../model/index.js";

export const POLICY_TEST_KIND = "PolicyTest";
export const POLICY_TEST_API_VERSION = "vigil.dev/v1alpha1";

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const ONE_LINE = /^[^\p{Cc}]*$/u;

const isoTime = z.string().refine((value) => !Number.isNaN(Date.parse(value)), { error: "expected an ISO 8601 time such as 2026-06-11T10:00:00Z" });
const oneLine = (max: number) => z.string().min(1, { error: "must not be empty" }).max(max).regex(ONE_LINE, { error: "must be one line of text without control characters" });
/** Signals as in a signals file (validated by the signal schema when the case runs). */
const signals = z.array(z.record(z.string(), z.unknown())).max(200);

const expectSchema = z.strictObject({
  outcome: z.enum(OUTCOMES),
  /** "<policy>/<rule>" that decided; "" when nothing matched; "vigil/…" for Vigil's own refusals. */
  rule: z.string().max(300).optional(),
  /** The reason given to the caller, exactly. */
  reason: z.string().max(500).optional(),
  /** Headers of the answer Envoy gets (upstream headers on allow, client headers otherwise); only those listed are compared. */
  headers: z.record(z.string().regex(HEADER_NAME, { error: "header names are lower-case tokens" }), z.string()).optional(),
  /** Controls the deciding rule names (compared as a set). */
  controls: z.array(z.string()).optional(),
  /** What the shadow rules would have made of it; outcome "" = the same as the answer. */
  shadow: z.strictObject({ outcome: z.union([z.enum(OUTCOMES), z.literal("")]), rule: z.string().optional() }).optional(),
});

const caseSchema = z.strictObject({
  name: oneLine(200),
  /** The acceptance scenario(s) this case stands for (shared/scenarios.md), free text. */
  scenario: z.union([z.string(), z.number()]).transform(String).optional(),
  description: z.string().optional(),
  /** The decision time; defaults to spec.now. */
  now: isoTime.optional(),
  /** Shortcut for request.attributes.source.principal: the SPIFFE ID Envoy took from the peer certificate. */
  caller: z.string().min(1).optional(),
  /** The CheckRequest Envoy would send, as JSON (snake_case or camelCase, with or without "attributes"). */
  request: z.record(z.string(), z.unknown()),
  /** Signals in force for this case, added to spec.signals. */
  signals: signals.optional(),
  /** false: the signal bus has been unreachable longer than the freshness bound (signals.fresh is false). */
  signalsFresh: z.boolean().default(true),
  expect: expectSchema,
});

export const policyTestManifestSchema = z.strictObject({
  apiVersion: z.literal(POLICY_TEST_API_VERSION),
  kind: z.literal(POLICY_TEST_KIND),
  metadata: z.strictObject({
    name: z.string().max(253).regex(NAME, { error: "must be lower-case letters, digits, '-' or '.', starting and ending with a letter or digit" }),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
  }),
  spec: z.strictObject({
    /** Default decision time for every case. */
    now: isoTime.optional(),
    /** Signals in force for every case. */
    signals: signals.optional(),
    cases: z.array(caseSchema).min(1, { error: "must contain at least one case" }),
  }).superRefine((spec, ctx) => {
    const first = new Map<string, number>();
    spec.cases.forEach((testCase, index) => {
      const earlier = first.get(testCase.name);
      if (earlier === undefined) first.set(testCase.name, index);
      else ctx.addIssue({ code: "custom", path: ["cases", index, "name"], message: `duplicate case name (also spec.cases[${earlier}])` });
      if (testCase.now === undefined && spec.now === undefined) {
        ctx.addIssue({ code: "custom", path: ["cases", index, "now"], message: "required (or spec.now): a test must not depend on the day it runs" });
      }
    });
  }),
});

export type PolicyTestManifest = z.output<typeof policyTestManifestSchema>;
export type PolicyTestCase = PolicyTestManifest["spec"]["cases"][number];
export type PolicyTestExpectation = PolicyTestCase["expect"];
