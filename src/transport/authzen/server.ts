// The AuthZEN 1.0 decision API (OpenID AuthZEN Authorization API 1.0) as routes of the HTTP port:
//   POST /access/v1/evaluation           one evaluation → {"decision": bool[, "context": {…}]}
//   POST /access/v1/evaluations          several, with defaults and a semantic → {"evaluations": […]}
//   GET  /.well-known/authzen-configuration   the PDP's metadata document (public)
// Each evaluation goes through the same pipeline as an Envoy Check (judge, then record once the
// answer is sent): same policies, same live signals, same decision log and metrics. A denial is
// 200 {"decision": false}, never an HTTP error; step-up, delay and revoke add a `context` saying
// what would lift them. The PEP authenticates with a bearer token holding authzen:evaluate (401
// with WWW-Authenticate without one, 403 without the scope). X-Request-ID is echoed when it is a
// plain token (never a value that could split or forge a header).

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import {
  PATH_AUTHZEN_EVALUATION, PATH_AUTHZEN_EVALUATIONS, PATH_AUTHZEN_METADATA, type AdminToken, type AuthzenConfig,
} from "../../config/index.js";
import type { Judgement, Pipeline } from "../../decision/index.js";
import { VigilError } from "../../errors/index.js";
import type { AccessRequest, Decision, Evaluation } from "../../model/index.js";
import type { Metrics } from "../../telemetry/metrics.js";
import { AdminAuth, httpStatusOf, readBody, requireScope, sendJson, type HttpRoute } from "../http/index.js";
import { checkDepth, parseEvaluationRequest, parseEvaluationsRequest, type EvaluationSemantic } from "./request.js";

export const AUTHZEN_SCOPE = "authzen:evaluate";
/** Context extension every AuthZEN evaluation carries, so a rule can tell it from an Envoy Check. */
export const AUTHZEN_PROTOCOL = "authzen";
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

export interface AuthzenOptions {
  settings: AuthzenConfig;
  pipeline: Pipeline;
  /** The PEPs' tokens: admin tokens, of which those with the scope authzen:evaluate may ask. */
  tokens: readonly AdminToken[];
  metrics: Metrics;
  logger: Logger;
  /** The base URL the metadata document names (settings.baseUrl, else the HTTP port's). */
  baseUrl: () => string;
  now?: () => number;
}

type Endpoint = "evaluation" | "evaluations" | "metadata";

/** One evaluation's answer as AuthZEN puts it. */
export interface AuthzenDecision {
  decision: boolean;
  context?: Record<string, unknown>;
}

/** A decision as AuthZEN answers it: plain true/false unless there is something the PEP can act on. */
export function authzenDecision(decision: Decision): AuthzenDecision {
  switch (decision.outcome) {
    case "allow": return { decision: true };
    case "deny": return { decision: false };
    case "step_up": return {
      decision: false,
      context: {
        outcome: "step_up", reason: decision.reason, decision_id: decision.id,
        ...(decision.approvalId === undefined ? {} : { approval_id: decision.approvalId }),
      },
    };
    case "delay": return {
      decision: false,
      context: { outcome: "delay", reason: decision.reason, decision_id: decision.id, retry_after: decision.retryAfterSeconds ?? 60 },
    };
    case "revoke": return { decision: false, context: { outcome: "revoke", reason: decision.reason, decision_id: decision.id } };
  }
}

