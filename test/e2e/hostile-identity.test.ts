// Hostile identity input over real gRPC, encoded with Envoy's own protos: decoy credentials beside
// a leaked key in every order and shape Envoy can deliver, empty and malformed credentials,
// invalid principals and certificates, foreign trust domains, forged XFCC. The policy holds the
// example guards and one source-less allow rule, so every row that is denied is denied by the
// guards or by the identity step itself, never by a missing rule.

import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IDENTITY_RULE } from "../../src/decision/index.js";
import { fingerprintSecret } from "../../src/identity/index.js";
import {
  buildCheckRequest, createEnvoyClient, headerValue, type DecodedCheckResponse, type EnvoyClient, type EnvoyLikeRequest,
} from "../support/envoy-client.js";
import { DEPLOYER, K1, K1_FP, K2 } from "../support/example-world.js";
import { startTestVigil, type TestVigil } from "../support/vigil.js";

const WEDNESDAY_NOON = Date.UTC(2026, 10, 25, 12, 0, 0);
const XFCC = "x-forwarded-client-cert";
const DECOY = "decoy-token-000000000000";
const DECOY_2 = "decoy-token-000000000002";
const pem = (name: string): string => readFileSync(new URL(`../fixtures/certs/${name}`, import.meta.url), "utf8");
const xfccNaming = (uri: string): string => `By=spiffe://example.org/ns/edge/sa/gw;Hash=00ff;Subject="";URI=${uri}`;

const OPEN_POLICY = `apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata: { name: open }
spec:
  destinations: ["*"]
  rules:
    # No sources: anyone may read. Only the guards and the identity step stand in the way.
    - name: anyone-reads
      methods: [GET]
      outcome: allow
      reason: open to everyone
`;

type Outcome = "allow" | "deny" | "revoke" | "step_up" | "delay";

function answer(res: DecodedCheckResponse): { outcome: Outcome; rule: string; reason: string; caller: string } {
  const rule = res.dynamic_metadata?.fields?.rule?.stringValue ?? "";
  if (res.status?.code === undefined || res.status.code === 0) {
    return { outcome: "allow", rule, reason: "", caller: headerValue(res.ok_response?.headers, "x-vigil-caller") ?? "" };
  }
  const body = JSON.parse(res.denied_response?.body ?? "{}") as { outcome?: Outcome; reason?: string };
  return { outcome: body.outcome ?? "deny", rule, reason: body.reason ?? "", caller: "" };
}

/** A request a source-less rule allows; each row changes what it is about. */
const read = (extra: EnvoyLikeRequest = {}): EnvoyLikeRequest => ({
  sourcePrincipal: DEPLOYER, host: "anything", method: "GET", path: "/v1/things/1", time: new Date(WEDNESDAY_NOON), ...extra,
});

interface Row {
  attack: string;
  request: EnvoyLikeRequest;
  outcome: Outcome;
  rule: string;
  /** Who Vigil tells the upstream is calling, for allowed rows. */
  caller?: string;
  /** XFCC must be stripped before the upstream. */
  stripsXfcc?: boolean;
}

const LEAKED = "guards/compromised-credential";

