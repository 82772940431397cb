// The metric names Vigil exposes on /metrics, for checking dashboards and alert rules.
// For now they are read from a fresh metrics registry (createMetrics()); the step is kept in
// this one function so that it can later scrape a running server instead.

import { createMetrics } from "../../src/telemetry/metrics.js";

/** Series names a Prometheus scrape of Vigil can contain, histogram/summary suffixes included. */
export async function listExposedMetricNames(): Promise<Set<string>> {
  const text = await createMetrics().registry.metrics();
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
