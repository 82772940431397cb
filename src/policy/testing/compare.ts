// One case's expectation against the answer Vigil gave: every mismatch as one readable phrase.

import type { PolicyTestExpectation } from "./schema.js";

/** What the runner observed for one case. */
export interface Observed {
  outcome: string;
  rule: string;
  reason: string;
  /** Headers of the answer Envoy got (lower-case names). */
  headers: Readonly<Record<string, string>>;
  controls: readonly string[];
  /** Would-be result of the shadow rules, when it differs from the answer. */
  shadow?: { outcome: string; rule: string } | undefined;
}

export function mismatches(expected: PolicyTestExpectation, got: Observed): string[] {
  const out: string[] = [];
  const by = got.rule === "" ? "no rule matched" : `rule ${got.rule}`;
  if (expected.outcome !== got.outcome) out.push(`expected outcome ${expected.outcome}, got ${got.outcome} (${by}: "${got.reason}")`);
  if (expected.rule !== undefined && expected.rule !== got.rule) {
    out.push(`expected rule ${expected.rule === "" ? "\"\" (nothing matched)" : expected.rule}, got ${got.rule === "" ? "\"\" (nothing matched)" : got.rule}`);
  }
  if (expected.reason !== undefined && expected.reason !== got.reason) out.push(`expected reason "${expected.reason}", got "${got.reason}"`);
  for (const [name, value] of Object.entries(expected.headers ?? {})) {
    const actual = got.headers[name];
    if (actual !== value) out.push(`expected header ${name}: "${value}", got ${actual === undefined ? "no such header" : `"${actual}"`}`);
  }
  if (expected.controls !== undefined) {
    const want = [...new Set(expected.controls)].sort();
    const have = [...new Set(got.controls)].sort();
    if (want.join(",") !== have.join(",")) out.push(`expected controls [${want.join(", ")}], got [${have.join(", ")}]`);
  }
  if (expected.shadow !== undefined) {
    const outcome = got.shadow?.outcome ?? "";
    const rule = got.shadow?.rule ?? "";
    if (expected.shadow.outcome !== outcome) out.push(`expected shadow outcome ${expected.shadow.outcome === "" ? "\"\" (none)" : expected.shadow.outcome}, got ${outcome === "" ? "\"\" (none)" : `${outcome} (${rule})`}`);
    else if (expected.shadow.rule !== undefined && expected.shadow.rule !== rule) out.push(`expected shadow rule ${expected.shadow.rule}, got ${rule}`);
  }
  return out;
}
