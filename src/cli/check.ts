// `vigil check`: one request, written as JSON, judged the way the sidecar would judge it.
// The JSON becomes the CheckRequest bytes Envoy would send (transport/envoy/request-json.ts).
// Offline, those bytes go through the server's own decoder and the same pipeline `judge`, whose
// Judgement carries everything the "why" output shows: nothing is resolved or read a second time.
// With --server, they go to a running sidecar over gRPC, as Envoy would send them.

import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { ApprovalBook } from "../approvals/index.js";
import { loadConfig } from "../config/index.js";
import { createPipeline, Effects, type Judgement } from "../decision/index.js";
import { VigilError } from "../errors/index.js";
import { createCallerResolver } from "../identity/index.js";
import { compilePolicy, loadEntitiesFile, loadPolicyDir, NO_ENTITIES } from "../policy/index.js";
import { createEmbeddedStore, loadSignalsFile } from "../signals/index.js";
import { createLogger, createMetrics } from "../telemetry/index.js";
import { parseOrHelp, string, strings } from "./args.js";
import { checkRequestFromJson, createCheckClient, decodeCheckRequest, encodeCheckRequestJson } from "../transport/envoy/index.js";

export async function check(argv: string[]): Promise<number> {
  const parsed = parseOrHelp("check", argv);
  if (parsed === undefined) return 0;
  const { positionals } = parsed;
  const values = {
    policy: string(parsed.values, "policy"), signals: string(parsed.values, "signals"), now: string(parsed.values, "now"),
    server: string(parsed.values, "server"), config: string(parsed.values, "config"),
  };
  const file = positionals[0];
  if (file === undefined) throw new VigilError("invalid_input", "check needs a request file (JSON CheckRequest) or - for stdin; see vigil check --help");
  if (values.server !== undefined) {
    const offline = ["policy", "signals", "now", "config", "xfcc-trusted-hops", "trust-domain", "destination", "destination-source", "destination-host"]
      .filter((name) => parsed.values[name] !== undefined);
    if (offline.length > 0) {
      throw new VigilError("invalid_input", `check --server asks the running sidecar, which judges with its own policy, signals and clock: drop ${offline.map((n) => `--${n}`).join(", ")} (or drop --server to judge offline)`);
    }
    return checkRemote(values.server, readJsonFile(file));
  }
  // No silent default: judging against examples/policies with no signals would answer a question
  // nobody asked.
  if (values.policy === undefined && values.config === undefined) {
    throw new VigilError("invalid_input", "check needs --server ADDRESS (ask a running sidecar, e.g. 127.0.0.1:9191) or --policy DIR (judge offline, e.g. examples/policies, with --signals FILE for its signals); see vigil check --help");
  }
  const nowMs = values.now !== undefined ? Date.parse(values.now) : Date.now();
  if (Number.isNaN(nowMs)) throw new VigilError("invalid_input", `--now is not a date: ${values.now ?? ""}`);
  const config = loadConfig({
    "policy": values.policy, "signals": values.signals, "xfcc-trusted-hops": string(parsed.values, "xfcc-trusted-hops"),
    "trust-domain": strings(parsed.values, "trust-domain"), "journal": "", "config": values.config,
    "destination": string(parsed.values, "destination"), "destination-source": string(parsed.values, "destination-source"),
    "destination-host": strings(parsed.values, "destination-host"),
  }, {});
  // The request first: a malformed file is refused before any policy or signal is loaded.
  const request = decodeCheckRequest(encodeCheckRequestJson(readJsonFile(file)), config.grpc.maxHeaderBytes);
  request.receivedAt = nowMs;

  const logger = createLogger({ level: "silent", sync: true });
  const now = (): number => nowMs;
  const store = createEmbeddedStore({ ...config.store, journalPath: "" }, { logger, now });
  await store.ready();
  try {
    if (config.signalsFile !== "") for (const seed of await loadSignalsFile(config.signalsFile)) await store.put(seed);
    const { documents } = await loadPolicyDir(config.policyDir);
    const policy = compilePolicy(documents);
    const metrics = createMetrics({ defaultMetrics: false });
    const effects = new Effects({ store, logger, metrics });
    const approvals = new ApprovalBook({ store, now });
    // The settings file's entities and MCP routes judge here as they do in vigil serve.
    const entities = config.entitiesFile === "" ? NO_ENTITIES : await loadEntitiesFile(config.entitiesFile);
    const pipeline = createPipeline({
      policy: () => policy, resolveCaller: createCallerResolver(config.identity), store, approvals, effects, now, destination: config.destination,
      entities: () => entities,
      jsonRpc: { paths: new Set(config.mcp.paths), maxBatch: config.mcp.maxBatch, maxBodyBytes: config.mcp.maxBodyBytes },
    });
    const judgement = pipeline.judge(request);
    process.stdout.write(`${JSON.stringify(explain(judgement, { version: policy.version, rules: policy.ruleCount }, nowMs), null, 2)}\n`);
    return judgement.decision.outcome === "allow" ? 0 : 1;
  } finally {
    await store.close();
  }
}

