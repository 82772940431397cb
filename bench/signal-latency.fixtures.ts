// What the signal-latency benchmark and its watcher processes share: the policy every watcher
// enforces and the request it decides for a benchmark caller.

import type { AccessRequest } from "../src/decision/index.js";

export const NATS_URL = "nats://127.0.0.1:4222";

export const BENCH_POLICY = `apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata: { name: payments }
spec:
  destinations: ["payments"]
  rules:
    - name: read
      sources: ["spiffe://example.org/ns/bench/sa/*"]
      methods: [GET]
      when: 'signals.risk in ["none", "low"]'
      outcome: allow
`;

export function benchRequest(subject: string): AccessRequest {
  return {
    receivedAt: 0, requestId: "1", method: "GET", path: "/v1/payments/1", host: "payments", scheme: "https", protocol: "HTTP/2",
    source: { principal: subject, certificate: "", address: "10.0.0.1", port: 1 },
    destination: { principal: "", certificate: "", address: "", port: 0 },
    headers: {}, body: "", contextExtensions: { destination: "payments" }, sni: "", malformed: [],
  };
}