export function createAuthzenRoutes(options: AuthzenOptions): HttpRoute[] {
  const { settings, pipeline, metrics } = options;
  const auth = new AdminAuth(options.tokens);
  const now = options.now ?? Date.now;
  const log = options.logger.child({ component: "authzen" });

  function count(endpoint: Endpoint, status: number): void {
    metrics.authzenRequests.labels(endpoint, String(status)).inc();
  }

  /** Counts the answer, whether sent here or by the HTTP server's error handler. */
  async function counted(endpoint: Endpoint, res: ServerResponse, run: () => Promise<void>): Promise<void> {
    try {
      await run();
      count(endpoint, res.statusCode);
    } catch (err) {
      count(endpoint, httpStatusOf(VigilError.from(err).code));
      throw err;
    }
  }

  function echoRequestId(req: IncomingMessage, res: ServerResponse): string {
    const id = req.headers["x-request-id"];
    if (typeof id === "string" && REQUEST_ID.test(id)) {
      res.setHeader("x-request-id", id);
      return id;
    }
    return "";
  }

  function authorize(req: IncomingMessage): void {
    const principal = auth.authenticate(req.headers.authorization);
    if (principal === undefined) {
      throw new VigilError("unauthenticated", auth.configured
        ? "a bearer token with the scope authzen:evaluate is required"
        : "the AuthZEN API needs a PEP token: add one with the scope authzen:evaluate to the admin tokens file");
    }
    requireScope(principal, AUTHZEN_SCOPE);
  }

  /** The body as JSON, within the size and depth bounds; 413 is answered here (undefined). */
  async function readJson(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
    const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
    if (type !== "application/json") throw new VigilError("invalid_input", "content-type must be application/json");
    const body = await readBody(req, settings.maxBodyBytes + 1, { truncate: true });
    if (body.length > settings.maxBodyBytes) {
      sendJson(res, 413, { error: { code: "payload_too_large", message: `request body exceeds ${settings.maxBodyBytes} bytes` } });
      return undefined;
    }
    let value: unknown;
    try {
      value = JSON.parse(body.toString("utf8"));
    } catch (cause) {
      throw new VigilError("invalid_input", "request body is not valid JSON", { cause });
    }
    checkDepth(value, settings.maxDepth);
    return value;
  }

  function accessRequest(evaluation: Evaluation, requestId: string): AccessRequest {
    // A SPIFFE subject is judged as that workload: its risk, posture and revocations apply.
    const principal = evaluation.subject.id.startsWith("spiffe://") ? evaluation.subject.id : "";
    return {
      receivedAt: now(),
      source: { principal, certificate: "", address: "", port: 0 },
      destination: { principal: "", certificate: "", address: "", port: 0 },
      requestId,
      method: evaluation.action.name,
      path: "/",
      host: "",
      scheme: "",
      protocol: AUTHZEN_PROTOCOL,
      headers: {},
      body: "",
      contextExtensions: contextExtensionsOf(evaluation.context),
      sni: "",
      malformed: [],
      evaluation,
    };
  }

  function recordAll(judgements: readonly Judgement[]): void {
    for (const judgement of judgements) {
      try {
        pipeline.record(judgement);
      } catch (err) {
        log.error({ err }, "recording an AuthZEN decision failed");
      }
    }
  }

  const evaluation: HttpRoute = {
    method: "POST",
    path: PATH_AUTHZEN_EVALUATION,
    handle: (req, res) => counted("evaluation", res, async () => {
      const requestId = echoRequestId(req, res);
      authorize(req);
      const body = await readJson(req, res);
      if (body === undefined) return;
      const judgement = pipeline.judge(accessRequest(parseEvaluationRequest(body, settings.destination), requestId));
      // A grant use being decided on the bus (cluster mode): answer once it is decided.
      await judgement.settled;
      res.setHeader("x-vigil-decision-id", judgement.decision.id);
      sendJson(res, 200, authzenDecision(judgement.decision));
      recordAll([judgement]);
    }),
  };

  const evaluations: HttpRoute = {
    method: "POST",
    path: PATH_AUTHZEN_EVALUATIONS,
    handle: (req, res) => counted("evaluations", res, async () => {
      const requestId = echoRequestId(req, res);
      authorize(req);
      const body = await readJson(req, res);
      if (body === undefined) return;
      const parsed = parseEvaluationsRequest(body, settings.destination, settings.maxEvaluations);
      if (parsed.items === undefined) {
        // An absent or empty `evaluations` is one evaluation, answered as one.
        const judgement = pipeline.judge(accessRequest(parsed.single as Evaluation, requestId));
        await judgement.settled;
        res.setHeader("x-vigil-decision-id", judgement.decision.id);
        sendJson(res, 200, authzenDecision(judgement.decision));
        recordAll([judgement]);
        return;
      }
      const judgements: Judgement[] = [];
      const answers: AuthzenDecision[] = [];
      for (const item of parsed.items) {
        const judgement = pipeline.judge(accessRequest(item, requestId));
        await judgement.settled;
        judgements.push(judgement);
        const answer = authzenDecision(judgement.decision);
        answers.push(answer);
        if (stops(parsed.semantic, answer.decision)) break;
      }
      sendJson(res, 200, { evaluations: answers });
      recordAll(judgements);
    }),
  };

  const metadata: HttpRoute = {
    method: "GET",
    path: PATH_AUTHZEN_METADATA,
    handle: (req, res) => counted("metadata", res, () => {
      echoRequestId(req, res);
      const base = options.baseUrl().replace(/\/+$/, "");
      sendJson(res, 200, {
        policy_decision_point: base,
        access_evaluation_endpoint: `${base}${PATH_AUTHZEN_EVALUATION}`,
        access_evaluations_endpoint: `${base}${PATH_AUTHZEN_EVALUATIONS}`,
      });
      return Promise.resolve();
    }),
  };

  return settings.enabled ? [evaluation, evaluations, metadata] : [];
}

/** Whether the evaluations after one with this decision are skipped under `semantic`. */
export function stops(semantic: EvaluationSemantic, decision: boolean): boolean {
  return (semantic === "deny_on_first_deny" && !decision) || (semantic === "permit_on_first_permit" && decision);
}

/**
 * The evaluation's string-valued context entries as route context extensions (a rule's `context:`
 * matcher: env: prod), with `protocol: authzen` always set, so a rule can tell AuthZEN from Envoy.
 * The destination is not among them: the PDP's settings pick it.
 */
function contextExtensionsOf(context: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(context)) {
    if (typeof value === "string" && key !== "destination") out[key] = value;
  }
  out.protocol = AUTHZEN_PROTOCOL;
  return out;
}
