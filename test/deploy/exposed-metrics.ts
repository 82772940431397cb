// The metric names Vigil exposes on /metrics, for checking dashboards and alert rules: scraped
// from a running Vigil (real gRPC and HTTP servers on loopback, example policy) after it has
// decided a few Checks, so every series a dashboard may query has been produced for real.

import { startTestVigil } from "../support/vigil.js";
import { createEnvoyClient } from "../support/envoy-client.js";

let scraped: Promise<Set<string>> | undefined;

/** Series names a Prometheus scrape of Vigil can contain, histogram/summary suffixes included. */
export function listExposedMetricNames(): Promise<Set<string>> {
  scraped ??= scrape();
  return scraped;
}

async function scrape(): Promise<Set<string>> {
  const vigil = await startTestVigil();
  const client = createEnvoyClient(vigil.grpcAddress);
  try {
    await client.check({ sourcePrincipal: "spiffe://example.org/ns/crm/sa/sync", host: "payments", method: "GET", path: "/v1/payments/1" });
    await client.check({ sourcePrincipal: "", host: "payments", method: "GET", path: "/" });
    const res = await fetch(`${vigil.httpUrl}/metrics`);
    if (!res.ok) throw new Error(`/metrics answered ${res.status}`);
    return namesIn(await res.text());
  } finally {
    client.close();
    await vigil.close();
  }
}

function namesIn(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split("\n")) {
    const match = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (match === null) continue;
    const [, name, type] = match as unknown as [string, string, string];
    if (type === "histogram") for (const suffix of ["_bucket", "_sum", "_count"]) names.add(name + suffix);
    else if (type === "summary") for (const suffix of ["", "_sum", "_count"]) names.add(name + suffix);
    else names.add(name);
  }
  return names;
}
