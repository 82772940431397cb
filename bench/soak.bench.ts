// Soak: does Vigil's memory stay flat when new subjects arrive all the time? One real sidecar
// (`vigil serve`, its own process, embedded journal, default sweep intervals) is driven for a
// long time at half of its measured saturation, with:
// - signals with a short expiry (risk, 30 s) written continuously through the admin API for ever
//   new subjects, in batches, so expired ones must leave memory and the journal (store sweep);
// - Checks from ever-new callers, each with a new bearer credential (a new fingerprint per
//   request), 1 in 20 a privileged write that steps up and opens an approval, which expires
//   unanswered after approvals.pendingTtlMs and is forgotten past approvals.maxSettled
//   (approvals sweep).
// The sidecar's heap and RSS are read from its own /metrics (prom-client's default metrics) every
// ~10 s, right after a full collection the bench asks for (SIGUSR2 → bench/gc-on-signal.ts, a
// bench-only preload), so the heap figure is what is live; with the counts of what it holds. Saturation is measured first, briefly, by a
// closed-loop gRPC client with the same request mix (h2load cannot send a new caller per request).
//
// Run: npx tsx bench/soak.bench.ts [--minutes 10] [--saturate-seconds 10]   (also SOAK_MINUTES)
// Short dev run: npx tsx bench/soak.bench.ts --minutes 1

import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createEnvoyClient, type EnvoyClient, type EnvoyLikeRequest } from "../test/support/envoy-client.js";
import { startVigilProcess, type VigilProcess } from "../test/support/vigil-process.js";
import { numberArg, percentile, round, sortedCopy, type BenchResult } from "./lib.js";

/** Settings of the soaked sidecar beyond the defaults (said in the result). */
const SETTINGS = `# soak: approvals expire within the run and the settled ones are bounded low enough to be reached;
# behaviour baselines are capped at 10,000 callers (the default 50,000 cap would be reached only
# after the run; its full heap is measured by bench/caps.bench.ts).
approvals:
  pendingTtlMs: 30000
  maxSettled: 2000
behavior:
  maxCallers: 10000
`;

/** Callers of the soak: anything under ns/soak; reads allowed, writes step up. */
const SOAK_POLICY = `apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata:
  name: soak
spec:
  destinations: ["soak"]
  rules:
    - name: soak-read
      sources: ["spiffe://example.org/ns/soak/**"]
      methods: [GET]
      paths: ["/v1/items/*"]
      outcome: allow
    - name: soak-write
      privileged: true
      sources: ["spiffe://example.org/ns/soak/**"]
      methods: [POST]
      paths: ["/v1/items/*"]
      outcome: step_up
      reason: soak writes need a human
      stepUp:
        approvers: ["spiffe://example.org/ns/ops/sa/change-approver"]
        grantTtlSeconds: 60
        grantUses: 1
`;

const SIGNALS_PER_SECOND = 100;
const SIGNAL_BATCH = 20;
const SIGNAL_TTL_SECONDS = 30;
const SATURATION_CONCURRENCY = 32;
const MAX_IN_FLIGHT = 512;
const SAMPLE_EVERY_MS = 10_000;

let checkSeq = 0;
/** A new caller every 2 requests and a new credential every request; 1 in 20 steps up. */
function nextRequest(): EnvoyLikeRequest {
  const n = checkSeq++;
  const write = n % 20 === 19;
  return {
    sourcePrincipal: `spiffe://example.org/ns/soak/sa/c${String(n >> 1)}`,
    host: "soak",
    method: write ? "POST" : "GET",
    path: `/v1/items/${String(n % 1000)}`,
    authorization: `Bearer soak-${String(n)}-${(n * 2654435761 % 2 ** 32).toString(16)}`,
  };
}

interface Sample {
  t_s: number;
  heap_mb: number;
  rss_mb: number;
  signal_keys: number;
  approvals_pending: number;
  behavior_callers: number;
  swept_total: number;
}

function metric(text: string, name: string): number {
  let sum = 0;
  let found = false;
  for (const line of text.split("\n")) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) {
      sum += Number(line.slice(line.lastIndexOf(" ") + 1));
      found = true;
    }
  }
  return found ? sum : Number.NaN;
}

/** Samples the sidecar's /metrics right after a full collection (SIGUSR2, bench/gc-on-signal.ts). */
async function sample(vigil: VigilProcess, startedAt: number): Promise<Sample> {
  process.kill(vigil.pid, "SIGUSR2");
  await new Promise((resolve) => setTimeout(resolve, 250));
  const text = await (await fetch(`${vigil.httpUrl}/metrics`)).text();
  return {
    t_s: Math.round((Date.now() - startedAt) / 1000),
    heap_mb: round(metric(text, "vigil_nodejs_heap_size_used_bytes") / 2 ** 20, 1),
    rss_mb: round(metric(text, "vigil_process_resident_memory_bytes") / 2 ** 20, 1),
    signal_keys: metric(text, "vigil_signal_keys"),
    approvals_pending: metric(text, "vigil_approvals_pending"),
    behavior_callers: metric(text, "vigil_behavior_callers"),
    swept_total: metric(text, "vigil_signals_swept_total"),
  };
}

