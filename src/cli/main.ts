#!/usr/bin/env node
// The `vigil` command: serve, check, validate, signal, approvals, fingerprint. Parses arguments,
// wires modules, maps errors to exit codes (0 ok, 1 the answer was "no"/invalid, 2 usage or
// runtime error). Everything it does goes through the same modules the server uses.

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { ApprovalBook } from "../approvals/index.js";
import { loadConfig, parseServeArgs, readTokensFile, DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT, PATH_APPROVALS, PATH_SIGNALS } from "../config/index.js";
import { createDecider, createDestinationResolver, Effects, requestView, signalsView } from "../decision/index.js";
import { VigilError } from "../errors/index.js";
import { createCallerResolver, fingerprintSecret } from "../identity/index.js";
import { compilePolicy, loadPolicyDir } from "../policy/index.js";
import { createEmbeddedStore, loadSignalsFile, subjectProblem } from "../signals/index.js";
import { createLogger, createMetrics } from "../telemetry/index.js";
import { accessRequestFromJson } from "./request-json.js";
import { startVigil } from "./serve.js";
import { createCheckClient, type CheckRequest } from "../transport/envoy/index.js";

const USAGE = `vigil — ext_authz sidecar deciding every non-human request at the moment it is made

usage:
  vigil serve [--policy DIR] [--signals FILE] [--grpc-port 9191] [--http-port 9192] [--journal FILE]
              [--grpc-socket /var/run/vigil/authz.sock]   (serve Check on a Unix socket, not TCP)
              [--journal-repair]   (start over a journal with corrupt records, dropping them)
              [--bus nats://127.0.0.1:4222] [--admin-tokens-file FILE] [--xfcc-trusted-hops N]
              [--ssf-issuer URL --ssf-jwks-file FILE] [--config settings.yaml] ...
              [--destination NAME | --destination-source host --destination-host HOST ...]
  vigil check --policy DIR [--signals FILE] [--now ISO-TIME] [--xfcc-trusted-hops N]
              [--destination NAME | --destination-source host --destination-host HOST ...] REQUEST.json|-
              (the destination is the request's context_extensions.destination, else --destination,
              else its destination.principal, as in vigil serve)
  vigil check --server 127.0.0.1:9191|unix:PATH REQUEST.json|-   (ask a running sidecar, as Envoy would)
  vigil validate --policy DIR
  vigil signal put --kind KIND --subject S --data JSON [--expires-in SECONDS]
  vigil signal get --subject S [--kind KIND]
  vigil signal reinstate --subject S --reason TEXT
  vigil approvals list [--status pending] | approve ID | deny ID
  vigil fingerprint            (reads a secret on stdin, prints its sha256 fingerprint)

admin commands (signal, approvals) talk to --url (default http://${DEFAULT_HTTP_HOST}:${DEFAULT_HTTP_PORT})
with the bearer token from --token-file or VIGIL_ADMIN_TOKEN. The server records who wrote a
signal (its source) from the token's name; a credential is named by its fingerprint, never itself.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "serve": return serve(rest);
    case "check": return check(rest);
    case "validate": return validate(rest);
    case "signal": return signal(rest);
    case "approvals": return approvalsCmd(rest);
    case "fingerprint": return fingerprint();
    case undefined: case "help": case "--help": case "-h":
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`unknown command "${command}"\n\n${USAGE}\n`);
      return 2;
  }
}

async function serve(argv: string[]): Promise<number> {
  const { values } = parseServeArgs(argv);
  const config = loadConfig(values, process.env);
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
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true, strict: true,
    options: {
      "policy": { type: "string" }, "signals": { type: "string" }, "now": { type: "string" },
      "xfcc-trusted-hops": { type: "string" }, "trust-domain": { type: "string", multiple: true },
      "server": { type: "string" }, "config": { type: "string" },
      "destination": { type: "string" }, "destination-source": { type: "string" }, "destination-host": { type: "string", multiple: true },
    },
  });
  const file = positionals[0];
  if (file === undefined) throw new VigilError("invalid_input", "check needs a request file (JSON CheckRequest) or - for stdin");
  if (values.server !== undefined) return checkRemote(values.server, readJsonFile(file));
  const nowMs = values.now !== undefined ? Date.parse(values.now) : Date.now();
  if (Number.isNaN(nowMs)) throw new VigilError("invalid_input", `--now is not a date: ${values.now ?? ""}`);
  const config = loadConfig({
    "policy": values.policy, "signals": values.signals, "xfcc-trusted-hops": values["xfcc-trusted-hops"],
    "trust-domain": values["trust-domain"], "journal": "", "config": values.config,
    "destination": values.destination, "destination-source": values["destination-source"], "destination-host": values["destination-host"],
  }, {});
  const logger = createLogger({ level: "silent", sync: true });
  const now = (): number => nowMs;
  const store = createEmbeddedStore({ ...config.store, journalPath: "" }, { logger, now });
  await store.ready();
  if (config.signalsFile !== "") for (const seed of await loadSignalsFile(config.signalsFile)) await store.put(seed);
  const { documents } = await loadPolicyDir(config.policyDir);
  const policy = compilePolicy(documents);
  const metrics = createMetrics({ defaultMetrics: false });
  const effects = new Effects({ store, logger, metrics });
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
    const res = await client.check(request);
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

async function validate(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, strict: true, options: { policy: { type: "string" } } });
  const dir = values.policy ?? "examples/policies";
  const { documents, files } = await loadPolicyDir(dir);
  const policy = compilePolicy(documents);
  process.stdout.write(`ok: ${dir}: ${files.length} file(s), ${documents.length} document(s), ${policy.ruleCount} rule(s), version ${policy.version}\n`);
  return 0;
}

interface AdminTarget { url: string; token: string }

function adminTarget(values: { "url"?: string; "token-file"?: string }): AdminTarget {
  const url = values.url ?? `http://${DEFAULT_HTTP_HOST}:${DEFAULT_HTTP_PORT}`;
  const token = values["token-file"] !== undefined ? (readTokensFile(values["token-file"])[0] ?? "").split(/\s+/)[0] ?? "" : process.env.VIGIL_ADMIN_TOKEN ?? "";
  if (token === "") throw new VigilError("unauthenticated", "no admin token: pass --token-file FILE or set VIGIL_ADMIN_TOKEN");
  return { url, token };
}