/** The decision and why: what each phase saw, as the Judgement recorded it. */
function explain(judgement: Judgement, policy: { version: string; rules: number }, nowMs: number): unknown {
  const { request, decision, caller, view, destination, signals } = judgement;
  return {
    outcome: decision.outcome,
    rule: decision.rule,
    reason: decision.reason,
    retry_after_seconds: decision.retryAfterSeconds,
    approval_id: decision.approvalId,
    // What the decision line carries: the policy version, the controls the deciding rule
    // enforces and, for a refusal, every rule that matched (most restrictive first).
    policy_version: decision.policyVersion ?? policy.version,
    controls: decision.controls ?? [],
    matched_rules: decision.matched ?? [],
    ...(decision.shadow === undefined ? {} : { shadow: decision.shadow }),
    why: {
      ...(request.malformed.length > 0 ? { malformed: request.malformed } : {}),
      caller: caller === undefined ? undefined : {
        spiffe_id: caller.spiffeId, identity_source: caller.source, credentials: caller.credentials.map((c) => c.fingerprint), problems: caller.problems,
      },
      action: view === undefined ? undefined : {
        destination: view.destination, destination_problem: destination?.problem, method: view.method, path: view.path_only,
        grpc: view.grpc_service === "" ? "" : `${view.grpc_service}/${view.grpc_method}`, mcp_tool: view.mcp_tool, context: request.contextExtensions,
      },
      signals,
      policy,
      now: new Date(nowMs).toISOString(),
    },
  };
}

function readJsonFile(file: string): unknown {
  const text = file === "-" ? readFileSync(0, "utf8") : readFileSync(file, "utf8");
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new VigilError("invalid_input", `${file} is not valid JSON`, { cause });
  }
}

/** Sends the request to a running sidecar over gRPC, as Envoy would, and prints what Envoy would get. */
async function checkRemote(address: string, json: unknown): Promise<number> {
  const request = checkRequestFromJson(json);
  const client = createCheckClient(address);
  try {
    const res = await client.check(request).catch((err: unknown) => { throw checkCallError(address, err); });
    const allowed = (res.status?.code ?? 0) === 0;
    const headers = (list: readonly { header?: { key?: string; value?: string } | null }[] | undefined): Record<string, string> =>
      Object.fromEntries((list ?? []).map((h) => [h.header?.key ?? "", h.header?.value ?? ""]));
    const body = res.denied_response?.body ?? "";
    process.stdout.write(`${JSON.stringify(allowed
      ? {
        grpc_status: 0, allowed: true,
        upstream_headers_set: headers(res.ok_response?.headers),
        upstream_headers_removed: res.ok_response?.headers_to_remove ?? [],
      }
      : {
        grpc_status: res.status?.code, allowed: false,
        http_status: res.denied_response?.status?.code,
        client_headers: headers(res.denied_response?.headers),
        body: body === "" ? "" : JSON.parse(body) as unknown,
      }, null, 2)}\n`);
    return allowed ? 0 : 1;
  } finally {
    client.close();
  }
}

/** A failed Check call as a user can act on it: nobody there, no answer in time, or what gRPC said. */
function checkCallError(address: string, err: unknown): VigilError {
  const code = typeof err === "object" && err !== null && "code" in err ? err.code : undefined;
  if (code === grpc.status.UNAVAILABLE) {
    return new VigilError("unavailable", `cannot reach a Vigil Check service at ${address}: is \`vigil serve\` (npm start) running there? (gRPC UNAVAILABLE)`, { cause: err });
  }
  if (code === grpc.status.DEADLINE_EXCEEDED) return new VigilError("unavailable", `no answer from ${address} within 5 s (gRPC DEADLINE_EXCEEDED)`, { cause: err });
  return new VigilError("unavailable", `Check at ${address} failed: ${VigilError.from(err).message}`, { cause: err });
}
