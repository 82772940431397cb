// `vigil check`: one request, written as JSON, judged the way the sidecar would judge it.
// The JSON becomes the CheckRequest bytes Envoy would send (transport/envoy/request-json.ts).
// Offline, those bytes go through the server's own decoder and the same pipeline `judge`, whose
// Judgement carries everything the "why" output shows: nothing is resolved or read a second time.
// With --server, they go to a running sidecar over gRPC, as Envoy would send them.

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { ApprovalBook } from "../approvals/index.js";
import { loadConfig } from "../config/index.js";
import { createPipeline, Effects, type Judgement } from "../decision/index.js";
import { VigilError } from "../errors/index.js";
import { createCallerResolver } from "../identity/index.js";
import { compilePolicy, loadPolicyDir } from "../policy/index.js";
import { createEmbeddedStore, loadSignalsFile } from "../signals/index.js";
import { createLogger, createMetrics } from "../telemetry/index.js";
import { checkRequestFromJson, createCheckClient, decodeCheckRequest, encodeCheckRequestJson } from "../transport/envoy/index.js";

export async function check(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true, strict: true,
    options: {
      "policy": { type: "string" }, "signals": { type: "string" }, "now": { type: "string" },
      "xfcc-trusted-hops": { type: "string" }, "trust-domain": { type: "string", multiple: true },
      "server": { type: "string" }, "config": { type: "string" },
      "destination": { type: "string" }, "destination-source": { type: "string" }, "destination-host": { type: "string", multiple: true },
    },
  });
  const file = positionals[0];
  if (file === undefined) throw new VigilError("invalid_input", "check needs a request file (JSON CheckRequest) or - for stdin");
  if (values.server !== undefined) return checkRemote(values.server, readJsonFile(file));
  const nowMs = values.now !== undefined ? Date.parse(values.now) : Date.now();
  if (Number.isNaN(nowMs)) throw new VigilError("invalid_input", `--now is not a date: ${values.now ?? ""}`);
  const config = loadConfig({
    "policy": values.policy, "signals": values.signals, "xfcc-trusted-hops": values["xfcc-trusted-hops"],
    "trust-domain": values["trust-domain"], "journal": "", "config": values.config,
    "destination": values.destination, "destination-source": values["destination-source"], "destination-host": values["destination-host"],
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
    const effects = new Effects({ store, logger, metrics, hookUrl: "" });
    const approvals = new ApprovalBook({ store, now });
    const pipeline = createPipeline({
      policy: () => policy, resolveCaller: createCallerResolver(config.identity), store, approvals, effects, now, destination: config.destination,
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
    const res = await client.check(request);
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
