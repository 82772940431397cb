#!/usr/bin/env node
// The `vigil` command: serve, check, validate, signal, approvals, fingerprint, dev-tokens, reset.
// Parses arguments with the commands table (args.ts), wires modules, maps errors to exit codes (0 ok, 1 the answer was "no"/invalid, 2 usage or
// runtime error). Everything it does goes through the same modules the server uses.

import { existsSync, readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { ApprovalBook } from "../approvals/index.js";
import { loadConfig, readTokensFile, DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT, PATH_APPROVALS, PATH_SIGNALS } from "../config/index.js";
import { createDecider, createDestinationResolver, Effects, requestView, signalsView } from "../decision/index.js";
import { VigilError } from "../errors/index.js";
import { createCallerResolver, fingerprintSecret } from "../identity/index.js";
import { compilePolicy, loadPolicyDir } from "../policy/index.js";
import { createEmbeddedStore, loadSignalsFile, subjectProblem } from "../signals/index.js";
import { createLogger, createMetrics } from "../telemetry/index.js";
import { closest, COMMANDS, commandHelp, findCommand, mainHelp, parseCommand, type FlagValues } from "./args.js";
import { DEV_DIR, DEV_HOLDERS, ensureDevTokens, resetState } from "./dev.js";
import { accessRequestFromJson } from "./request-json.js";
import { startVigil } from "./serve.js";
import { createCheckClient, type CheckRequest } from "../transport/envoy/index.js";

/** Runs one command; `vigil CMD --help` prints that command's help. */
async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    const topic = command === "help" && rest.length > 0 ? findCommand(rest.join(" ")) ?? findCommand(rest[0] ?? "") : undefined;
    process.stdout.write(`${topic !== undefined ? commandHelp(topic) : mainHelp()}\n`);
    return command === undefined ? 2 : 0;
  }
  switch (command) {
    case "serve": return serve(rest);
    case "check": return check(rest);
    case "validate": return validate(rest);
    case "signal": return withSub("signal", rest, signal);
    case "approvals": return withSub("approvals", rest, approvalsCmd);
    case "fingerprint": return fingerprint(rest);
    case "dev-tokens": return devTokens(rest);
    case "reset": return reset(rest);
    default: {
      const guess = closest(command, [...new Set(COMMANDS.map((c) => c.name.split(" ")[0] ?? ""))]);
      process.stderr.write(`vigil: unknown command "${command}"${guess !== undefined ? ` (did you mean ${guess}?)` : ""}; see vigil --help\n`);
      return 2;
    }
  }
}

/**
 * Parses a command's flags with its entry in the commands table; prints its help and returns
 * undefined for --help.
 */
function parse(name: string, argv: readonly string[]): { values: FlagValues; positionals: string[] } | undefined {
  const spec = findCommand(name);
  if (spec === undefined) throw new VigilError("internal", `no command table entry for ${name}`);
  const parsed = parseCommand(spec, argv);
  if (parsed.help) {
    process.stdout.write(`${commandHelp(spec)}\n`);
    return undefined;
  }
  return parsed;
}

function string(values: FlagValues, name: string): string | undefined {
  const value = values[name];
  return typeof value === "string" ? value : undefined;
}

function strings(values: FlagValues, name: string): string[] | undefined {
  const value = values[name];
  return Array.isArray(value) ? value : undefined;
}

