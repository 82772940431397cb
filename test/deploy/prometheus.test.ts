// deploy/prometheus/vigil-alerts.yaml: accepted by promtool, complete (severity, summary,
// description, runbook), built on series Vigil exposes, and each expression firing for the
// situation it names and not otherwise (promtool test rules).

import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { listExposedMetricNames } from "./exposed-metrics.js";
import { metricNames } from "./promql.js";
import { readYaml, repoPath } from "./repo.js";

const RULES = "deploy/prometheus/vigil-alerts.yaml";

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rules = (readYaml(RULES) as { groups: { name: string; rules: Rule[] }[] }).groups.flatMap((g) => g.rules);

function rule(name: string): Rule {
  const found = rules.find((r) => r.alert === name);
  if (found === undefined) throw new Error(`${RULES} has no alert ${name}`);
  return found;
}

/** Series from other exporters that the rules may use (Envoy's own stats on :9902). */
const OTHER_EXPORTERS = new Set(["envoy_http_downstream_rq_total"]);

function promtoolPath(): string | undefined {
  try {
    return execFileSync("sh", ["-c", "command -v promtool"], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}
const promtool = promtoolPath();
const MISSING = "promtool not found: run scripts/setup-system.sh (Debian package prometheus)";

/** Skips (locally) or fails (CI=true) when promtool is missing. */
function requirePromtool(skip: (note: string) => void): string {
  if (promtool !== undefined) return promtool;
  if (process.env.CI === "true") throw new Error(MISSING);
  skip(MISSING);
  return "";
}

describe(RULES, () => {
  let exposed: Set<string>;
  beforeAll(async () => {
    exposed = await listExposedMetricNames();
  });

  it("passes promtool check rules", (ctx) => {
    const bin = requirePromtool((note) => { ctx.skip(note); });
    const out = execFileSync(bin, ["check", "rules", repoPath(RULES)], { encoding: "utf8" });
    expect(out).toContain("SUCCESS");
  });

  it.each(rules.map((r) => [r.alert, r] as const))("%s has a severity, summary, description and runbook hint", (_name, r) => {
    expect(["critical", "warning", "info"]).toContain(r.labels?.severity);
    for (const key of ["summary", "description", "runbook"]) expect(r.annotations?.[key], key).toMatch(/\S/);
    expect(r.for).toMatch(/^\d+[smh]$/);
  });

  it("uses only series Vigil exposes (and Envoy's request counter)", () => {
    const unknown = rules.flatMap((r) => metricNames(r.expr)
      .filter((n) => !exposed.has(n) && !OTHER_EXPORTERS.has(n))
      .map((n) => `${r.alert}: ${n}`));
    expect(unknown).toEqual([]);
  });

  it("alerts on stale signals after 1m and on failing policy reloads after 5m", () => {
    expect(rule("VigilSignalsStale").expr.trim()).toBe("vigil_signals_fresh == 0");
    expect(rule("VigilSignalsStale").for).toBe("1m");
    expect(rule("VigilPolicyReloadFailing").expr.trim()).toBe("vigil_policy_last_reload_success == 0");
    expect(rule("VigilPolicyReloadFailing").for).toBe("5m");
    rule("VigilCheckErrors");
    rule("VigilDecisionLatencyOverBudget");
  });

  describe("expressions (promtool test rules)", () => {
    // Counters are given as start+increment per minute; rate() over 5m then sees steady rates.
    const cases: { name: string; alert: string; series: { series: string; values: string }[]; firing: Record<string, string>[]; at?: string }[] = [
      {
        name: "stale signals fire only where fresh is 0",
        alert: "VigilSignalsStale",
        series: [
          { series: 'vigil_signals_fresh{instance="a"}', values: "1 1 0 0 0 0 0 0 0 0 0" },
          { series: 'vigil_signals_fresh{instance="b"}', values: "1x10" },
        ],
        firing: [{ instance: "a" }],
      },
      {
        name: "latency over budget fires when more than 1% of decisions exceed 0.05s",
        alert: "VigilDecisionLatencyOverBudget",
        series: [
          { series: 'vigil_decision_duration_seconds_bucket{instance="slow",le="0.05"}', values: "0+950x10" },
          { series: 'vigil_decision_duration_seconds_count{instance="slow"}', values: "0+1000x10" },
          { series: 'vigil_decision_duration_seconds_bucket{instance="fast",le="0.05"}', values: "0+999x10" },
          { series: 'vigil_decision_duration_seconds_count{instance="fast"}', values: "0+1000x10" },
        ],
        firing: [{ instance: "slow" }],
      },
      {
        name: "check errors fire above 1% of decisions",
        alert: "VigilCheckErrors",
        series: [
          { series: 'vigil_check_errors_total{instance="bad",reason="internal"}', values: "0+50x10" },
          { series: 'vigil_decisions_total{instance="bad",outcome="deny"}', values: "0+1000x10" },
          { series: 'vigil_check_errors_total{instance="ok",reason="malformed"}', values: "0+1x10" },
          { series: 'vigil_decisions_total{instance="ok",outcome="allow"}', values: "0+1000x10" },
        ],
        firing: [{ instance: "bad" }],
      },
      {
        name: "no decisions while traffic flows fires for the pod whose Vigil is silent",
        alert: "VigilNoDecisionsWhileTrafficFlows",
        series: [
          { series: 'envoy_http_downstream_rq_total{namespace="d",pod="p1",envoy_http_conn_manager_prefix="inbound"}', values: "0+100x10" },
          { series: 'vigil_decisions_total{namespace="d",pod="p1",outcome="allow"}', values: "0+0x10" },
          { series: 'envoy_http_downstream_rq_total{namespace="d",pod="p2",envoy_http_conn_manager_prefix="inbound"}', values: "0+100x10" },
          { series: 'vigil_decisions_total{namespace="d",pod="p2",outcome="allow"}', values: "0+100x10" },
        ],
        firing: [{ namespace: "d", pod: "p1" }],
      },
      {
        name: "an outbox backlog fires once its oldest notice is over 5 minutes old, once per namespace",
        alert: "VigilOutboxBacklog",
        series: [
          { series: 'vigil_outbox_oldest_age_seconds{namespace="stuck",pod="a"}', values: "0+60x10" },
          { series: 'vigil_outbox_oldest_age_seconds{namespace="stuck",pod="b"}', values: "0+60x10" },
          { series: 'vigil_outbox_oldest_age_seconds{namespace="flowing",pod="c"}', values: "0 2 0 1 0 3 0 0 1 0 0" },
        ],
        firing: [{ namespace: "stuck" }],
      },
      {
        name: "dropped notices fire by channel and reason",
        alert: "VigilOutboxDropping",
        series: [
          { series: 'vigil_outbox_dropped_total{namespace="n",channel="caep",reason="rejected"}', values: "0 0 0 0 0 0 0 0 1 1 1" },
          { series: 'vigil_outbox_dropped_total{namespace="n",channel="approval_webhook",reason="attempts"}', values: "0x10" },
        ],
        firing: [{ namespace: "n", channel: "caep", reason: "rejected" }],
      },
      {
        name: "dry run fires where it is on",
        alert: "VigilDryRunOn",
        series: [
          { series: 'vigil_dry_run{namespace="rollout",pod="a"}', values: "1x70" },
          { series: 'vigil_dry_run{namespace="enforcing",pod="b"}', values: "0x70" },
        ],
        firing: [{ namespace: "rollout", pod: "a" }],
        at: "70m",
      },
      {
        name: "a shadow rule that would refuse traffic fires; one that would only allow does not",
        alert: "VigilShadowRuleWouldRefuse",
        series: [
          { series: 'vigil_shadow_decisions_total{namespace="n",pod="a",policy="api",rule="no-bot-reads",outcome="deny"}', values: "0+5x40" },
          { series: 'vigil_shadow_decisions_total{namespace="n",pod="a",policy="api",rule="open-patch",outcome="allow"}', values: "0+5x40" },
          { series: 'vigil_shadow_decisions_total{namespace="n",pod="a",policy="api",rule="quiet",outcome="deny"}', values: "3x40" },
        ],
        firing: [{ namespace: "n", policy: "api", rule: "no-bot-reads", outcome: "deny" }],
        at: "40m",
      },
    ];

    it.for(cases)("$name", ({ alert, series, firing, at }, ctx) => {
      const bin = requirePromtool((note) => { ctx.skip(note); });
      const r = rule(alert);
      const labels = Object.keys(firing[0]!);
      const dir = mkdtempSync(join(tmpdir(), "vigil-promtool-"));
      try {
        const file = join(dir, "test.yaml");
        writeFileSync(file, stringify({
          rule_files: [repoPath(RULES)],
          evaluation_interval: "1m",
          tests: [{
            interval: "1m",
            input_series: series,
            promql_expr_test: [{
              // count by () turns "which series match" into exact 1s, free of float rounding.
              expr: `count by (${labels.join(", ")}) (${r.expr})`,
              eval_time: at ?? "10m",
              exp_samples: firing.map((l) => ({
                labels: `{${Object.entries(l).map(([k, v]) => `${k}="${v}"`).join(",")}}`,
                value: 1,
              })),
            }],
          }],
        }));
        const out = execFileSync(bin, ["test", "rules", file], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
        expect(out).toContain("SUCCESS");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
