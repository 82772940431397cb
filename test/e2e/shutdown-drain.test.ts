// SIGTERM as Kubernetes sends it: Vigil first turns gRPC health NOT_SERVING and /readyz 503 and
// keeps answering Checks for shutdownDrainMs, so Envoy and the kubelet stop sending before the
// listeners close; only then does it stop. (`vigil serve` calls the same close() on SIGTERM.)

import { describe, expect, it } from "vitest";
import { createEnvoyClient } from "../support/envoy-client.js";
import { startTestVigil } from "../support/vigil.js";

describe("shutdown drain", () => {
  it("answers NOT_SERVING and 503 first, keeps deciding during the drain, then closes", async () => {
    const vigil = await startTestVigil({ shutdownDrainMs: 3_000 }, Date.now());
    const client = createEnvoyClient(vigil.grpcAddress);
    const read = { sourcePrincipal: "spiffe://example.org/ns/crm/sa/sync", host: "payments", method: "GET", path: "/v1/payments/3" };
    try {
      expect(await client.health()).toBe("SERVING");
      expect((await vigil.admin("GET", "/readyz")).status).toBe(200);
      const closing = vigil.close();
      let closed = false;
      void closing.then(() => { closed = true; });
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(closed).toBe(false);
      expect(await client.health()).toBe("NOT_SERVING");
      expect(await client.health("envoy.service.auth.v3.Authorization")).toBe("NOT_SERVING");
      const ready = await vigil.admin("GET", "/readyz");
      expect(ready.status).toBe(503);
      expect(ready.json).toMatchObject({ checks: { shutdown: { ok: false } } });
      // Still deciding: a Check sent during the drain gets its real answer.
      expect((await client.check(read)).status?.code ?? 0).toBe(0);
      await closing;
      await expect(client.check(read, { deadlineMs: 500 })).rejects.toThrow();
    } finally {
      client.close();
    }
  });
});
