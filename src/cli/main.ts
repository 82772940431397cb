#!/usr/bin/env node
// The `vigil` command: serve, check, validate, signal, approvals, behavior, fingerprint, dev-tokens, reset.
// Parses arguments with the commands table (args.ts), wires modules, maps errors to exit codes (0 ok, 1 the answer was "no"/invalid, 2 usage or
// runtime error). Everything it does goes through the same modules the server uses.

import { existsSync, readFileSync } from "node:fs";
import { loadConfig, readTokensFile, DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT, PATH_APPROVALS, PATH_BEHAVIOR, PATH_SIGNALS } from "../config/index.js";
import { VigilError } from "../errors/index.js";
import { fingerprintSecret } from "../identity/index.js";
import { compilePolicy, loadPolicyDir } from "../policy/index.js";
import { subjectProblem } from "../signals/index.js";
import { closest, COMMANDS, commandHelp, findCommand, mainHelp, parseOrHelp, string, type FlagValues } from "./args.js";
import { check } from "./check.js";
import { DEV_DIR, DEV_HOLDERS, ensureDevTokens, resetState } from "./dev.js";
import { startVigil } from "./serve.js";
import { runPolicyTests } from "./test.js";
import { evidence } from "./evidence.js";

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
    case "test": return runPolicyTests(rest);
    case "evidence": return evidence(rest);
    case "signal": return withSub("signal", rest, signal);
    case "approvals": return withSub("approvals", rest, approvalsCmd);
    case "behavior": return withSub("behavior", rest, behaviorCmd);
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
  const parsed = parseOrHelp(`${group} ${sub}`, rest);
  return parsed === undefined ? Promise.resolve(0) : run(sub, parsed.values, parsed.positionals);
}

async function serve(argv: string[]): Promise<number> {
  const parsed = parseOrHelp("serve", argv);
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

async function validate(argv: string[]): Promise<number> {
  const parsed = parseOrHelp("validate", argv);
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

function behaviorCmd(sub: string, values: FlagValues, positionals: string[]): Promise<number> {
  const target = adminTarget(values);
  const caller = positionals[0];
  if (positionals.length > 1) throw new VigilError("invalid_input", `behavior ${sub} takes one CALLER (quote a label with spaces after --action)`);
  if (sub === "show") {
    return call(target, "GET", caller === undefined ? PATH_BEHAVIOR : `${PATH_BEHAVIOR}?caller=${encodeURIComponent(caller)}`);
  }
  if (sub === "accept" && caller !== undefined) {
    if (subjectProblem("behavior", caller) !== undefined) throw new VigilError("invalid_input", "CALLER must be a workload SPIFFE ID (spiffe://trust-domain/path)");
    const actions = values.action;
    const networks = values.network;
    return call(target, "POST", `${PATH_BEHAVIOR}/accept`, {
      caller,
      ...(Array.isArray(actions) ? { actions } : {}),
      ...(Array.isArray(networks) ? { networks } : {}),
    });
  }
  throw new VigilError("invalid_input", "usage: vigil behavior show [CALLER] | accept CALLER [--action LABEL]… [--network CIDR]…");
}

function fingerprint(argv: string[]): number {
  if (parseOrHelp("fingerprint", argv) === undefined) return 0;
  const secret = readFileSync(0, "utf8").replace(/\r?\n$/, "");
  if (secret === "") throw new VigilError("invalid_input", "fingerprint reads the secret on stdin; got nothing");
  process.stdout.write(`${fingerprintSecret(secret)}\n`);
  return 0;
}

function devTokens(argv: string[]): number {
  const parsed = parseOrHelp("dev-tokens", argv);
  if (parsed === undefined) return 0;
  const { message } = ensureDevTokens(string(parsed.values, "dir") ?? DEV_DIR);
  // stderr: stdout stays free for what a script might read, and the message holds no secret.
  process.stderr.write(`${message}\n`);
  return 0;
}

async function reset(argv: string[]): Promise<number> {
  const parsed = parseOrHelp("reset", argv);
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