/** `vigil signal SUB …`, `vigil approvals SUB …`: the sub-command picks the table entry. */
function withSub(group: string, argv: readonly string[], run: (sub: string, values: FlagValues, positionals: string[]) => Promise<number>): Promise<number> {
  const [sub, ...rest] = argv;
  const subs = COMMANDS.filter((c) => c.name.startsWith(`${group} `)).map((c) => c.name.slice(group.length + 1));
  if (sub === undefined || sub === "--help" || sub === "-h" || !subs.includes(sub)) {
    const list = COMMANDS.filter((c) => c.name.startsWith(`${group} `)).map((c) => `  vigil ${c.name.padEnd(19)} ${c.summary}`).join("\n");
    if (sub === "--help" || sub === "-h") {
      process.stdout.write(`vigil ${group} — one of:\n${list}\n(vigil ${group} SUB --help for its flags)\n`);
      return Promise.resolve(0);
    }
    const guess = sub === undefined ? undefined : closest(sub, subs);
    throw new VigilError("invalid_input", `${sub === undefined ? `${group} needs one of ${subs.join(", ")}` : `${group}: unknown "${sub}"${guess !== undefined ? ` (did you mean ${guess}?)` : ""}`}; see vigil ${group} --help`);
  }
  const parsed = parse(`${group} ${sub}`, rest);
  return parsed === undefined ? Promise.resolve(0) : run(sub, parsed.values, parsed.positionals);
}

async function serve(argv: string[]): Promise<number> {
  const parsed = parse("serve", argv);
  if (parsed === undefined) return 0;
  const config = loadConfig(parsed.values, process.env);
  const vigil = await startVigil(config);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off("SIGTERM", stop);
      process.off("SIGINT", stop);
      resolve();
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  });
  await vigil.close();
  return 0;
}

async function check(argv: string[]): Promise<number> {
  const parsed = parse("check", argv);
  if (parsed === undefined) return 0;
  const { positionals } = parsed;
  const values = {
    policy: string(parsed.values, "policy"), signals: string(parsed.values, "signals"), now: string(parsed.values, "now"),
    server: string(parsed.values, "server"), config: string(parsed.values, "config"),
  };
  const file = positionals[0];
  if (file === undefined) throw new VigilError("invalid_input", "check needs a request file (JSON CheckRequest) or - for stdin; see vigil check --help");
  if (values.server !== undefined) {
    const offline = ["policy", "signals", "now", "config", "xfcc-trusted-hops", "trust-domain", "destination", "destination-source", "destination-host"]
      .filter((name) => parsed.values[name] !== undefined);
    if (offline.length > 0) {
      throw new VigilError("invalid_input", `check --server asks the running sidecar, which judges with its own policy, signals and clock: drop ${offline.map((n) => `--${n}`).join(", ")} (or drop --server to judge offline)`);
    }
    return checkRemote(values.server, readJsonFile(file));
  }
  if (values.policy === undefined && values.config === undefined) {
    throw new VigilError("invalid_input", "check needs --server ADDRESS (ask a running sidecar, e.g. 127.0.0.1:9191) or --policy DIR (judge offline, e.g. examples/policies, with --signals FILE for its signals); see vigil check --help");
  }
  const nowMs = values.now !== undefined ? Date.parse(values.now) : Date.now();
  if (Number.isNaN(nowMs)) throw new VigilError("invalid_input", `--now is not a date: ${values.now ?? ""}`);
  const config = loadConfig({
    "policy": values.policy, "signals": values.signals, "xfcc-trusted-hops": string(parsed.values, "xfcc-trusted-hops"),
    "trust-domain": strings(parsed.values, "trust-domain"), "journal": "", "config": values.config,
    "destination": string(parsed.values, "destination"), "destination-source": string(parsed.values, "destination-source"),
    "destination-host": strings(parsed.values, "destination-host"),
  }, {});
  const logger = createLogger({ level: "silent", sync: true });
  const now = (): number => nowMs;
  const store = createEmbeddedStore({ ...config.store, journalPath: "" }, { logger, now });
  await store.ready();
  if (config.signalsFile !== "") for (const seed of await loadSignalsFile(config.signalsFile)) await store.put(seed);
  const { documents } = await loadPolicyDir(config.policyDir);
  const policy = compilePolicy(documents);
  const metrics = createMetrics({ defaultMetrics: false });
  const effects = new Effects({ store, logger, metrics, hookUrl: "" });
  const approvals = new ApprovalBook({ store, now });
  const resolveCaller = createCallerResolver(config.identity);
  const decide = createDecider({ policy: () => policy, resolveCaller, store, approvals, effects, now, destination: config.destination });

  const request = accessRequestFromJson(readJsonFile(file), nowMs);
  const caller = resolveCaller({ principal: request.source.principal, certificate: request.source.certificate, headers: request.headers });
  // What the policy saw, read before deciding: a revoke decision queues a revocation that would
  // otherwise show up here as if it had been there already.
  const signals = signalsView(store, effects, caller, request.headers, nowMs);
  const destination = createDestinationResolver(config.destination)(request);
  const view = requestView(request, destination.name ?? "");
  const decision = decide(request);
  process.stdout.write(`${JSON.stringify({
    outcome: decision.outcome,
    rule: decision.rule,
    reason: decision.reason,
    retry_after_seconds: decision.retryAfterSeconds,
    approval_id: decision.approvalId,
    why: {
      caller: { spiffe_id: caller.spiffeId, identity_source: caller.source, credentials: caller.credentials.map((c) => c.fingerprint), problems: caller.problems },
      action: { destination: view.destination, destination_problem: destination.problem, method: view.method, path: view.path_only, grpc: view.grpc_service === "" ? "" : `${view.grpc_service}/${view.grpc_method}`, mcp_tool: view.mcp_tool, context: request.contextExtensions },
      signals,
      policy: { version: policy.version, rules: policy.ruleCount },
      now: new Date(nowMs).toISOString(),
    },
  }, null, 2)}\n`);
  await store.close();
  return decision.outcome === "allow" ? 0 : 1;
}