async function call(target: AdminTarget, method: string, path: string, body?: unknown): Promise<number> {
  const res = await fetch(new URL(path, target.url), {
    method,
    headers: { "authorization": `Bearer ${target.token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  (res.ok ? process.stdout : process.stderr).write(text.endsWith("\n") ? text : `${text}\n`);
  return res.ok ? 0 : 1;
}

const ADMIN_OPTIONS = { "url": { type: "string" }, "token-file": { type: "string" } } as const;

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

async function signal(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values } = parseArgs({
    args: rest, strict: true,
    options: {
      ...ADMIN_OPTIONS, "kind": { type: "string" }, "subject": { type: "string" }, "name": { type: "string" },
      "data": { type: "string" }, "source": { type: "string" }, "expires-in": { type: "string" }, "reason": { type: "string" },
    },
  });
  const subject = values.subject;
  if (subject === undefined) throw new VigilError("invalid_input", "--subject is required");
  switch (sub) {
    case "put": {
      if (values.kind === undefined || values.data === undefined) throw new VigilError("invalid_input", "signal put needs --kind and --data JSON");
      if (values.source !== undefined) {
        throw new VigilError("invalid_input", "--source is set by the server from the admin token's name; give the writer its own token instead");
      }
      if (values.name !== undefined) throw new VigilError("invalid_input", "--name: the admin API writes only unnamed signals (the ones decisions read)");
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
      const target = adminTarget(values);
      return call(target, "POST", PATH_SIGNALS, {
        kind: values.kind, subject, data,
        ...(expiresInSeconds !== undefined ? { expiresInSeconds } : {}),
      });
    }
    case "get":
      return values.kind !== undefined
        ? call(adminTarget(values), "GET", `${PATH_SIGNALS}/${encodeURIComponent(values.kind)}?subject=${encodeURIComponent(subject)}`)
        : call(adminTarget(values), "GET", `${PATH_SIGNALS}?subject=${encodeURIComponent(subject)}`);
    case "reinstate":
      if (values.reason === undefined || values.reason.trim() === "") throw new VigilError("invalid_input", "signal reinstate needs --reason (it is audited)");
      checkSubject("revocation", subject);
      return call(adminTarget(values), "POST", `${PATH_SIGNALS}/reinstate`, { subject, reason: values.reason });
    case undefined:
    default:
      throw new VigilError("invalid_input", "usage: vigil signal put|get|reinstate ...");
  }
}

async function approvalsCmd(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest, strict: true, allowPositionals: true, options: { ...ADMIN_OPTIONS, status: { type: "string" } },
  });
  const target = adminTarget(values);
  if (sub === "list") return call(target, "GET", `${PATH_APPROVALS}${values.status !== undefined ? `?status=${encodeURIComponent(values.status)}` : ""}`);
  const id = positionals[0];
  if ((sub === "approve" || sub === "deny") && id !== undefined) return call(target, "POST", `${PATH_APPROVALS}/${encodeURIComponent(id)}/${sub}`, {});
  throw new VigilError("invalid_input", "usage: vigil approvals list|approve ID|deny ID");
}

function fingerprint(): number {
  const secret = readFileSync(0, "utf8").replace(/\r?\n$/, "");
  if (secret === "") throw new VigilError("invalid_input", "fingerprint reads the secret on stdin; got nothing");
  process.stdout.write(`${fingerprintSecret(secret)}\n`);
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
