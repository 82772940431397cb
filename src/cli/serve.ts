// Wires one Vigil instance: signal store, policy (hot-reloaded), decision pipeline, the Envoy
// gRPC server and the ops/admin HTTP server. `vigil serve` and the end-to-end tests use it.

import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { ApprovalBook, approvalsJournalPath, type ApprovalEvent, type ApprovalEventListener, LocalLedger, NatsLedger, SETTLED_RETENTION_MS, type ApprovalLedger } from "../approvals/index.js";
import { BehaviorMonitor, behaviorStatePath, MeshFanout, persistBaselines } from "../behavior/index.js";
import type { Config } from "../config/index.js";
import { createHeaderSelector, createPipeline, Effects } from "../decision/index.js";
import { VigilError } from "../errors/index.js";
import { createCallerResolver } from "../identity/index.js";
import { startNotifications, type Notifications } from "../notify/index.js";
import { NO_ENTITIES, watchEntitiesFile, watchPolicyDir, type CompiledPolicy, type EntityBook } from "../policy/index.js";
import { createSignalStore, JOURNAL_FAILURE_REASONS, loadSignalsFile, type EmbeddedSignalStore, type SignalStore } from "../signals/index.js";
import { describeBusSecurity } from "../signals/nats-connect.js";
import { createSsfReceiver } from "../signals/ssf/index.js";
import {
  counterFollower, createDecisionFeed, createDecisionLog, createLogger, createMetrics, flushLogger, loggerLineWriter,
  withDecisionFeed, type DecisionFeed, type Metrics,
} from "../telemetry/index.js";
import { createAuthzenRoutes } from "../transport/authzen/index.js";
import { startAuthzServer } from "../transport/envoy/index.js";
import { createConsole, CONSOLE_PREFIX, randomSessionKey } from "../transport/console/index.js";
import { AdminAuth, createAdminActions, startOpsServer, type MountedRoutes, type Readiness } from "../transport/http/index.js";

export interface Vigil {
  grpcPort: number;
  httpPort: number;
  store: SignalStore;
  approvals: ApprovalBook;
  effects: Effects;
  metrics: Metrics;
  /** The outbox and its notifier; undefined when no hook, CAEP receiver or approval webhook is configured. */
  notifications: Notifications | undefined;
  behavior: BehaviorMonitor;
  policy(): CompiledPolicy;
  readiness(): Readiness;
  close(): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  now?: () => number;
  /** Name of this instance in logs (defaults to hostname-less "vigil"). */
  instance?: string;
  /** How the outbox reaches receivers (tests, benchmarks); default global fetch. */
  fetchImpl?: typeof fetch;
  /** Hears each approval opened or settled, once cluster-wide (the notification outbox's hook). */
  onApprovalEvent?: ApprovalEventListener;
}

