// The policy document format (apiVersion vigil.dev/v1alpha1, kind Policy) as a strict zod schema:
// unknown fields are errors, and cross-field rules (step_up needs stepUp, …) are checked here so
// the compiler only ever sees documents that make sense.

import * as z from "zod";
import { OUTCOMES } from "../model/index.js";
import { cidrProblem } from "./cidr.js";
import { globProblem } from "./glob.js";
import { controlProblem } from "./controls.js";
import { timezoneProblem, WEEKDAYS } from "./change-window.js";

export { WEEKDAYS, type Weekday } from "./change-window.js";

export { OUTCOMES };
export const POLICY_API_VERSION = "vigil.dev/v1alpha1";
export const POLICY_KIND = "Policy";

export const REVOCATION_TARGETS = ["credential", "identity"] as const;

export type RevocationTarget = (typeof REVOCATION_TARGETS)[number];

/** Policy and rule names: lower-case DNS-label style, so "<policy>/<rule>" is unambiguous. */
const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const CLOCK = /^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$/;
const HTTP_METHOD = /^[A-Za-z]+$/;

function refined<T extends z.ZodType<string>>(schema: T, problem: (value: string) => string | undefined): T {
  return schema.superRefine((value, ctx) => {
    const message = problem(value);
    if (message !== undefined) ctx.addIssue({ code: "custom", message });
  });
}

const name = z.string().max(63).regex(NAME, { error: "must be lower-case letters, digits, '-' or '.', starting and ending with a letter or digit" });
const nonEmptyString = z.string().min(1, { error: "must not be empty" });

const sourcePattern = refined(nonEmptyString, (value) => globProblem(value, "source"));
const pathPattern = refined(nonEmptyString, (value) => globProblem(value, "path"));
const namePattern = refined(nonEmptyString, (value) => globProblem(value, "name"));
const cidr = refined(nonEmptyString, cidrProblem);

const changeWindowSchema = z.strictObject({
  /** IANA time zone, e.g. "UTC", "Europe/Berlin". */
  timezone: refined(z.string(), timezoneProblem).default("UTC"),
  days: z.array(z.enum(WEEKDAYS)).min(1, { error: "must name at least one day" }),
  start: z.string().regex(CLOCK, { error: "expected a time of day as HH:MM (00:00–23:59)" }),
  end: z.string().regex(CLOCK, { error: "expected a time of day as HH:MM (00:00–24:00)" }),
}).superRefine((window, ctx) => {
  if (window.start === window.end) {
    ctx.addIssue({ code: "custom", path: ["end"], message: "must differ from start" });
  }
  const seen = new Set<string>();
  window.days.forEach((day, index) => {
    if (seen.has(day)) ctx.addIssue({ code: "custom", path: ["days", index], message: `"${day}" is listed twice` });
    seen.add(day);
  });
});

const stepUpSchema = z.strictObject({
  /** Who may approve: SPIFFE IDs of approver workloads, or names/groups the approvals service knows. */
  approvers: z.array(nonEmptyString).min(1, { error: "must name at least one approver" }),
  grantTtlSeconds: z.int().positive().max(86_400).default(900),
  grantUses: z.int().positive().max(1_000).default(1),
});