/** Closed loop: CONCURRENCY callers, each sends its next Check when the last one is answered. */
async function saturation(client: EnvoyClient, seconds: number): Promise<number> {
  const until = Date.now() + seconds * 1000;
  let done = 0;
  await Promise.all(Array.from({ length: SATURATION_CONCURRENCY }, async () => {
    while (Date.now() < until) {
      await client.check(nextRequest(), { deadlineMs: 5_000 });
      done++;
    }
  }));
  return done / seconds;
}

export interface SoakOptions { minutes: number; saturateSeconds: number }

export async function runSoakBench(options: SoakOptions): Promise<BenchResult> {
  const dir = mkdtempSync(join(tmpdir(), "vigil-soak-"));
  const policyDir = join(dir, "policies");
  mkdirSync(policyDir);
  for (const file of readdirSync("examples/policies")) {
    if (file.endsWith(".yaml")) copyFileSync(join("examples/policies", file), join(policyDir, file));
  }
  writeFileSync(join(policyDir, "soak.yaml"), SOAK_POLICY);
  const vigil = await startVigilProcess({
    dir, settings: SETTINGS, args: ["--policy", policyDir], nodeArgs: ["--expose-gc", "--import", "./bench/gc-on-signal.ts"],
  });
  const client = createEnvoyClient(vigil.grpcAddress);
  try {
    // Warm-up, then saturation.
    await saturation(client, 2);
    const saturatedRps = await saturation(client, options.saturateSeconds);
    const rate = saturatedRps / 2;

    const durationMs = options.minutes * 60_000;
    const startedAt = Date.now();
    const samples: Sample[] = [await sample(vigil, startedAt)];
    const latencies: number[] = [];
    const outcomes = new Map<string, number>();
    let sent = 0;
    let skipped = 0;
    let inFlight = 0;
    let errors = 0;
    let subjectsWritten = 0;
    let signalWriteFailures = 0;
    let subjectSeq = 0;

    const sendOne = (): void => {
      inFlight++;
      const t0 = performance.now();
      client.check(nextRequest(), { deadlineMs: 5_000 }).then((res) => {
        latencies.push(performance.now() - t0);
        const code = res.status?.code ?? 0;
        const key = code === 0 ? "allow" : String((JSON.parse(res.denied_response?.body ?? "{}") as { outcome?: string }).outcome);
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      }, () => { errors++; }).finally(() => { inFlight--; });
    };
    const checks = setInterval(() => {
      const due = Math.floor(((Date.now() - startedAt) / 1000) * rate) - sent - skipped;
      for (let i = 0; i < due; i++) {
        if (inFlight >= MAX_IN_FLIGHT) skipped++;
        else {
          sent++;
          sendOne();
        }
      }
    }, 10);

    let writing = Promise.resolve();
    const writer = setInterval(() => {
      writing = writing.then(async () => {
        const batch = Array.from({ length: SIGNAL_BATCH }, () => ({
          kind: "risk", subject: `spiffe://example.org/ns/soak/sa/s${String(subjectSeq++)}`,
          data: { level: subjectSeq % 7 === 0 ? "high" : "low", reason: "soak" }, expiresInSeconds: SIGNAL_TTL_SECONDS,
        }));
        try {
          const res = await vigil.admin("POST", "/v1/signals", batch);
          if (res.status === 201) subjectsWritten += batch.length;
          else signalWriteFailures += batch.length;
        } catch {
          signalWriteFailures += batch.length;
        }
      });
    }, (1000 * SIGNAL_BATCH) / SIGNALS_PER_SECOND);

    const sampler = setInterval(() => {
      void sample(vigil, startedAt).then((s) => {
        samples.push(s);
        process.stderr.write(`soak ${String(s.t_s)} s: heap ${String(s.heap_mb)} MB, rss ${String(s.rss_mb)} MB, keys ${String(s.signal_keys)}, pending approvals ${String(s.approvals_pending)}, callers ${String(s.behavior_callers)}, swept ${String(s.swept_total)}, checks ${String(sent)}\n`);
      }, () => { /* a missed sample is just missing */ });
    }, SAMPLE_EVERY_MS);

    await new Promise((resolve) => setTimeout(resolve, durationMs));
    clearInterval(checks);
    clearInterval(writer);
    clearInterval(sampler);
    await writing;
    while (inFlight > 0) await new Promise((resolve) => setTimeout(resolve, 10));
    const elapsedS = (Date.now() - startedAt) / 1000;
    samples.push(await sample(vigil, startedAt));

    const heap = samples.map((s) => s.heap_mb);
    const rss = samples.map((s) => s.rss_mb);
    // Flat means: what is held after the first quarter (signals, approvals and baselines have
    // reached their steady state by then) does not keep growing to the end.
    const quarter = (q: number): Sample[] => samples.filter((s) => s.t_s >= (q - 1) * elapsedS / 4 && s.t_s <= q * elapsedS / 4);
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
    const sorted = sortedCopy(latencies);
    const last = samples.at(-1);
    return {
      name: `soak: ${String(options.minutes)} min at half of saturation, new subjects all the time`,
      command: `npx tsx bench/soak.bench.ts --minutes ${String(options.minutes)} --saturate-seconds ${String(options.saturateSeconds)}`,
      figures: {
        saturation_checks_per_s: Math.round(saturatedRps),
        target_checks_per_s: Math.round(rate),
        achieved_checks_per_s: Math.round(sent / elapsedS),
        checks_sent: sent,
        checks_not_sent_client_behind: skipped,
        check_errors: errors,
        check_p50_ms: round(percentile(sorted, 50)),
        check_p99_ms: round(percentile(sorted, 99)),
        outcomes: [...outcomes].map(([k, v]) => `${k} ${String(v)}`).join(", "),
        callers_seen: checkSeq >> 1,
        subjects_written: subjectsWritten,
        signal_write_failures: signalWriteFailures,
        heap_start_mb: heap[0] ?? Number.NaN,
        heap_end_mb: heap.at(-1) ?? Number.NaN,
        heap_max_mb: Math.max(...heap),
        heap_mean_q2_mb: round(mean(quarter(2).map((s) => s.heap_mb)), 1),
        heap_mean_q4_mb: round(mean(quarter(4).map((s) => s.heap_mb)), 1),
        heap_min_q2_mb: Math.min(...quarter(2).map((s) => s.heap_mb)),
        heap_min_q4_mb: Math.min(...quarter(4).map((s) => s.heap_mb)),
        rss_start_mb: rss[0] ?? Number.NaN,
        rss_end_mb: rss.at(-1) ?? Number.NaN,
        rss_max_mb: Math.max(...rss),
        rss_mean_q2_mb: round(mean(quarter(2).map((s) => s.rss_mb)), 1),
        rss_mean_q4_mb: round(mean(quarter(4).map((s) => s.rss_mb)), 1),
        signal_keys_end: last?.signal_keys ?? Number.NaN,
        signal_keys_max: Math.max(...samples.map((s) => s.signal_keys)),
        signals_swept: last?.swept_total ?? Number.NaN,
        approvals_pending_end: last?.approvals_pending ?? Number.NaN,
        behavior_callers_end: last?.behavior_callers ?? Number.NaN,
      },
      notes: [
        `One \`vigil serve\` process (embedded journal, store.sweepIntervalMs and approvals.sweepIntervalMs at their defaults of 60 s and 30 s; approvals.pendingTtlMs 30 s, approvals.maxSettled 2,000, behavior.maxCallers 10,000), a soak policy for ns/soak/** on top of examples/policies. Load: ${String(SIGNALS_PER_SECOND)} risk signals/s for new subjects (expiresInSeconds ${String(SIGNAL_TTL_SECONDS)}, batches of ${String(SIGNAL_BATCH)} through POST /v1/signals); Checks open-loop at half the closed-loop saturation (${String(SATURATION_CONCURRENCY)} in flight), a new caller every 2 Checks, a new bearer credential every Check, 1 in 20 a privileged write that steps up. Heap (nodejs_heap_size_used_bytes) and RSS from the sidecar's /metrics every ${String(SAMPLE_EVERY_MS / 1000)} s, each right after a full collection (the sidecar runs with --expose-gc and a bench-only preload, bench/gc-on-signal.ts, that collects on SIGUSR2): heap is the live set.`,
        "",
        "| t (s) | heap MB | RSS MB | signal keys | pending approvals | behaviour callers | swept total |",
        "|---|---|---|---|---|---|---|",
        ...samples.filter((_, i) => i % Math.max(1, Math.floor(samples.length / 30)) === 0 || i === samples.length - 1)
          .map((s) => `| ${String(s.t_s)} | ${String(s.heap_mb)} | ${String(s.rss_mb)} | ${String(s.signal_keys)} | ${String(s.approvals_pending)} | ${String(s.behavior_callers)} | ${String(s.swept_total)} |`),
      ].join("\n"),
    };
  } finally {
    client.close();
    await vigil.signal("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1] ?? ""}`) {
  const arg = (name: string, fallback: number): number => {
    const value = numberArg(`--${name}`, fallback);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
    return value;
  };
  const minutes = arg("minutes", Number(process.env.SOAK_MINUTES ?? 10));
  process.stdout.write(`${JSON.stringify(await runSoakBench({ minutes, saturateSeconds: arg("saturate-seconds", 10) }), null, 2)}\n`);
}