export async function startVigil(config: Config, options: StartOptions = {}): Promise<Vigil> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const now = options.now ?? Date.now;
  const metrics = createMetrics();
  const log = logger.child({ component: "serve" });
  const closers: (() => Promise<void>)[] = [];
  const closeAll = async (): Promise<void> => {
    for (const close of closers.reverse()) {
      try {
        await close();
      } catch (err) {
        log.error({ err }, "error while shutting down");
      }
    }
  };

  try {
    const storeLogger = logger.child({ component: "signals" });
    const store = createSignalStore(config.store, { logger: storeLogger, now, metrics, ...(options.instance === undefined ? {} : { name: options.instance }) });
    closers.push(() => store.close());
    const journaled = config.store.bus === "" && config.store.journalPath !== "" ? store as EmbeddedSignalStore : undefined;

    const policyLog = logger.child({ component: "policy" });
    let lastReloadOk = true;
    const watcher = await watchPolicyDir(config.policyDir, {
      onLoad: (policy, info) => {
        lastReloadOk = true;
        metrics.policyReloads.labels("success").inc();
        metrics.policyRules.set(policy.ruleCount);
        metrics.policyLastReloadSuccess.set(1);
        policyLog.info({ version: policy.version, rules: policy.ruleCount, ...info }, "policy loaded");
      },
      onError: (err) => {
        lastReloadOk = false;
        metrics.policyReloads.labels("failure").inc();
        metrics.policyLastReloadSuccess.set(0);
        policyLog.error({ err: { message: VigilError.from(err).message } }, "policy change refused; keeping the last good policy");
      },
    });
    closers.push(() => { watcher.close(); return Promise.resolve(); });

    await store.ready();
    if (config.signalsFile !== "") {
      const seeds = await loadSignalsFile(config.signalsFile);
      for (const seed of seeds) await store.put(seed);
      log.info({ file: config.signalsFile, signals: seeds.length }, "seed signals loaded");
    }

    // Started before anything can revoke, so no notice is missed; closed after the servers stop.
    const { transmitter, notifications } = await startNotifications(config, {
      logger, metrics, now,
      ...(options.instance === undefined ? {} : { instance: options.instance }),
      ...(options.fetchImpl === undefined ? {} : { fetchImpl: options.fetchImpl }),
    });
    if (notifications !== undefined) closers.push(() => notifications.close());
    const notifier = notifications?.notifier;

    // Approvals live beside the signals: the journal when embedded, the bus in cluster mode.
    const approvalsLog = logger.child({ component: "approvals" });
    const ledger: ApprovalLedger = config.store.bus === ""
      ? new LocalLedger({
        path: approvalsJournalPath(config.store.journalPath), logger: approvalsLog, now, compactAfterRecords: config.store.compactAfterRecords,
      })
      : new NatsLedger({
        config: config.store, logger: approvalsLog, now,
        ...(options.instance === undefined ? {} : { name: options.instance }),
        // Nothing outlives a pending request's TTL plus the day a settled one is kept.
        maxAgeMs: config.approvals.pendingTtlMs + SETTLED_RETENTION_MS,
        onRefused: (reason) => { metrics.approvalBusRefused.labels(reason).inc(); },
      });
    closers.push(() => ledger.close());
    await ledger.ready();
    const approvals = new ApprovalBook({
      store, ledger, now, ...config.approvals, logger: approvalsLog,
      ...(options.instance === undefined ? {} : { instance: options.instance }),
      onChange: (n) => { metrics.approvalsPending.set(n); },
      onRefused: (reason) => { metrics.approvalsRefused.labels(reason).inc(); },
      // Each opening and settling, once cluster-wide: to the approval webhooks (through the
      // outbox) and to whoever started this Vigil (tests).
      ...(options.onApprovalEvent === undefined && notifier === undefined ? {} : {
        onEvent: (event: ApprovalEvent) => {
          notifier?.approvalChanged(event);
          options.onApprovalEvent?.(event);
        },
      }),
    });
    closers.push(() => { approvals.close(); return Promise.resolve(); });
    const effects = new Effects({
      store, logger: logger.child({ component: "effects" }), metrics,
      maxPending: config.maxPendingRevocations,
      ...(notifier === undefined ? {} : {
        onRevoked: (effect) => {
          notifier.revocationChanged({
            change: "revoke", subject: effect.subject, target: effect.target, reason: effect.reason,
            eventId: effect.decisionId, caller: effect.caller, rule: effect.rule, by: `vigil:${effect.rule}`, at: effect.at,
          });
        },
      }),
    });
    closers.push(() => effects.close());

    let entities: () => EntityBook = () => NO_ENTITIES;
    if (config.entitiesFile !== "") {
      const entitiesLog = logger.child({ component: "entities" });
      const entitiesWatch = await watchEntitiesFile(config.entitiesFile, {
        onLoad: (book, initial) => {
          metrics.entitiesReloads.labels("success").inc();
          entitiesLog.info({ file: config.entitiesFile, ...book.size, initial }, "entities loaded");
        },
        onError: (err) => {
          metrics.entitiesReloads.labels("failure").inc();
          entitiesLog.error({ err: { message: err.message } }, "entities change refused; keeping the last good entities");
        },
      });
      closers.push(() => { entitiesWatch.close(); return Promise.resolve(); });
      entities = () => entitiesWatch.current();
    }

    const behavior = new BehaviorMonitor({
      config: config.behavior, store, logger: logger.child({ component: "behavior" }), metrics, now,
      ...(options.instance === undefined ? {} : { instance: options.instance }),
    });
    if (config.behavior.enabled && config.store.bus !== "") {
      // Cluster mode: fan-out is judged on what every sidecar saw (behavior/mesh.ts).
      const mesh = new MeshFanout({
        store: config.store, windowMs: config.behavior.windowMs, maxCallers: config.behavior.maxCallers,
        logger: logger.child({ component: "behavior" }), now,
        onRemote: (caller, window) => { behavior.remoteFanout(caller, window); },
        onRefused: () => { metrics.busValuesRefused.labels("behavior_value").inc(); },
      });
      await mesh.start();
      behavior.attachShare(mesh);
      closers.push(() => mesh.close());
    }
    const behaviorPath = config.behavior.enabled ? behaviorStatePath(config.behavior.statePath, config.store.journalPath) : "";
    if (behaviorPath !== "") {
      const persistence = await persistBaselines(behavior, {
        path: behaviorPath, intervalMs: config.behavior.persistIntervalMs, logger: logger.child({ component: "behavior" }), now,
      });
      closers.push(() => persistence.close());
    }
    // Closers run in reverse: the monitor drains and settles its writes before the file's last flush.
    closers.push(() => behavior.close());

    const loggedDecisions = createDecisionLog(logger.child({ component: "decision" }));
    if (loggedDecisions !== undefined) closers.push(() => loggedDecisions.close());
    // The console's live view gets every decision line; without the console the Check pays nothing for it.
    const feed: DecisionFeed | undefined = config.console.enabled ? createDecisionFeed() : undefined;
    const decisionLog = feed === undefined ? loggedDecisions : withDecisionFeed(loggedDecisions, feed);
    const pipeline = createPipeline({
      policy: () => watcher.current(),
      resolveCaller: createCallerResolver(config.identity),
      store, approvals, effects, metrics, now, decisionLog,
      destination: config.destination,
      entities: () => entities(),
      behavior,
      dryRun: config.dryRun,
      jsonRpc: { paths: new Set(config.mcp.paths), maxBatch: config.mcp.maxBatch, maxBodyBytes: config.mcp.maxBodyBytes },
    });
    metrics.dryRun.set(config.dryRun ? 1 : 0);
    if (config.dryRun) log.warn("dry run: every request is allowed, nothing is revoked and no approval opened; decision lines say what would have happened");

    const grpcLog = logger.child({ component: "grpc" });
    const grpc = await startAuthzServer({
      host: config.grpc.host,
      port: config.grpc.port,
      socket: config.grpc.socket,
      maxHeaderBytes: config.grpc.maxHeaderBytes,
      // Only the header values the phases and the current policy's conditions read are decoded.
      headers: createHeaderSelector(config.identity, () => watcher.current()),
      maxRequestBytes: config.grpc.maxRequestBytes,
      // judge, encode, then record: the decision line carries the id that went on the wire.
      judge: pipeline.judge,
      record: pipeline.record,
      onError: (err) => {
        metrics.checkErrors.labels("internal").inc();
        grpcLog.error({ err }, "decision failed; answered with a fail-closed deny");
      },
      onRefused: (refusal, decisionId) => {
        metrics.checkErrors.labels(refusal).inc();
        grpcLog.warn({ decision_id: decisionId, refusal }, "check answered with a denial before any decision");
      },
    });
    closers.push(() => grpc.close());
    grpcLog.info(config.grpc.socket !== ""
      ? { socket: config.grpc.socket }
      : { host: config.grpc.host, port: grpc.port }, "ext_authz gRPC listening");

    let draining = false;
    const readiness = (): Readiness => {
      const fresh = store.freshness(now());
      const checks = {
        ...(draining ? { shutdown: { ok: false, detail: "shutting down: draining before the listeners close" } } : {}),
        signals_synced: { ok: store.isReady, detail: store.isReady ? "initial sync done" : "initial sync pending" },
        signals_fresh: { ok: fresh.fresh, detail: `last heard ${Math.round(fresh.ageMs)} ms ago` },
        policy: { ok: true, detail: `${watcher.current().ruleCount} rules, version ${watcher.current().version}${lastReloadOk ? "" : " (last change refused)"}` },
        ...(journaled === undefined ? {} : { journal: journalCheck(journaled) }),
        revocations: effects.overflowed
          ? { ok: false, detail: `revocation backlog full since ${new Date(effects.overflowedAt ?? 0).toISOString()}; every identified request is denied until restart` }
          : { ok: true, detail: `${String(effects.pendingCount)} pending` },
      };
      return { ready: Object.values(checks).every((c) => c.ok), checks };
    };

    const ssf = config.ssf.issuer === "" ? undefined : createSsfReceiver({
      config: config.ssf, store, logger: logger.child({ component: "ssf" }), metrics, now,
    });
    if (ssf !== undefined) closers.push(() => { ssf.close(); return Promise.resolve(); });

    const follow = counterFollower();
    const lines = loggerLineWriter(logger);
    const refreshGauges = (): void => {
      if (journaled !== undefined) {
        const stats = journaled.journalStats();
        metrics.journalWritable.set(stats?.health.writable === false ? 0 : 1);
        metrics.journalCorruptRecords.set(journaled.recovery?.corrupt ?? 0);
        for (const reason of JOURNAL_FAILURE_REASONS) {
          follow(metrics.journalWriteFailures, stats?.writeFailures[reason] ?? 0, { reason });
        }
      }
      if (lines !== undefined) follow(metrics.logLinesDropped, lines.stats.dropped);
      const fresh = store.freshness(now());
      metrics.signalsFresh.set(fresh.fresh ? 1 : 0);
      metrics.signalsLastHeardAge.set(fresh.ageMs / 1000);
      metrics.signalSubjects.set(store.size());
      metrics.approvalsPending.set(approvals.pendingCount);
      const learned = behavior.summary();
      metrics.behaviorCallers.set(learned.callers);
      metrics.behaviorLearning.set(learned.learning);
    };
    const actions = createAdminActions({
      store, approvals, metrics, logger, now, maxClockSkewMs: config.store.maxClockSkewMs,
      // A lifted revocation is told to the CAEP receivers, from the admin API and the console alike.
      ...(notifier === undefined ? {} : {
        onReinstated: (r) => {
          notifier.revocationChanged({
            change: "reinstate", subject: r.subject, target: r.subject.startsWith("spiffe://") ? "identity" : "credential",
            reason: r.reason, eventId: r.eventId, caller: "", rule: "", by: r.by, at: r.at,
          });
        },
      }),
    });
    let mount: MountedRoutes | undefined;
    if (feed !== undefined) {
      const consoleLog = logger.child({ component: "console" });
      const web = createConsole({
        auth: new AdminAuth(config.http.adminTokens),
        actions, approvals, store, feed, logger, now,
        policy: () => watcher.current(),
        sessionKey: readSessionKey(config.console.sessionKeyFile),
        idleTimeoutMs: config.console.idleTimeoutSeconds * 1000,
        maxSessionMs: config.console.maxSessionSeconds * 1000,
        secureCookie: config.console.secureCookie,
        maxFailedSignInsPerMinute: config.console.maxFailedSignInsPerMinute,
      });
      closers.push(() => { web.close(); return Promise.resolve(); });
      mount = { prefix: CONSOLE_PREFIX, handle: (req, res, url) => web.handle(req, res, url) };
      if (config.http.adminTokens.length === 0) consoleLog.warn("the console is enabled but no admin tokens are configured: nobody can sign in");
      if (config.console.sessionKeyFile === "") consoleLog.warn("console sessions are signed with a per-process key: set console.sessionKeyFile (the same on every replica) so sessions survive restarts and work on any replica");
    }
    let httpPort = 0;
    const routes = createAuthzenRoutes({
      settings: config.authzen,
      pipeline,
      tokens: config.http.adminTokens,
      metrics, now,
      logger,
      baseUrl: () => (config.authzen.baseUrl !== "" ? config.authzen.baseUrl : `http://${config.http.host}:${String(httpPort)}`),
    });
    const http = await startOpsServer({
      routes,
      host: config.http.host,
      port: config.http.port,
      adminTokens: config.http.adminTokens,
      maxClockSkewMs: config.store.maxClockSkewMs,
      registry: metrics.registry,
      beforeScrape: refreshGauges,
      metrics, store, approvals, readiness, ssf, logger, now, behavior, actions,
      ...(mount === undefined ? {} : { mount }),
      ...(transmitter === undefined ? {} : { transmitter }),
    });
    closers.push(() => http.close());
    httpPort = http.port;

    grpc.setServing(true);
    log.info({
      grpc_port: grpc.port, ...(config.grpc.socket !== "" ? { grpc_socket: config.grpc.socket } : {}),
      http_port: http.port, mode: config.store.bus !== "" ? "cluster" : "embedded",
      // Which bus credentials and TLS are in use (methods only, never a secret).
      ...(config.store.bus === "" ? {} : { bus_security: describeBusSecurity(config.store) }),
    }, "vigil ready");

    return {
      grpcPort: grpc.port,
      httpPort: http.port,
      store, approvals, effects, metrics, notifications, behavior,
      policy: () => watcher.current(),
      readiness,
      close: async () => {
        // Health NOT_SERVING and /readyz 503 first; keep answering while Envoy and Kubernetes
        // notice, then stop listening (Checks in flight finish: grpc tryShutdown).
        grpc.setServing(false);
        draining = true;
        if (config.shutdownDrainMs > 0) {
          log.info({ drain_ms: config.shutdownDrainMs }, "shutting down: health NOT_SERVING, draining");
          await sleep(config.shutdownDrainMs);
        }
        await closeAll();
        await flushLogger(logger);
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/**
 * The console's session key: the file's bytes (a mounted Secret, at least 32), or a random key
 * for this process when no file is set. The key is never logged.
 */
function readSessionKey(file: string): Buffer {
  if (file === "") return randomSessionKey();
  let key: Buffer;
  try {
    key = readFileSync(file);
  } catch (cause) {
    throw new VigilError("invalid_input", `cannot read the console session key file ${file}`, { cause });
  }
  const trimmed = Buffer.from(key.toString("utf8").trim(), "utf8");
  if (trimmed.length < 32) throw new VigilError("invalid_input", `the console session key file ${file} must hold at least 32 bytes (e.g. openssl rand -base64 48)`);
  return trimmed;
}

/**
 * The journal's line in /readyz. A disk that refuses writes makes the sidecar not ready, as stale
 * signals do: it can no longer take new signals (a revocation among them). Checks are still
 * answered from memory meanwhile; the detail says why and since when.
 */
function journalCheck(store: EmbeddedSignalStore): { ok: boolean; detail: string } {
  const health = store.journalHealth();
  const recovery = store.recovery;
  const repaired = recovery !== undefined && recovery.corrupt > 0
    ? `; repaired at start: ${String(recovery.corrupt)} corrupt record(s) dropped`
    : "";
  if (health === undefined) return { ok: false, detail: "journal: not open yet" };
  if (health.writable) return { ok: true, detail: `journal: writable${repaired}` };
  const since = health.since === undefined ? "" : ` since ${new Date(health.since).toISOString()}`;
  return {
    ok: false,
    detail: `journal: ${health.code ?? "unknown"}${since}; signal writes refused (503), decisions go on from memory${repaired}`,
  };
}