const rows: Row[] = [
  // Baselines: what the rows below would get without their attack.
  { attack: "baseline: no credential", request: read(), outcome: "allow", rule: "open/anyone-reads", caller: DEPLOYER },
  { attack: "baseline: a decoy bearer token alone", request: read({ authorization: `Bearer ${DECOY}` }), outcome: "allow", rule: "open/anyone-reads" },
  { attack: "baseline: the same token repeated (Envoy joins the repeat)", request: read({ authorization: `Bearer ${DECOY},Bearer ${DECOY}` }), outcome: "allow", rule: "open/anyone-reads" },
  { attack: "baseline: the leaked key alone", request: read({ apiKey: K1 }), outcome: "revoke", rule: LEAKED },

  // A decoy beside the leaked key K1, in every place and order.
  { attack: "decoy bearer, then the leaked key in x-api-key", request: read({ headers: { authorization: `Bearer ${DECOY}`, "x-api-key": K1 } }), outcome: "revoke", rule: LEAKED },
  { attack: "leaked key in x-api-key, then a decoy bearer", request: read({ headers: { "x-api-key": K1, authorization: `Bearer ${DECOY}` } }), outcome: "revoke", rule: LEAKED },
  { attack: "leaked key as bearer, decoy in x-api-key", request: read({ authorization: `Bearer ${K1}`, apiKey: DECOY }), outcome: "revoke", rule: LEAKED },
  { attack: "decoy, then leaked bearer joined with \", \"", request: read({ authorization: `Bearer ${DECOY}, Bearer ${K1}` }), outcome: "revoke", rule: LEAKED },
  { attack: "leaked, then decoy bearer joined with \",\"", request: read({ authorization: `Bearer ${K1},Bearer ${DECOY}` }), outcome: "revoke", rule: LEAKED },
  { attack: "decoy and leaked API keys joined in x-api-key", request: read({ apiKey: `${DECOY},${K1}` }), outcome: "revoke", rule: LEAKED },
  { attack: "the leaked key raw after a bearer decoy in one header", request: read({ authorization: `Bearer ${DECOY}, ${K1}` }), outcome: "revoke", rule: LEAKED },
  { attack: "decoy bearer beside an overdue key (K2)", request: read({ authorization: `Bearer ${DECOY}`, apiKey: K2 }), outcome: "deny", rule: "guards/overdue-credential" },

  // Ambiguous, empty and malformed credentials.
  { attack: "two different unknown bearer tokens in one header", request: read({ authorization: `Bearer ${DECOY},Bearer ${DECOY_2}` }), outcome: "deny", rule: IDENTITY_RULE },
  { attack: "two different unknown API keys in one header", request: read({ apiKey: `${DECOY}, ${DECOY_2}` }), outcome: "deny", rule: IDENTITY_RULE },
  { attack: "empty authorization header", request: read({ authorization: "" }), outcome: "deny", rule: IDENTITY_RULE },
  { attack: "blank x-api-key header", request: read({ apiKey: "   " }), outcome: "deny", rule: IDENTITY_RULE },
  { attack: "Bearer without a token", request: read({ authorization: "Bearer" }), outcome: "deny", rule: IDENTITY_RULE },
  { attack: "Bearer and spaces only", request: read({ authorization: "Bearer    " }), outcome: "deny", rule: IDENTITY_RULE },
  { attack: "Bearer with two space-separated tokens", request: read({ authorization: `Bearer ${DECOY} ${DECOY_2}` }), outcome: "deny", rule: IDENTITY_RULE },
  { attack: "a token followed by an empty repeat", request: read({ authorization: `Bearer ${DECOY},` }), outcome: "deny", rule: IDENTITY_RULE },
  { attack: "a header of commas", request: read({ apiKey: ",,,," }), outcome: "deny", rule: IDENTITY_RULE },

  // Identity sources that are present but not acceptable: denied, never anonymous.
  { attack: "principal that is a DNS name", request: read({ sourcePrincipal: "deployer.ci.svc.cluster.local" }), outcome: "deny", rule: IDENTITY_RULE },
  { attack: "principal that is an X.500 subject", request: read({ sourcePrincipal: "O=Example,CN=deployer" }), outcome: "deny", rule: IDENTITY_RULE },
  { attack: "principal that is a trust domain without a path", request: read({ sourcePrincipal: "spiffe://example.org" }), outcome: "deny", rule: IDENTITY_RULE },
  { attack: "principal from a foreign trust domain", request: read({ sourcePrincipal: "spiffe://evil.example/ns/ci/sa/deployer" }), outcome: "deny", rule: IDENTITY_RULE },
  { attack: "peer certificate that is a CA", request: read({ sourcePrincipal: "", sourceCertificatePem: pem("ca.pem") }), outcome: "deny", rule: IDENTITY_RULE },
  { attack: "peer certificate that is not DER", request: read({ sourcePrincipal: "", sourceCertificatePem: pem("garbage.pem") }), outcome: "deny", rule: IDENTITY_RULE },
  { attack: "peer certificate with two URI SANs", request: read({ sourcePrincipal: "", sourceCertificatePem: pem("two-uri-sans.pem") }), outcome: "deny", rule: IDENTITY_RULE },
  { attack: "peer certificate with a comma-smuggled second URI", request: read({ sourcePrincipal: "", sourceCertificatePem: pem("comma-in-uri.pem") }), outcome: "deny", rule: IDENTITY_RULE },
  {
    attack: "forged XFCC naming an admin, no trusted hops, no principal: anonymous and stripped",
    request: read({ sourcePrincipal: "", xfcc: xfccNaming("spiffe://example.org/ns/admin/sa/root") }),
    outcome: "allow", rule: "open/anyone-reads", caller: "", stripsXfcc: true,
  },
  {
    attack: "forged XFCC beside a real principal: the principal counts, XFCC stripped",
    request: read({ xfcc: xfccNaming("spiffe://example.org/ns/admin/sa/root") }),
    outcome: "allow", rule: "open/anyone-reads", caller: DEPLOYER, stripsXfcc: true,
  },
];

