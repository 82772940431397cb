// `vigil test`: runs policy test documents (kind PolicyTest) against a policy directory. Each
// case is answered the way the sidecar answers Envoy: its request JSON becomes CheckRequest
// bytes, the real decoder reads them, the real pipeline judges them (caller, signals, policy,
// refusals, effects) and the real encoder writes the CheckResponse whose headers are compared.
// Every case gets a fresh in-memory signal store holding only its own signals, so cases cannot
// leak into each other. Exit codes: 0 every case passed, 1 a case failed, 2 unusable input.

import { writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { ApprovalBook } from "../approvals/index.js";
import { loadConfig } from "../config/index.js";
import type { Config } from "../config/index.js";
import { createPipeline, Effects } from "../decision/index.js";
import { VigilError } from "../errors/index.js";
import { createCallerResolver } from "../identity/index.js";
import { compilePolicy, loadPolicyDir } from "../policy/index.js";
import type { CompiledPolicy, PolicyDocument } from "../policy/index.js";
import { junitReport, loadPolicyTests, mismatches, textReport } from "../policy/testing/index.js";
import type { CaseResult, PolicyTestCase, PolicyTestDocument, TestRun } from "../policy/testing/index.js";
import { createEmbeddedStore, readSignalItem } from "../signals/index.js";
import type { Freshness, Signal, SignalStore } from "../signals/index.js";
import { createLogger, createMetrics } from "../telemetry/index.js";
import type { Metrics } from "../telemetry/index.js";
import { parseOrHelp, string } from "./args.js";
import { decodeCheckResponse, requestBytes } from "./envoy-json.js";
import { decodeCheckRequest, encodeCheckResponse } from "../transport/envoy/index.js";

/** The policy's rules as "<policy>/<rule>", in load order. */
function ruleIds(documents: readonly PolicyDocument[]): string[] {
  return documents.flatMap((d) => d.manifest.spec.rules.map((r) => `${d.manifest.metadata.name}/${r.name}`));
}

function signalsOf(items: readonly Record<string, unknown>[] | undefined, where: string): Signal[] {
  const signals: Signal[] = [];
  const problems: string[] = [];
  (items ?? []).forEach((item, index) => {
    const read = readSignalItem(item);
    if ("signal" in read) signals.push(read.signal);
    else problems.push(...read.problems.map((p) => `${where}[${index}]: ${p}`));
  });
  if (problems.length > 0) throw new VigilError("invalid_input", problems.join("; "));
  return signals;
}

/** The store as a sidecar cut off from its bus sees it: the same signals, reported stale. */
function staleView(store: SignalStore): SignalStore {
  return new Proxy(store, {
    get(target, property, receiver) {
      if (property === "freshness") {
        return (at: number): Freshness => ({ ...target.freshness(at), fresh: false });
      }
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

interface CaseContext {
  config: Config;
  policy: CompiledPolicy;
  metrics: Metrics;
  document: PolicyTestDocument;
}

/** Runs one case; a problem with the case's own input becomes its error, never a crash of the run. */
async function runCase(ctx: CaseContext, testCase: PolicyTestCase, index: number): Promise<CaseResult> {
  const { document, config, policy, metrics } = ctx;
  const base = { file: document.source.file, document: document.source.document, suite: document.manifest.metadata.name, name: testCase.name };
  const started = performance.now();
  const logger = createLogger({ level: "silent", sync: true });
  const nowMs = Date.parse(testCase.now ?? document.manifest.spec.now ?? "");
  const now = (): number => nowMs;
  const store = createEmbeddedStore({ ...config.store, journalPath: "" }, { logger, now });
  try {
    const signals = [
      ...signalsOf(document.manifest.spec.signals, "spec.signals"),
      ...signalsOf(testCase.signals, `spec.cases[${index}].signals`),
    ];
    const bytes = requestBytes(testCase.request, testCase.caller);
    await store.ready();
    for (const signal of signals) await store.put(signal);
    const effects = new Effects({ store, logger, metrics });
    const approvals = new ApprovalBook({ store, now });
    const pipeline = createPipeline({
      policy: () => policy, resolveCaller: createCallerResolver(config.identity), store: testCase.signalsFresh ? store : staleView(store),
      approvals, effects, now, destination: config.destination,
    });
    const request = decodeCheckRequest(bytes, config.grpc.maxHeaderBytes);
    request.receivedAt = nowMs;
    const judgement = pipeline.judge(request);
    const decision = judgement.decision;
    const answer = decodeCheckResponse(encodeCheckResponse(decision));
    await effects.close();
    const failures = mismatches(testCase.expect, {
      outcome: decision.outcome, rule: decision.rule, reason: decision.reason, headers: answer.headers, controls: decision.controls ?? [], shadow: decision.shadow,
    });
    // Coverage counts every rule the request matched, not only the one that decided.
    const exercised = new Set(decision.matched ?? []);
    if (judgement.input !== undefined && policy.explain !== undefined && decision.outcome === "allow") {
      for (const rule of policy.explain(judgement.input)) exercised.add(rule);
    }
    if (decision.rule !== "") exercised.add(decision.rule);
    return { ...base, failures, exercised: [...exercised], durationMs: performance.now() - started };
  } catch (error) {
    // The case's own input (request JSON, signals) is unusable: report it against the case.
    return { ...base, failures: [], error: VigilError.from(error).message, exercised: [], durationMs: performance.now() - started };
  } finally {
    await store.close();
  }
}

export async function runPolicyTests(argv: string[]): Promise<number> {
  const parsed = parseOrHelp("test", argv);
  if (parsed === undefined) return 0;
  const { values, positionals } = parsed;
  const dir = string(values, "policy");
  if (dir === undefined) throw new VigilError("invalid_input", "test needs --policy DIR (see vigil test --help)");
  const junit = string(values, "junit");
  const config = loadConfig({ "policy": dir, "journal": "", "config": string(values, "config") }, {});
  const { documents } = await loadPolicyDir(config.policyDir);
  const policy = compilePolicy(documents);
  const paths = positionals.length > 0 ? positionals : [dir, ...(existsSync(join(dir, "tests")) ? [join(dir, "tests")] : [])];
  const tests = await loadPolicyTests(paths);
  const metrics = createMetrics({ defaultMetrics: false });
  const cases: CaseResult[] = [];
  for (const document of tests.documents) {
    const ctx: CaseContext = { config, policy, metrics, document };
    for (const [index, testCase] of document.manifest.spec.cases.entries()) cases.push(await runCase(ctx, testCase, index));
  }
  const run: TestRun = { cases, rules: ruleIds(documents), policyVersion: policy.version };
  process.stdout.write(textReport(run));
  if (junit !== undefined) await writeFile(junit, junitReport(run));
  return cases.every((c) => c.failures.length === 0 && c.error === undefined) ? 0 : 1;
}
