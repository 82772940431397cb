// Starts a real Vigil (gRPC + HTTP on loopback, port 0) for end-to-end tests, with a clock the
// test controls, and gives an admin HTTP client for it.

import { pino, type Logger } from "pino";
import { startVigil, type Vigil } from "../../src/cli/serve.js";
import { parseConfig, type Config } from "../../src/config/index.js";

/** Holder "ops-admin": writes signals and lifts revocations; not an approver of any rule. */
export const ADMIN_TOKEN = "test-admin-token-0123456789abcdef";
/** Holder "spiffe://example.org/ns/ops/sa/change-approver": decides approvals (change-mgmt names it). */
export const APPROVER_TOKEN = "test-approver-token-0123456789abcdef";
/** Holder "spiffe://example.org/ns/secops/sa/ir-bot": decides approvals, but is a caller itself. */
export const IR_BOT_TOKEN = "test-irbot-token-0123456789abcdef";
/** Holder "auditor": a line without scopes, so read-only. */
export const READ_ONLY_TOKEN = "test-readonly-token-0123456789abcdef";

export interface TestClock { now: number }

export interface TestVigil extends Vigil {
  clock: TestClock;
  grpcAddress: string;
  httpUrl: string;
  admin(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; json: unknown; headers: Headers }>;
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends (infer U)[] ? U[] : T[K] extends object ? DeepPartial<T[K]> : T[K] };

export async function startTestVigil(
  overrides: DeepPartial<Config> = {}, startAt = Date.UTC(2026, 10, 25, 12, 0, 0), options: { logger?: Logger } = {},
): Promise<TestVigil> {
  const clock: TestClock = { now: startAt };
  const config = parseConfig({
    ...overrides,
    grpc: { port: 0, ...overrides.grpc },
    http: {
      port: 0,
      adminTokens: [
        `${ADMIN_TOKEN} ops-admin signals:write,signals:reinstate`,
        `${APPROVER_TOKEN} spiffe://example.org/ns/ops/sa/change-approver approvals:decide`,
        `${IR_BOT_TOKEN} spiffe://example.org/ns/secops/sa/ir-bot approvals:decide`,
        `${READ_ONLY_TOKEN} auditor`,
      ],
      ...overrides.http,
    },
    policyDir: overrides.policyDir ?? "examples/policies",
    signalsFile: overrides.signalsFile ?? "examples/signals.yaml",
    store: { journalPath: "", ...overrides.store },
    // Tests close many instances; the SIGTERM drain is tested where it is the point.
    shutdownDrainMs: overrides.shutdownDrainMs ?? 0,
    logLevel: "silent",
  });
  const vigil = await startVigil(config, { logger: options.logger ?? pino({ level: "silent" }), now: () => clock.now });
  const httpUrl = `http://127.0.0.1:${vigil.httpPort}`;
  return {
    ...vigil,
    clock,
    grpcAddress: config.grpc.socket !== "" ? `unix:${config.grpc.socket}` : `127.0.0.1:${vigil.grpcPort}`,
    httpUrl,
    admin: (method, path, body, token = ADMIN_TOKEN) => adminCall(httpUrl, method, path, body, token),
  };
}

/** One admin API call with a bearer token (none when ""); the answer's JSON, or its text when not JSON. */
export async function adminCall(httpUrl: string, method: string, path: string, body: unknown, token: string): Promise<{ status: number; json: unknown; headers: Headers }> {
  const res = await fetch(`${httpUrl}${path}`, {
    method,
    headers: {
      ...(token === "" ? {} : { authorization: `Bearer ${token}` }),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch { /* not JSON: keep the text */ }
  return { status: res.status, json, headers: res.headers };
}
