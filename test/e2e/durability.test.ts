// An embedded sidecar restarted on the same journal finds every acknowledged signal, and keeps
// enforcing a revocation it made before the restart.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createEnvoyClient } from "../support/envoy-client.js";
import { startTestVigil } from "../support/vigil.js";

const CRM = "spiffe://example.org/ns/crm/sa/sync";

describe("embedded store across restarts", () => {
  const dir = mkdtempSync(join(tmpdir(), "vigil-e2e-"));
  afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

  it("keeps every acknowledged signal and every revocation", async () => {
    const journalPath = join(dir, "journal.jsonl");
    const first = await startTestVigil({ store: { journalPath } });
    const acknowledged: string[] = [];
    for (let i = 0; i < 50; i++) {
      const subject = `spiffe://example.org/ns/load/sa/w${i}`;
      const res = await first.admin("POST", "/v1/signals", { kind: "risk", subject, data: { level: i % 2 === 0 ? "high" : "low" } });
      expect(res.status).toBe(201);
      acknowledged.push(subject);
    }
    const revoke = await first.admin("POST", "/v1/signals", { kind: "revocation", subject: CRM, data: { revoked: true, reason: "incident 7" } });
    expect(revoke.status).toBe(201);
    await first.close();

    const second = await startTestVigil({ store: { journalPath } });
    try {
      acknowledged.forEach((subject, i) => {
        expect(second.store.get(subject, "risk")?.data.level).toBe(i % 2 === 0 ? "high" : "low");
      });
      const client = createEnvoyClient(second.grpcAddress);
      const res = await client.check({ sourcePrincipal: CRM, host: "payments", method: "GET", path: "/v1/payments/1" });
      client.close();
      expect(res.status?.code).toBe(7);
      expect(JSON.parse(res.denied_response?.body ?? "{}")).toMatchObject({ outcome: "deny" });

      const reinstated = await second.admin("POST", "/v1/signals/reinstate", { subject: CRM, reason: "incident 7 closed" });
      expect(reinstated.status).toBe(200);
      expect(second.store.get(CRM, "revocation")?.data.revoked).toBe(false);
    } finally {
      await second.close();
    }
  });
});