/** XFCC rows for a sidecar that trusts one proxy hop. */
const trustedHopRows: Row[] = [
  { attack: "trusted XFCC naming a workload", request: read({ sourcePrincipal: "", xfcc: xfccNaming(DEPLOYER) }), outcome: "allow", rule: "open/anyone-reads", caller: DEPLOYER },
  { attack: "trusted XFCC that is malformed", request: read({ sourcePrincipal: "", xfcc: "URI=\"unterminated" }), outcome: "deny", rule: IDENTITY_RULE, stripsXfcc: true },
  { attack: "trusted XFCC from a foreign trust domain", request: read({ sourcePrincipal: "", xfcc: xfccNaming("spiffe://evil.example/ns/a/sa/b") }), outcome: "deny", rule: IDENTITY_RULE, stripsXfcc: true },
  { attack: "trusted XFCC naming a trust domain only", request: read({ sourcePrincipal: "", xfcc: xfccNaming("spiffe://example.org") }), outcome: "deny", rule: IDENTITY_RULE, stripsXfcc: true },
];

describe("hostile identity input over real gRPC", () => {
  let policyDir: string;
  let vigil: TestVigil;
  let trustingVigil: TestVigil;
  let client: EnvoyClient;
  let trustingClient: EnvoyClient;

  beforeAll(async () => {
    policyDir = mkdtempSync(join(tmpdir(), "vigil-hostile-identity-"));
    copyFileSync("examples/policies/guards.yaml", join(policyDir, "guards.yaml"));
    writeFileSync(join(policyDir, "open.yaml"), OPEN_POLICY);
    const identity = { trustDomains: ["example.org"] };
    vigil = await startTestVigil({ policyDir, identity }, WEDNESDAY_NOON);
    trustingVigil = await startTestVigil({ policyDir, identity: { ...identity, xfccTrustedHops: 1 } }, WEDNESDAY_NOON);
    for (const v of [vigil, trustingVigil]) {
      const put = await v.store.put({
        id: "k1-leaked", kind: "credential", subject: K1_FP, source: "secret-scanner", observedAt: WEDNESDAY_NOON - 60_000,
        data: { state: "leaked", owner: DEPLOYER },
      });
      expect(put).toBeDefined();
    }
    client = createEnvoyClient(vigil.grpcAddress);
    trustingClient = createEnvoyClient(trustingVigil.grpcAddress);
  });

  afterAll(async () => {
    client.close();
    trustingClient.close();
    await vigil.close();
    await trustingVigil.close();
    rmSync(policyDir, { recursive: true, force: true });
  });

  const check = (target: () => EnvoyClient) => async (row: Row) => {
    const res = await target().check(row.request);
    const got = answer(res);
    expect({ outcome: got.outcome, rule: got.rule }).toEqual({ outcome: row.outcome, rule: row.rule });
    if (row.rule === IDENTITY_RULE) expect(got.reason).toMatch(/^identity refused: /);
    if (row.caller !== undefined) expect(got.caller).toBe(row.caller);
    // A denial forwards nothing; an allowed request must not carry the forged header upstream.
    if (row.stripsXfcc === true && row.outcome === "allow") expect(res.ok_response?.headers_to_remove).toContain(XFCC);
    // What Vigil answers never carries a secret that was presented.
    const text = JSON.stringify(res);
    for (const secret of [K1, K2, DECOY, DECOY_2]) expect(text).not.toContain(secret);
  };

  it.each(rows)("$attack → $outcome", check(() => client));
  it.each(trustedHopRows)("one trusted hop: $attack → $outcome", check(() => trustingClient));

  it("a repeated header sent as separate raw entries (encode_raw_headers) counts both values", async () => {
    const message = buildCheckRequest(read({ encodeRawHeaders: true, authorization: `Bearer ${DECOY}` }));
    message.attributes?.request?.http?.header_map?.headers?.push({ key: "authorization", raw_value: Buffer.from(`Bearer ${K1}`) });
    expect(answer(await client.checkMessage(message))).toMatchObject({ outcome: "revoke", rule: LEAKED });
  });

  it("revokes the leaked key behind a decoy, and never the decoy", async () => {
    await vigil.effects.drain();
    expect(vigil.store.get(K1_FP, "revocation")?.data.revoked).toBe(true);
    for (const decoy of [DECOY, DECOY_2]) expect(vigil.store.get(fingerprintSecret(decoy), "revocation")).toBeUndefined();
  });
});