function readJsonFile(file: string): unknown {
  const text = file === "-" ? readFileSync(0, "utf8") : readFileSync(file, "utf8");
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new VigilError("invalid_input", `${file} is not valid JSON`, { cause });
  }
}

/** Sends the request to a running sidecar over gRPC, as Envoy would, and prints what Envoy would get. */
async function checkRemote(address: string, json: unknown): Promise<number> {
  const request = (typeof json === "object" && json !== null && "attributes" in json ? json : { attributes: json }) as CheckRequest;
  const client = createCheckClient(address);
  try {
    const res = await client.check(request).catch((err: unknown) => { throw checkCallError(address, err); });
    const allowed = (res.status?.code ?? 0) === 0;
    const headers = (list: readonly { header?: { key?: string; value?: string } | null }[] | undefined): Record<string, string> =>
      Object.fromEntries((list ?? []).map((h) => [h.header?.key ?? "", h.header?.value ?? ""]));
    const body = res.denied_response?.body ?? "";
    process.stdout.write(`${JSON.stringify(allowed
      ? {
        grpc_status: 0, allowed: true,
        upstream_headers_set: headers(res.ok_response?.headers),
        upstream_headers_removed: res.ok_response?.headers_to_remove ?? [],
      }
      : {
        grpc_status: res.status?.code, allowed: false,
        http_status: res.denied_response?.status?.code,
        client_headers: headers(res.denied_response?.headers),
        body: body === "" ? "" : JSON.parse(body) as unknown,
      }, null, 2)}\n`);
    return allowed ? 0 : 1;
  } finally {
    client.close();
  }
}

/** A failed Check call as a user can act on it: nobody there, no answer in time, or what gRPC said. */
function checkCallError(address: string, err: unknown): VigilError {
  const code = typeof err === "object" && err !== null && "code" in err ? err.code : undefined;
  if (code === grpc.status.UNAVAILABLE) {
    return new VigilError("unavailable", `cannot reach a Vigil Check service at ${address}: is \`vigil serve\` (npm start) running there? (gRPC UNAVAILABLE)`, { cause: err });
  }
  if (code === grpc.status.DEADLINE_EXCEEDED) return new VigilError("unavailable", `no answer from ${address} within 5 s (gRPC DEADLINE_EXCEEDED)`, { cause: err });
  return new VigilError("unavailable", `Check at ${address} failed: ${VigilError.from(err).message}`, { cause: err });
}

