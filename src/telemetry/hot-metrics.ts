// Metrics recorded on the Check path. prom-client's labelled counter and histogram cost several
// hundred nanoseconds per call, and measurably more under load (hot-path.md); these record into
// plain arrays and are turned into Prometheus samples only when /metrics is scraped. They register
// in a prom-client Registry like any other metric, so exposition stays prom-client's.

import type { Registry } from "prom-client";

/** What prom-client's Registry reads from a registered metric at scrape time. */
interface Exposition {
  name: string;
  help: string;
  type: "counter" | "histogram";
  aggregator: "sum";
  values: { metricName?: string; labels: Record<string, string | number>; value: number }[];
}

/** A counter whose label takes one of a fixed set of values, known up front. */
export class HotLabeledCounter<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = "counter" as const;
  readonly aggregator = "sum" as const;
  readonly #label: string;
  readonly #values: readonly L[];
  readonly #counts: Float64Array;
  readonly #index: Map<string, number>;

  constructor(options: { name: string; help: string; label: string; values: readonly L[]; registers: Registry[] }) {
    this.name = options.name;
    this.help = options.help;
    this.#label = options.label;
    this.#values = options.values;
    this.#counts = new Float64Array(options.values.length);
    this.#index = new Map(options.values.map((v, i) => [v, i]));
    for (const registry of options.registers) registry.registerMetric(this as never);
  }

  inc(value: L, by = 1): void {
    const i = this.#index.get(value);
    if (i !== undefined) this.#counts[i] = (this.#counts[i] ?? 0) + by;
  }

  value(value: L): number {
    const i = this.#index.get(value);
    return i === undefined ? 0 : (this.#counts[i] ?? 0);
  }

  get(): Promise<Exposition> {
    return Promise.resolve({
      name: this.name, help: this.help, type: this.type, aggregator: this.aggregator,
      values: this.#values.map((v, i) => ({ labels: { [this.#label]: v }, value: this.#counts[i] ?? 0 })),
    });
  }
}

/** A histogram without labels, with fixed bucket bounds (seconds). */
export class HotHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = "histogram" as const;
  readonly aggregator = "sum" as const;
  readonly #bounds: Float64Array;
  /** One slot per bound plus +Inf; not cumulative (made cumulative at scrape). */
  readonly #counts: Float64Array;
  /**
   * [sum of observations, count]: unboxed. As number fields of this long-lived object, a
   * fractional sum boxed a new heap number on every observe (an old-to-new reference for the
   * scavenger to visit, per Check).
   */
  readonly #totals = new Float64Array(2);

  constructor(options: { name: string; help: string; buckets: readonly number[]; registers: Registry[] }) {
    this.name = options.name;
    this.help = options.help;
    this.#bounds = Float64Array.from([...options.buckets].sort((a, b) => a - b));
    this.#counts = new Float64Array(this.#bounds.length + 1);
    for (const registry of options.registers) registry.registerMetric(this as never);
  }

  observe(seconds: number): void {
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && seconds > (bounds[i] ?? Infinity)) i++;
    this.#counts[i] = (this.#counts[i] ?? 0) + 1;
    this.#totals[0] = (this.#totals[0] ?? 0) + seconds;
    this.#totals[1] = (this.#totals[1] ?? 0) + 1;
  }

  get count(): number {
    return this.#totals[1] ?? 0;
  }

  get(): Promise<Exposition> {
    const values: Exposition["values"] = [];
    let cumulative = 0;
    this.#bounds.forEach((bound, i) => {
      cumulative += this.#counts[i] ?? 0;
      values.push({ metricName: `${this.name}_bucket`, labels: { le: bound }, value: cumulative });
    });
    const [sum = 0, count = 0] = this.#totals;
    values.push({ metricName: `${this.name}_bucket`, labels: { le: "+Inf" }, value: count });
    values.push({ metricName: `${this.name}_sum`, labels: {}, value: sum });
    values.push({ metricName: `${this.name}_count`, labels: {}, value: count });
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }
}