const ruleSchema = z.strictObject({
  name,
  description: z.string().optional(),
  /** Whether the action this rule matches is privileged; defaults to spec.privileged. */
  privileged: z.boolean().optional(),
  /** "privileged": the rule only applies when another matching rule marks the request privileged. */
  appliesTo: z.enum(["all", "privileged"]).default("all"),
  sources: z.array(sourcePattern).min(1).optional(),
  sourceCidrs: z.array(cidr).min(1).optional(),
  methods: z.array(z.string().regex(HTTP_METHOD, { error: "expected an HTTP method such as GET" }).transform((m) => m.toUpperCase())).min(1).optional(),
  paths: z.array(pathPattern).min(1).optional(),
  grpc: z.strictObject({
    service: nonEmptyString,
    methods: z.array(nonEmptyString).min(1).optional(),
  }).optional(),
  mcpTools: z.array(namePattern).min(1).optional(),
  context: z.record(nonEmptyString, z.union([z.string(), z.array(z.string()).min(1)])).optional(),
  when: nonEmptyString.max(4000).optional(),
  changeWindow: changeWindowSchema.optional(),
  outcome: z.enum(OUTCOMES),
  reason: z.string().max(500).regex(/^[^\p{Cc}]*$/u, { error: "must be one line of text without control characters" }).optional(),
  retryAfterSeconds: z.int().positive().max(86_400 * 7).optional(),
  stepUp: stepUpSchema.optional(),
  revoke: z.array(z.enum(REVOCATION_TARGETS)).min(1).optional(),
  /** Rollout: evaluated on every request, its would-be result logged and counted, never enforced. */
  shadow: z.boolean().optional(),
  /** Controls this rule enforces (src/policy/controls.ts): carried by its decisions, summarised by `vigil evidence`. */
  controls: z.array(refined(nonEmptyString, controlProblem)).min(1).max(16).optional(),
}).superRefine((rule, ctx) => {
  if (rule.outcome === "delay" && rule.retryAfterSeconds === undefined) {
    ctx.addIssue({ code: "custom", path: ["retryAfterSeconds"], message: "required when outcome is delay" });
  }
  if (rule.outcome !== "delay" && rule.retryAfterSeconds !== undefined) {
    ctx.addIssue({ code: "custom", path: ["retryAfterSeconds"], message: "only allowed when outcome is delay" });
  }
  if (rule.outcome === "step_up" && rule.stepUp === undefined) {
    ctx.addIssue({ code: "custom", path: ["stepUp"], message: "required when outcome is step_up (approvers, grantTtlSeconds, grantUses)" });
  }
  if (rule.outcome !== "step_up" && rule.stepUp !== undefined) {
    ctx.addIssue({ code: "custom", path: ["stepUp"], message: "only allowed when outcome is step_up" });
  }
  if (rule.outcome === "revoke" && rule.revoke === undefined) {
    ctx.addIssue({ code: "custom", path: ["revoke"], message: "required when outcome is revoke: say what to revoke (credential | identity)" });
  }
  if (rule.changeWindow !== undefined && rule.outcome !== "allow" && rule.outcome !== "step_up") {
    ctx.addIssue({ code: "custom", path: ["changeWindow"], message: "only allowed when outcome is allow or step_up (outside the window the outcome becomes delay)" });
  }
  if (rule.controls !== undefined && new Set(rule.controls).size !== rule.controls.length) {
    ctx.addIssue({ code: "custom", path: ["controls"], message: "lists the same control twice" });
  }
  if (rule.revoke !== undefined && new Set(rule.revoke).size !== rule.revoke.length) {
    ctx.addIssue({ code: "custom", path: ["revoke"], message: "lists the same target twice" });
  }
});

const specSchema = z.strictObject({
  /** request.destination values: the sidecar's own workload (never the caller's Host); "*" = all. */
  destinations: z.array(namePattern).min(1, { error: "must name at least one destination (\"*\" for all)" }),
  /** Default for the rules' privileged flag. */
  privileged: z.boolean().default(false),
  /** Rollout of a whole policy: every rule is shadow unless it says `shadow: false`. */
  shadow: z.boolean().default(false),
  rules: z.array(ruleSchema).min(1, { error: "must contain at least one rule" }),
}).superRefine((spec, ctx) => {
  const first = new Map<string, number>();
  spec.rules.forEach((rule, index) => {
    const earlier = first.get(rule.name);
    if (earlier === undefined) first.set(rule.name, index);
    else ctx.addIssue({ code: "custom", path: ["rules", index, "name"], message: `duplicate rule name "${rule.name}" (also spec.rules[${earlier}])` });
  });
});

export const policyManifestSchema = z.strictObject({
  apiVersion: z.literal(POLICY_API_VERSION),
  kind: z.literal(POLICY_KIND),
  metadata: z.strictObject({
    name: name.max(253),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
  }),
  spec: specSchema,
});

/** A validated Policy document, with defaults applied. */
export type PolicyManifest = z.output<typeof policyManifestSchema>;
export type PolicyRuleSpec = PolicyManifest["spec"]["rules"][number];
export type ChangeWindowSpec = NonNullable<PolicyRuleSpec["changeWindow"]>;