async function validate(argv: string[]): Promise<number> {
  const parsed = parse("validate", argv);
  if (parsed === undefined) return 0;
  const dir = string(parsed.values, "policy") ?? "examples/policies";
  const { documents, files } = await loadPolicyDir(dir);
  const policy = compilePolicy(documents);
  process.stdout.write(`ok: ${dir}: ${files.length} file(s), ${documents.length} document(s), ${policy.ruleCount} rule(s), version ${policy.version}\n`);
  return 0;
}

interface AdminTarget { url: string; token: string }

/** --url, else VIGIL_URL, else the default HTTP port on loopback. */
function adminUrl(values: FlagValues): URL {
  const given = string(values, "url") ?? (process.env.VIGIL_URL !== undefined && process.env.VIGIL_URL !== "" ? process.env.VIGIL_URL : undefined);
  const text = given ?? `http://${DEFAULT_HTTP_HOST}:${String(DEFAULT_HTTP_PORT)}`;
  try {
    const url = new URL(text);
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error("not http(s)");
    return url;
  } catch (cause) {
    throw new VigilError("invalid_input", `${string(values, "url") !== undefined ? "--url" : "VIGIL_URL"} is not an http(s) URL: ${text}`, { cause });
  }
}

function adminTarget(values: FlagValues): AdminTarget {
  const url = adminUrl(values);
  const tokenFile = string(values, "token-file");
  const token = tokenFile !== undefined ? (readTokensFile(tokenFile)[0] ?? "").split(/\s+/)[0] ?? "" : process.env.VIGIL_ADMIN_TOKEN ?? "";
  if (token === "") {
    const dev = DEV_HOLDERS.map((h) => `${DEV_DIR}/${h.file}`).filter((f) => existsSync(f));
    throw new VigilError("unauthenticated", `no admin token: pass --token-file FILE or set VIGIL_ADMIN_TOKEN${dev.length > 0 ? ` (npm start wrote ${dev.join(" and ")})` : ""}`);
  }
  return { url: url.href, token };
}

