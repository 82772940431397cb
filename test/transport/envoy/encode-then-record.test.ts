// judge → encode → record over a real gRPC call: the decision line and the counters carry the
// answer that went on the wire. When encoding fails, what Envoy gets is a fail-closed deny with a
// fresh id, and that id and "deny" are what is logged and counted, never the "allow" that could
// not be sent. A record phase that throws costs the allow too: no answer leaves unrecorded.

import { pino } from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ApprovalBook } from "../../../src/approvals/index.js";
import { parseConfig } from "../../../src/config/index.js";
import { createPipeline, Effects, type Judgement } from "../../../src/decision/index.js";
import { createCallerResolver } from "../../../src/identity/index.js";
import { compilePolicy, parsePolicyDocuments } from "../../../src/policy/index.js";
import { createEmbeddedStore, type EmbeddedSignalStore } from "../../../src/signals/index.js";
import type { DecisionLine } from "../../../src/telemetry/decision-log.js";
import { createMetrics, type Metrics } from "../../../src/telemetry/index.js";
import { FAIL_CLOSED_REASON, encodeCheckResponse, startAuthzServer, type AuthzServer } from "../../../src/transport/envoy/index.js";
import { createEnvoyClient, DEFAULT_SOURCE_PRINCIPAL, headerValue, type EnvoyClient } from "../../support/envoy-client.js";

const POLICY = `
apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata: { name: p }
spec:
  destinations: ["*"]
  rules:
    - { name: reads, methods: [GET], outcome: allow }
`;

describe("the record phase runs after encoding, with what went on the wire", () => {
  let store: EmbeddedSignalStore;
  let server: AuthzServer;
  let client: EnvoyClient;
  let metrics: Metrics;
  const lines: DecisionLine[] = [];
  const errors: unknown[] = [];
  let failEncode = false;
  let failRecord = false;

  beforeAll(async () => {
    const logger = pino({ level: "silent" });
    store = createEmbeddedStore(parseConfig({ store: { journalPath: "" } }).store, { logger });
    await store.ready();
    metrics = createMetrics({ defaultMetrics: false });
    const effects = new Effects({ store, logger, metrics });
    const policy = compilePolicy(parsePolicyDocuments(POLICY, "p.yaml"));
    const decisionLog = Object.assign((line: DecisionLine) => { lines.push(line); }, { close: () => Promise.resolve() });
    const pipeline = createPipeline({
      policy: () => policy,
      resolveCaller: createCallerResolver(parseConfig({}).identity),
      store, approvals: new ApprovalBook({ store }), effects, metrics, decisionLog,
    });
    server = await startAuthzServer({
      host: "127.0.0.1", port: 0, maxHeaderBytes: 64 * 1024,
      judge: pipeline.judge,
      record: (judgement: Judgement) => {
        if (failRecord) throw new Error("decision log down");
        pipeline.record(judgement);
      },
      encode: (decision, headers) => {
        if (failEncode) throw new Error("encoder bug");
        return encodeCheckResponse(decision, headers);
      },
      onError: (err) => errors.push(err),
    });
    client = createEnvoyClient(`127.0.0.1:${String(server.port)}`);
  });

  afterAll(async () => {
    client.close();
    await server.close();
    await store.close();
  });

  beforeEach(() => {
    lines.length = 0;
    errors.length = 0;
    failEncode = false;
    failRecord = false;
  });

  async function counted(outcome: string): Promise<number> {
    const text = await metrics.registry.metrics();
    const match = new RegExp(`^vigil_decisions_total\\{outcome="${outcome}"\\} (\\d+)$`, "m").exec(text);
    return Number(match?.[1] ?? "0");
  }

  it("an allow is logged and counted under the id Envoy got", async () => {
    const allowsBefore = await counted("allow");
    const res = await client.check({ method: "GET" });
    expect(res.status?.code ?? 0).toBe(0);
    const id = headerValue(res.ok_response?.headers, "x-vigil-decision-id");
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(lines).toEqual([expect.objectContaining({ decision_id: id, outcome: "allow", rule: "p/reads", caller: DEFAULT_SOURCE_PRINCIPAL })]);
    expect(await counted("allow")).toBe(allowsBefore + 1);
    expect(errors).toEqual([]);
  });

  it("an allow that cannot be encoded is answered, logged and counted as the fail-closed deny it became", async () => {
    const [allowsBefore, deniesBefore] = [await counted("allow"), await counted("deny")];
    failEncode = true;
    const res = await client.check({ method: "GET" });
    expect(res.status?.code).toBe(13);
    expect(res.http_response).toBe("denied_response");
    const body = JSON.parse(res.denied_response?.body ?? "") as { decision_id: string; outcome: string; reason: string };
    expect(body).toMatchObject({ outcome: "deny", reason: FAIL_CLOSED_REASON });
    expect(headerValue(res.denied_response?.headers, "x-vigil-decision-id")).toBe(body.decision_id);
    // One line, with the id and outcome Envoy saw; who asked is still named.
    expect(lines).toEqual([expect.objectContaining({
      decision_id: body.decision_id, outcome: "deny", rule: "", reason: FAIL_CLOSED_REASON, caller: DEFAULT_SOURCE_PRINCIPAL,
    })]);
    expect(await counted("allow")).toBe(allowsBefore);
    expect(await counted("deny")).toBe(deniesBefore + 1);
    expect(errors).toEqual([expect.objectContaining({ message: "encoder bug" })]);
  });

  it("an allow whose record phase fails does not go out: a fail-closed deny does", async () => {
    failRecord = true;
    const res = await client.check({ method: "GET" });
    expect(res.status?.code).toBe(13);
    expect(JSON.parse(res.denied_response?.body ?? "")).toMatchObject({ outcome: "deny", reason: FAIL_CLOSED_REASON });
    expect(errors).toEqual([expect.objectContaining({ message: "decision log down" })]);
  });

  it("a denial is logged under the id in its body", async () => {
    const res = await client.check({ method: "POST" });
    expect(res.status?.code).toBe(7);
    const body = JSON.parse(res.denied_response?.body ?? "") as { decision_id: string };
    expect(lines).toEqual([expect.objectContaining({ decision_id: body.decision_id, outcome: "deny" })]);
  });
});
