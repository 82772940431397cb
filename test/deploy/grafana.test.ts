// deploy/grafana/vigil-dashboard.json: a well-formed Grafana dashboard whose every query asks for
// series Vigil actually exposes.

import { beforeAll, describe, expect, it } from "vitest";
import { listExposedMetricNames } from "./exposed-metrics.js";
import { metricNames } from "./promql.js";
import { readRepoFile } from "./repo.js";

interface Target { refId: string; expr: string; datasource?: { uid?: string } }
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
}
interface Dashboard {
  title: string;
  uid: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: unknown; definition?: string }[] };
}

const dashboard = JSON.parse(readRepoFile("deploy/grafana/vigil-dashboard.json")) as Dashboard;
const queryPanels = dashboard.panels.filter((p) => p.type !== "row");
const expressions = queryPanels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

let exposed: Set<string>;
beforeAll(async () => {
  exposed = await listExposedMetricNames();
});

describe("PromQL metric-name extraction", () => {
  it("finds series names and ignores functions, labels, ranges and variables", () => {
    expect(metricNames('histogram_quantile(0.99, sum by (le) (rate(a_bucket{instance=~"$instance",le="0.05"}[$__rate_interval])))')).toEqual(["a_bucket"]);
    expect(metricNames("sum(rate(b_total[5m])) / clamp_min(sum(rate(c_total[5m])), 1e-9) > 0.01")).toEqual(["b_total", "c_total"]);
    expect(metricNames("(x > 0) unless on (pod) (y == 0)")).toEqual(["x", "y"]);
    expect(metricNames("label_values(vigil_decisions_total, instance)")).toEqual(["vigil_decisions_total"]);
  });
});

describe("deploy/grafana/vigil-dashboard.json", () => {
  it("is a dashboard with a stable uid, unique panel ids and panels inside the 24-column grid", () => {
    expect(dashboard.title).toBe("Vigil");
    expect(dashboard.uid).toMatch(/^[a-z0-9-]{1,40}$/);
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels) {
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
      expect(p.gridPos.h, p.title).toBeGreaterThan(0);
    }
  });

  it("queries through the selectable Prometheus data source", () => {
    expect(dashboard.templating.list.find((v) => v.name === "datasource")?.type).toBe("datasource");
    for (const p of queryPanels) {
      expect(p.datasource?.uid, p.title).toBe("${datasource}");
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets ?? []) expect(t.expr, p.title).toMatch(/\S/);
    }
  });

  it("uses only metric names Vigil exposes", () => {
    const variables = dashboard.templating.list.flatMap((v) => typeof v.definition === "string" ? [{ panel: `$${v.name}`, expr: v.definition }] : []);
    const unknown = [...expressions, ...variables].flatMap(({ panel, expr }) =>
      metricNames(expr).filter((name) => !exposed.has(name)).map((name) => `${panel}: ${name}`));
    expect(unknown).toEqual([]);
  });

  it("shows would-be refusals of shadow rules and the dry run next to real ones in the Policy rollout row (panels 100-109)", () => {
    const rollout = expressions.filter(({ panel }) => /would-be refusals next to real ones/i.test(panel)).map(({ expr }) => expr).join("\n");
    for (const name of ["vigil_decisions_total", "vigil_shadow_decisions_total", "vigil_dry_run_decisions_total"]) expect(rollout).toContain(name);
    const used = new Set(expressions.flatMap(({ expr }) => metricNames(expr)));
    expect([...used]).toEqual(expect.arrayContaining(["vigil_dry_run"]));
  });

  it("shows decisions, latency, signal freshness, policy reloads, approvals, SSF, revocations and check errors", () => {
    const used = new Set(expressions.flatMap(({ expr }) => metricNames(expr)));
    expect([...used]).toEqual(expect.arrayContaining([
      "vigil_decisions_total",
      "vigil_decision_duration_seconds_bucket",
      "vigil_signals_fresh",
      "vigil_signals_last_heard_age_seconds",
      "vigil_policy_reloads_total",
      "vigil_policy_last_reload_success",
      "vigil_approvals_pending",
      "vigil_ssf_events_total",
      "vigil_revocations_total",
      "vigil_check_errors_total",
    ]));
    const latency = expressions.filter(({ expr }) => expr.includes("vigil_decision_duration_seconds_bucket")).map(({ expr }) => expr).join("\n");
    expect(latency).toContain("histogram_quantile(0.5,");
    expect(latency).toContain("histogram_quantile(0.99,");
  });
});