async function call(target: AdminTarget, method: string, path: string, body?: unknown): Promise<number> {
  const url = new URL(path, target.url);
  const res = await fetch(url, {
    method,
    headers: { "authorization": `Bearer ${target.token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  }).catch((err: unknown) => {
    // fetch says only "fetch failed"; the reason (ECONNREFUSED, ENOTFOUND…) is its cause.
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause : undefined;
    const why = cause !== undefined ? ("code" in cause && typeof cause.code === "string" ? cause.code : cause.message) : VigilError.from(err).message;
    throw new VigilError("unavailable", `cannot reach Vigil's admin API at ${url.origin} (${why}): is \`vigil serve\` (npm start) running? Point at another with --url or VIGIL_URL`, { cause: err });
  });
  const text = await res.text();
  (res.ok ? process.stdout : process.stderr).write(text.endsWith("\n") ? text : `${text}\n`);
  return res.ok ? 0 : 1;
}

/**
 * Refuses, before anything is sent, a credential or revocation subject that is neither a
 * fingerprint nor a SPIFFE ID: most likely the raw secret itself. The value is never printed.
 */
function checkSubject(kind: string, subject: string): void {
  if (kind !== "credential" && kind !== "revocation") return;
  // The server's rule for the subject (never quoted: it may be the secret itself).
  if (subjectProblem(kind, subject) === undefined) return;
  throw new VigilError(
    "invalid_input",
    `--subject for a ${kind} must be a credential fingerprint (sha256:<64 lower-case hex>)${kind === "revocation" ? " or a SPIFFE ID" : ""}; `
    + "the value given is neither (a raw key?) and was not sent. Compute the fingerprint with "
    + "`vigil fingerprint` (reads the secret on stdin) and pass that instead.",
  );
}

function signal(sub: string, flags: FlagValues): Promise<number> {
  const values = {
    kind: string(flags, "kind"), subject: string(flags, "subject"), data: string(flags, "data"),
    "expires-in": string(flags, "expires-in"), reason: string(flags, "reason"),
  };
  const subject = values.subject;
  if (subject === undefined) throw new VigilError("invalid_input", "--subject is required");
  switch (sub) {
    case "put": {
      if (values.kind === undefined || values.data === undefined) throw new VigilError("invalid_input", "signal put needs --kind and --data JSON");
      if (string(flags, "source") !== undefined) {
        throw new VigilError("invalid_input", "--source is set by the server from the admin token's name; give the writer its own token instead");
      }
      if (string(flags, "name") !== undefined) throw new VigilError("invalid_input", "--name: the admin API writes only unnamed signals (the ones decisions read)");
      checkSubject(values.kind, subject);
      let data: unknown;
      try {
        data = JSON.parse(values.data);
      } catch (cause) {
        throw new VigilError("invalid_input", "--data is not valid JSON", { cause });
      }
      let expiresInSeconds: number | undefined;
      if (values["expires-in"] !== undefined) {
        expiresInSeconds = Number(values["expires-in"]);
        if (!Number.isInteger(expiresInSeconds) || expiresInSeconds <= 0) throw new VigilError("invalid_input", "--expires-in must be a whole number of seconds > 0");
      }
      const target = adminTarget(flags);
      return call(target, "POST", PATH_SIGNALS, {
        kind: values.kind, subject, data,
        ...(expiresInSeconds !== undefined ? { expiresInSeconds } : {}),
      });
    }
    case "get":
      return values.kind !== undefined
        ? call(adminTarget(flags), "GET", `${PATH_SIGNALS}/${encodeURIComponent(values.kind)}?subject=${encodeURIComponent(subject)}`)
        : call(adminTarget(flags), "GET", `${PATH_SIGNALS}?subject=${encodeURIComponent(subject)}`);
    case "reinstate":
      if (values.reason === undefined || values.reason.trim() === "") throw new VigilError("invalid_input", "signal reinstate needs --reason (it is audited)");
      checkSubject("revocation", subject);
      return call(adminTarget(flags), "POST", `${PATH_SIGNALS}/reinstate`, { subject, reason: values.reason });
    default:
      throw new VigilError("invalid_input", "usage: vigil signal put|get|reinstate ...");
  }
}

function approvalsCmd(sub: string, values: FlagValues, positionals: string[]): Promise<number> {
  const target = adminTarget(values);
  const status = string(values, "status");
  if (sub === "list") return call(target, "GET", `${PATH_APPROVALS}${status !== undefined ? `?status=${encodeURIComponent(status)}` : ""}`);
  const id = positionals[0];
  if ((sub === "approve" || sub === "deny") && id !== undefined) return call(target, "POST", `${PATH_APPROVALS}/${encodeURIComponent(id)}/${sub}`, {});
  throw new VigilError("invalid_input", "usage: vigil approvals list|approve ID|deny ID");
}

function fingerprint(argv: string[]): number {
  if (parse("fingerprint", argv) === undefined) return 0;
  const secret = readFileSync(0, "utf8").replace(/\r?\n$/, "");
  if (secret === "") throw new VigilError("invalid_input", "fingerprint reads the secret on stdin; got nothing");
  process.stdout.write(`${fingerprintSecret(secret)}\n`);
  return 0;
}

function devTokens(argv: string[]): number {
  const parsed = parse("dev-tokens", argv);
  if (parsed === undefined) return 0;
  const { message } = ensureDevTokens(string(parsed.values, "dir") ?? DEV_DIR);
  // stderr: stdout stays free for what a script might read, and the message holds no secret.
  process.stderr.write(`${message}\n`);
  return 0;
}

async function reset(argv: string[]): Promise<number> {
  const parsed = parse("reset", argv);
  if (parsed === undefined) return 0;
  process.stderr.write(`${await resetState(string(parsed.values, "dir") ?? DEV_DIR, adminUrl(parsed.values))}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    const error = VigilError.from(err);
    process.stderr.write(`vigil: ${error.message}\n`);
    process.exitCode = 2;
  },
);
