// Mesh-wide fan-out (cluster mode): each sidecar sees only the requests to its own workload, so
// a caller sweeping across many services — the shape of lateral movement — is visible only when
// sidecars share what they saw. Each one puts, per caller and window, the destinations it saw the
// caller reach into a NATS KV bucket (`<prefix>-behavior`, values expire after three windows),
// watches the bucket, and judges fan-out on the union (BehaviorMonitor.remoteFanout).
//
// Off the hot path: publish runs from the monitor's drain, at most once per new destination per
// caller and window. Values read from the bus are checked like any input (SECURITY.md T16b): a
// bus client can only make a caller look as if it reached more destinations (a false fan-out, a
// step-up of its privileged actions, never an allow); during learning a forged value raises the
// caller's learned fan-out, which is why the bucket belongs behind the same NATS permissions as
// the signal bucket. Caps: 64 destinations per value, windows older than the previous one dropped,
// at most maxCallers × 2 caller windows held.

import { createHash, randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Kvm, KvWatchInclude, type KV } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { z } from "zod";
import type { StoreConfig } from "../config/index.js";
import { VigilError } from "../errors/index.js";
import { subjectProblem } from "../signals/index.js";
import { natsSecurityOptions } from "../signals/nats-connect.js";
import type { FanoutShare } from "./monitor.js";

const MAX_DESTINATIONS = 64;

const valueSchema = z.strictObject({
  caller: z.string().min(1).max(2048),
  window: z.number().int().nonnegative(),
  instance: z.string().regex(/^[a-f0-9]{16}$/),
  destinations: z.array(z.string().min(1).max(253)).max(MAX_DESTINATIONS),
});

export function behaviorBucketName(bucketPrefix: string): string {
  return `${bucketPrefix}-behavior`;
}

export interface MeshFanoutOptions {
  store: Pick<StoreConfig, "bus" | "busAuth" | "busTls" | "bucketPrefix" | "replicas">;
  windowMs: number;
  maxCallers: number;
  logger: Logger;
  now: () => number;
  /** Told when another sidecar's value for (caller, window) arrives. */
  onRemote: (caller: string, window: number) => void;
  /** Counts values refused from the bus (malformed, out of window). */
  onRefused?: () => void;
}

export class MeshFanout implements FanoutShare {
  readonly instance = randomBytes(8).toString("hex");
  readonly bucket: string;
  readonly #options: MeshFanoutOptions;
  /** `${caller}\u0000${window}` → instance → destinations that instance saw. */
  readonly #remote = new Map<string, Map<string, readonly string[]>>();
  #nc: NatsConnection | undefined;
  #kv: KV | undefined;
  #closed = false;
  #watching: Promise<void> = Promise.resolve();

  constructor(options: MeshFanoutOptions) {
    this.#options = options;
    this.bucket = behaviorBucketName(options.store.bucketPrefix);
  }

  /** Connects and opens (creating if needed) the bucket; rejects with VigilError("unavailable"). */
  async start(): Promise<void> {
    const { store } = this.#options;
    try {
      this.#nc = await connect({
        ...natsSecurityOptions(store),
        servers: store.bus.split(",").map((url) => url.trim()),
        name: `vigil-behavior-${this.instance}`,
        maxReconnectAttempts: -1,
        timeout: 5_000,
      });
      this.#kv = await new Kvm(this.#nc).create(this.bucket, {
        history: 1, storage: "memory", replicas: store.replicas, ttl: this.#options.windowMs * 3,
        description: "Vigil behaviour: destinations each sidecar saw each caller reach, per window",
      });
    } catch (err) {
      await this.#nc?.close().catch(() => undefined);
      throw new VigilError("unavailable", `cannot open the behaviour bucket ${this.bucket}: ${VigilError.from(err).message}`, { cause: err });
    }
    this.#watching = this.#watchLoop();
  }

  async #watchLoop(): Promise<void> {
    let include: KvWatchInclude = KvWatchInclude.LastValue;
    while (!this.#closed && this.#kv !== undefined) {
      try {
        const watcher = await this.#kv.watch({ key: "fanout.>", include });
        for await (const entry of watcher) {
          if (this.#stopped()) {
            watcher.stop();
            break;
          }
          if (entry.operation !== "PUT") continue;
          this.#apply(entry.string());
        }
      } catch (err) {
        if (!this.#stopped()) this.#options.logger.warn({ err: { message: VigilError.from(err).message }, bucket: this.bucket }, "behaviour watch failed; watching again");
      }
      include = KvWatchInclude.UpdatesOnly;
      if (!this.#stopped()) await sleep(500);
    }
  }

  /** Read through a method: TypeScript would otherwise keep a narrowing across awaits. */
  #stopped(): boolean {
    return this.#closed;
  }

  #apply(text: string): void {
    let value: z.infer<typeof valueSchema>;
    try {
      value = valueSchema.parse(JSON.parse(text));
    } catch {
      this.#options.onRefused?.();
      return;
    }
    if (value.instance === this.instance) return;
    const current = Math.floor(this.#options.now() / this.#options.windowMs);
    if (value.window < current - 1 || value.window > current + 1 || subjectProblem("behavior", value.caller) !== undefined) {
      this.#options.onRefused?.();
      return;
    }
    const key = `${value.caller}\u0000${String(value.window)}`;
    let byInstance = this.#remote.get(key);
    if (byInstance === undefined) {
      this.#prune(current);
      byInstance = new Map();
      this.#remote.set(key, byInstance);
    }
    // One value per instance, and a bounded number of instances per caller window.
    if (!byInstance.has(value.instance) && byInstance.size >= MAX_DESTINATIONS) {
      this.#options.onRefused?.();
      return;
    }
    byInstance.set(value.instance, value.destinations);
    this.#options.onRemote(value.caller, value.window);
  }

  /** Drops windows older than the previous one, then the oldest entries past the cap. */
  #prune(current: number): void {
    const cap = this.#options.maxCallers * 2;
    for (const key of this.#remote.keys()) {
      if (this.#remote.size < cap && Number(key.slice(key.lastIndexOf("\u0000") + 1)) >= current - 1) break;
      this.#remote.delete(key);
    }
  }

  publish(caller: string, window: number, destinations: readonly string[]): void {
    const kv = this.#kv;
    if (kv === undefined || this.#closed) return;
    const key = `fanout.${createHash("sha256").update(caller).digest("hex").slice(0, 32)}.${String(window)}.${this.instance}`;
    const value = JSON.stringify({ caller, window, instance: this.instance, destinations: destinations.slice(0, MAX_DESTINATIONS) });
    kv.put(key, value).catch((err: unknown) => {
      if (!this.#closed) this.#options.logger.warn({ err: { message: VigilError.from(err).message } }, "behaviour fan-out not shared");
    });
  }

  distinct(caller: string, window: number, local: ReadonlySet<string>): number {
    const byInstance = this.#remote.get(`${caller}\u0000${String(window)}`);
    if (byInstance === undefined) return local.size;
    const all = new Set(local);
    for (const destinations of byInstance.values()) for (const d of destinations) all.add(d);
    return all.size;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#nc?.close().catch(() => undefined);
    await this.#watching;
  }
}
