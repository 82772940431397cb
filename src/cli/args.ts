// The `vigil` commands as a table: each command's flags with their help, one parser for all of
// them. `--help` / `-h` works on every command, an unknown or misspelt flag is refused with the
// closest known one, and `vigil --help` is generated from the same table, so no flag can exist
// without being listed (SERVE_FLAGS' help is typed against SERVE_FLAGS: a new serve flag without
// help text does not compile).

import { parseArgs } from "node:util";
import { DEFAULT_GRPC_HOST, DEFAULT_GRPC_PORT, DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT, SERVE_FLAGS } from "../config/index.js";
import { VigilError } from "../errors/index.js";

export interface FlagSpec {
  readonly type: "string" | "boolean";
  readonly multiple?: boolean;
  /** What the value looks like in help (`DIR`, `FILE`, `N`…); absent for booleans. */
  readonly value?: string;
  readonly help: string;
}

export type FlagTable = Readonly<Record<string, FlagSpec>>;

export interface CommandSpec {
  /** `serve`, `signal put`, … */
  readonly name: string;
  readonly summary: string;
  /** The positional arguments as shown in the usage line (`REQUEST.json|-`, `ID`), if any. */
  readonly positionals?: string;
  readonly flags: FlagTable;
  /** Lines printed after the flags in `vigil CMD --help`. */
  readonly notes?: readonly string[];
}

type ServeFlag = keyof typeof SERVE_FLAGS;

const SERVE_HELP: Readonly<Record<ServeFlag, Omit<FlagSpec, "type" | "multiple">>> = {
  "config": { value: "FILE", help: "YAML settings file (one schema with the flags; flags win). Also VIGIL_CONFIG" },
  "policy": { value: "DIR", help: "policy directory, watched and reloaded (default examples/policies)" },
  "signals": { value: "FILE", help: "YAML file of seed signals loaded at start" },
  "grpc-host": { value: "HOST", help: `address Check and gRPC health listen on (default ${DEFAULT_GRPC_HOST})` },
  "grpc-port": { value: "PORT", help: `port of Check and gRPC health (default ${String(DEFAULT_GRPC_PORT)})` },
  "grpc-socket": { value: "PATH", help: "serve Check on a 0660 Unix socket instead of TCP (e.g. /var/run/vigil/authz.sock)" },
  "http-host": { value: "HOST", help: `address of the HTTP port: metrics, health, admin API, SSF (default ${DEFAULT_HTTP_HOST})` },
  "http-port": { value: "PORT", help: `HTTP port (default ${String(DEFAULT_HTTP_PORT)})` },
  "journal": { value: "FILE", help: "embedded store's fsync'd journal (default .vigil/journal.jsonl; \"\" = memory only)" },
  "dry-run": { help: "first rollout: allow every request, revoke nothing, open no approval; decision lines say what would have happened (never leave on)" },
  "journal-repair": { help: "start over a journal with corrupt records, dropping them (a copy is kept beside it)" },
  "bus": { value: "URL", help: "NATS JetStream for cluster mode, e.g. nats://127.0.0.1:4222 (also VIGIL_BUS); never with credentials" },
  "bucket-prefix": { value: "NAME", help: "prefix of the NATS KV buckets (default vigil)" },
  "bus-replicas": { value: "N", help: "replicas of each bucket, 1-5 (default 1)" },
  "bus-user": { value: "NAME", help: "NATS user (with --bus-password-file)" },
  "bus-password-file": { value: "FILE", help: "file holding the NATS password (re-read on reconnect)" },
  "bus-token-file": { value: "FILE", help: "file holding a NATS token" },
  "bus-nkey-file": { value: "FILE", help: "file holding a NATS NKey seed" },
  "bus-creds-file": { value: "FILE", help: "NATS creds file (JWT + seed)" },
  "bus-tls-ca": { value: "FILE", help: "CA that verifies the NATS server (TLS)" },
  "bus-tls-cert": { value: "FILE", help: "client certificate for NATS (with --bus-tls-key)" },
  "bus-tls-key": { value: "FILE", help: "client key for NATS (with --bus-tls-cert)" },
  "freshness-bound-ms": { value: "MS", help: "past this long without hearing from the bus, signals are stale (default 5000)" },
  "admin-tokens-file": { value: "FILE", help: "admin API tokens, `TOKEN NAME [SCOPES]` per line (also VIGIL_ADMIN_TOKENS); none = every /v1 call is 401" },
  "xfcc-trusted-hops": { value: "N", help: "trusted proxy hops writing x-forwarded-client-cert (default 0: never believed)" },
  "trust-domain": { value: "DOMAIN", help: "accept SPIFFE IDs of this trust domain only (repeatable; default any)" },
  "destination": { value: "NAME", help: "the workload this Vigil guards, when routes carry no context_extensions" },
  "destination-source": { value: "SOURCE", help: "where the destination comes from: workload or host" },
  "destination-host": { value: "HOST", help: "a Host accepted as a destination with --destination-source host (repeatable)" },
  "ssf-issuer": { value: "URL", help: "expected issuer of SSF/CAEP events pushed to /ssf/events (empty: receiver off)" },
  "ssf-audience": { value: "AUD", help: "our audience in pushed SETs (repeatable; default vigil)" },
  "ssf-jwks-file": { value: "FILE", help: "the transmitter's public keys (JWKS)" },
  "ssf-jwks-url": { value: "URL", help: "the transmitter's JWKS URL" },
  "ssf-push-tokens-file": { value: "FILE", help: "bearer tokens the transmitter must present, one per line (also VIGIL_SSF_PUSH_TOKENS)" },
  "revocation-hook-url": { value: "URL", help: "webhook told of every revocation Vigil makes (sent from the durable outbox)" },
  "outbox": { value: "FILE", help: "embedded outbox file (default outbox.jsonl beside the journal); cluster mode uses the <prefix>_outbox stream" },
  "transmitter-issuer": { value: "URL", help: "CAEP transmitter on: iss of the SETs Vigil sends, and where receivers find /.well-known/jwks.json" },
  "transmitter-key-file": { value: "FILE", help: "the transmitter's private signing key (PKCS#8 PEM or JWK; RSA 2048+, EC P-256/384, Ed25519)" },
  "approval-webhook-url": { value: "URL", help: "webhook told when an approval opens or is decided (CloudEvents, HMAC-signed)" },
  "approval-webhook-secret-file": { value: "FILE", help: "HMAC secret of --approval-webhook-url (whsec_… or 16+ bytes of text)" },
  "console-url": { value: "URL", help: "base URL of the console, for console_url in approval notifications" },
  "shutdown-drain-ms": { value: "MS", help: "on SIGTERM, answer NOT_SERVING this long before closing, so Envoy and Kubernetes stop sending (default 5000)" },
  "console": { help: "serve the web console for approvers and SREs under /console on the HTTP port (sign in with an admin token)" },
  "console-session-key-file": { value: "FILE", help: "key (32+ bytes) signing console sessions; the same file on every replica" },
  "log-level": { value: "LEVEL", help: "trace, debug, info, warn, error, silent (default info; also VIGIL_LOG_LEVEL)" },
  "no-behavior": { help: "learn no behaviour baselines and report no anomalies (behavior.enabled: false)" },
  "behavior-learning-ms": { value: "MS", help: "how long each caller is learned before its baseline is enforced (default 604800000, 7 days)" },
  "behavior-state": { value: "FILE", help: "where baselines are kept across restarts (default behavior.json beside --journal)" },
  "behavior-exclude-caller": { value: "SPIFFE_ID", help: "a caller never learned nor reported; \"…/ns/x/**\" for a namespace (repeatable)" },
  "entities": { value: "FILE", help: "users and records (kind Entities) policies see as subject.roles/attributes, resource.attributes; watched and reloaded" },
  "mcp-path": { value: "PATH", help: "an MCP endpoint path, e.g. /mcp (repeatable; or the route's context extension protocol: mcp): bodies must be JSON-RPC" },
  "authzen-destination": { value: "NAME", help: "the destination AuthZEN evaluations (POST /access/v1/evaluation) are judged under (default authzen)" },
};

const SERVE_TABLE: FlagTable = Object.fromEntries((Object.keys(SERVE_FLAGS) as ServeFlag[]).map((name) => {
  const flag: { type: "string" | "boolean"; multiple?: boolean } = SERVE_FLAGS[name];
  return [name, { type: flag.type, ...(flag.multiple === true ? { multiple: true } : {}), ...SERVE_HELP[name] }];
}));

const DEFAULT_ADMIN_URL = `http://${DEFAULT_HTTP_HOST}:${String(DEFAULT_HTTP_PORT)}`;

/** The flags of every admin command (signal, approvals, behavior). */
export const ADMIN_FLAGS: FlagTable = {
  "url": { type: "string", value: "URL", help: `Vigil's HTTP port (default $VIGIL_URL, else ${DEFAULT_ADMIN_URL})` },
  "token-file": { type: "string", value: "FILE", help: "file whose first word is the admin token (default $VIGIL_ADMIN_TOKEN); `npm start` writes .vigil/operator.token and .vigil/approver.token" },
};

const ADMIN_NOTES = [
  "The server records who wrote (the signal's source, an approval's approver) from the token's NAME.",
];

function pick(names: readonly ServeFlag[]): FlagTable {
  const table: Record<string, FlagSpec> = {};
  for (const name of names) {
    const flag = SERVE_TABLE[name];
    if (flag !== undefined) table[name] = flag;
  }
  return table;
}

export const COMMANDS: readonly CommandSpec[] = [
  {
    name: "serve",
    summary: "run the sidecar: Check on gRPC, metrics/health/admin API on HTTP",
    flags: SERVE_TABLE,
    notes: ["Settings: flags, a YAML settings file (--config), and VIGIL_ADMIN_TOKENS, VIGIL_SSF_PUSH_TOKENS, VIGIL_BUS, VIGIL_LOG_LEVEL."],
  },
  {
    name: "check",
    summary: "judge one CheckRequest (JSON): offline with --policy, or by a running sidecar with --server",
    positionals: "REQUEST.json|-",
    flags: {
      "server": { type: "string", value: "ADDRESS", help: `ask a running sidecar over gRPC, as Envoy would: ${DEFAULT_GRPC_HOST}:${String(DEFAULT_GRPC_PORT)} or unix:PATH` },
      "policy": { type: "string", value: "DIR", help: "judge offline against this policy directory (e.g. examples/policies)" },
      "signals": { type: "string", value: "FILE", help: "offline: the signals the policy sees (e.g. examples/signals.yaml); default none" },
      ...pick(["config"]),
      "now": { type: "string", value: "ISO-TIME", help: "offline only: judge as if it were this time (e.g. 2026-11-25T12:00:00Z); default now" },
      ...pick(["xfcc-trusted-hops", "trust-domain", "destination", "destination-source", "destination-host"]),
    },
    notes: [
      "One of --server or --policy (or --config naming a policy) is required: there is no default to judge against.",
      "Offline, the destination is the request's context_extensions.destination, else --destination, else its",
      "destination.principal, as in vigil serve; the output says why (caller, action, signals, rule). Exit 0 = allowed.",
    ],
  },
  { name: "validate", summary: "load and compile a policy directory, report what is wrong", flags: pick(["policy"]) },
  {
    name: "evidence",
    summary: "summarise a decision log per control (OWASP NHI, NIST SP 800-207, CSF 2.0): outcomes, period, sample ids",
    positionals: "LOGFILE|-",
    flags: {
      "json": { type: "boolean", help: "print JSON instead of a table" },
      "since": { type: "string", value: "ISO-TIME", help: "only decisions at or after this time" },
      "until": { type: "string", value: "ISO-TIME", help: "only decisions before this time" },
    },
    notes: ["Reads JSON lines as Vigil writes them (msg \"decision\"); other lines are counted and skipped."],
  },
  {
    name: "test",
    summary: "run the policy's tests (kind: PolicyTest) through the real decoder and pipeline; for CI",
    positionals: "[FILE|DIR]*",
    flags: {
      "policy": { type: "string", value: "DIR", help: "the policy directory under test (required)" },
      "junit": { type: "string", value: "FILE", help: "also write the results as JUnit XML" },
      ...pick(["config"]),
    },
    notes: [
      "The arguments are PolicyTest files or directories; default DIR and DIR/tests.",
      "Prints one FAIL line per failing case (file, document, case), a summary and the rules no case exercises.",
      "Exit 0 = every case passed, 1 = a case failed, 2 = unusable input (a broken policy or test document, no tests).",
    ],
  },
  {
    name: "signal put",
    summary: "write a signal through the admin API (scope signals:write)",
    flags: {
      ...ADMIN_FLAGS,
      "kind": { type: "string", value: "KIND", help: "risk, posture, credential, revocation, behavior, attestation, …" },
      "subject": { type: "string", value: "S", help: "a SPIFFE ID, or a credential's fingerprint (never the secret: see vigil fingerprint)" },
      "data": { type: "string", value: "JSON", help: "the signal's data, exactly as its kind's schema says" },
      "expires-in": { type: "string", value: "SECONDS", help: "expiry from now (not for sticky values: revocations, leaked credentials)" },
      "source": { type: "string", value: "S", help: "refused: the server sets the source from the token's NAME (give each writer its own token)" },
      "name": { type: "string", value: "N", help: "refused: the admin API writes only unnamed signals (the ones decisions read)" },
    },
    notes: ADMIN_NOTES,
  },
  {
    name: "signal get",
    summary: "read the signals of a subject",
    flags: { ...ADMIN_FLAGS, "subject": { type: "string", value: "S", help: "SPIFFE ID or credential fingerprint" }, "kind": { type: "string", value: "KIND", help: "only this kind" } },
  },
  {
    name: "signal reinstate",
    summary: "lift a revocation (scope signals:reinstate; audited)",
    flags: { ...ADMIN_FLAGS, "subject": { type: "string", value: "S", help: "the revoked SPIFFE ID or credential fingerprint" }, "reason": { type: "string", value: "TEXT", help: "why (audited; required)" } },
  },
  {
    name: "approvals list",
    summary: "list approval requests",
    flags: { ...ADMIN_FLAGS, "status": { type: "string", value: "STATUS", help: "pending, approved, denied or expired" } },
  },
  { name: "approvals approve", summary: "approve a step-up (scope approvals:decide; the token's NAME must be an approver the rule names)", positionals: "ID", flags: ADMIN_FLAGS, notes: ADMIN_NOTES },
  { name: "approvals deny", summary: "deny a step-up (scope approvals:decide)", positionals: "ID", flags: ADMIN_FLAGS, notes: ADMIN_NOTES },
  {
    name: "behavior show",
    summary: "what this sidecar learned: a summary, or one caller's baseline (actions, networks, rate, pending)",
    positionals: "[CALLER]",
    flags: ADMIN_FLAGS,
  },
  {
    name: "behavior accept",
    summary: "accept new actions / networks into a caller's baseline (scope behavior:write; audited)",
    positionals: "CALLER",
    flags: {
      ...ADMIN_FLAGS,
      "action": { type: "string", multiple: true, value: "LABEL", help: "an action as `behavior show` prints it, e.g. \"payments GET /v1/payments/*/status\" (repeatable)" },
      "network": { type: "string", multiple: true, value: "CIDR", help: "a source network as `behavior show` prints it, e.g. 10.1.2.0/24 (repeatable)" },
    },
    notes: ["Without --action or --network, every pending item `behavior show CALLER` lists is accepted."],
  },
  { name: "fingerprint", summary: "read a secret on stdin, print its sha256 fingerprint (how Vigil names a credential)", flags: {} },
  {
    name: "dev-tokens",
    summary: "create local admin tokens for a dev server (npm start does this), print where they are",
    flags: { "dir": { type: "string", value: "DIR", help: "where to write them (default .vigil)" } },
    notes: [
      "Writes DIR/admin-tokens (for serve --admin-tokens-file) and one file per holder for --token-file:",
      "operator.token (signals:write,signals:reinstate) and approver.token, named",
      "spiffe://example.org/ns/ops/sa/change-approver (approvals:decide), the approver examples/policies names.",
      "Files are 0600 and kept if present; the tokens are never printed. For a laptop, never a cluster.",
    ],
  },
  {
    name: "reset",
    summary: "clear local state (npm run reset): journals (signals, approvals), behaviour state and dev tokens in .vigil",
    flags: {
      "dir": { type: "string", value: "DIR", help: "the state directory (default .vigil)" },
      "url": { type: "string", value: "URL", help: `refuse while a Vigil answers here (default $VIGIL_URL, else ${DEFAULT_ADMIN_URL})` },
    },
    notes: ["Refuses while a Vigil answers at --url or any process holds a file in DIR open; a file it does not know is left and named."],
  },
];

export function findCommand(name: string): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === name);
}

/** Edit distance (Levenshtein), for suggestions only. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** The closest of `known` to `given`, when close enough to be a slip (or a prefix of exactly one). */
export function closest(given: string, known: readonly string[]): string | undefined {
  const prefixed = known.filter((k) => given.length >= 3 && k.startsWith(given));
  if (prefixed.length === 1) return prefixed[0];
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(given, k);
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  const allowed = Math.max(1, Math.min(3, Math.floor(given.length / 3)));
  return bestDistance <= allowed ? best : undefined;
}

function flagUsage(name: string, spec: FlagSpec): string {
  return `--${name}${spec.value !== undefined ? ` ${spec.value}` : ""}`;
}

/** `vigil CMD --help`. */
export function commandHelp(spec: CommandSpec): string {
  const lines = [`vigil ${spec.name} — ${spec.summary}`, "", `usage: vigil ${spec.name}${Object.keys(spec.flags).length > 0 ? " [flags]" : ""}${spec.positionals !== undefined ? ` ${spec.positionals}` : ""}`];
  const entries = Object.entries(spec.flags);
  if (entries.length > 0) {
    lines.push("", "flags:");
    const width = Math.min(34, Math.max(...entries.map(([name, flag]) => flagUsage(name, flag).length)));
    for (const [name, flag] of entries) {
      const usage = flagUsage(name, flag);
      const repeat = flag.multiple === true && !flag.help.includes("repeatable") ? " (repeatable)" : "";
      lines.push(usage.length > width ? `  ${usage}\n  ${" ".repeat(width)}  ${flag.help}${repeat}` : `  ${usage.padEnd(width)}  ${flag.help}${repeat}`);
    }
    lines.push(`  ${"--help, -h".padEnd(width)}  this help`);
  }
  if (spec.notes !== undefined) lines.push("", ...spec.notes);
  return lines.join("\n");
}

/** `vigil --help`: every command with every flag (nothing hidden behind "..."). */
export function mainHelp(): string {
  const lines = [
    "vigil — ext_authz sidecar deciding every non-human request at the moment it is made",
    "",
    "usage: vigil COMMAND [flags]      (vigil COMMAND --help for one command's flags explained)",
    "",
    "commands:",
  ];
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  for (const c of COMMANDS) lines.push(`  ${c.name.padEnd(width)}  ${c.summary}`);
  lines.push("", "flags:");
  for (const c of COMMANDS) {
    const flags = Object.entries(c.flags).map(([name, flag]) => `[${flagUsage(name, flag)}]`);
    const words = [`  vigil ${c.name}`, ...flags, ...(c.positionals !== undefined ? [c.positionals] : [])];
    let line = "";
    for (const word of words) {
      if (line !== "" && line.length + word.length + 1 > 100) {
        lines.push(line);
        line = `      ${word}`;
      } else {
        line = line === "" ? word : `${line} ${word}`;
      }
    }
    lines.push(line);
  }
  lines.push(
    "",
    `Admin commands (signal, approvals, behavior) talk to --url (default $VIGIL_URL, else ${DEFAULT_ADMIN_URL}) with the`,
    "bearer token from --token-file or $VIGIL_ADMIN_TOKEN; a credential is named by its fingerprint, never itself.",
    "Exit codes: 0 ok, 1 the answer was no (denied, refused), 2 usage or runtime error.",
  );
  return lines.join("\n");
}

export type FlagValues = Record<string, string | string[] | boolean | undefined>;

export type Parsed = { help: true } | { help: false; values: FlagValues; positionals: string[] };

/**
 * Parses one command's arguments. `--help`/`-h` anywhere (before a bare `--`) asks for help; an
 * unknown flag is refused naming the closest known one; a flag without its value says which.
 */
export function parseCommand(spec: CommandSpec, argv: readonly string[]): Parsed {
  const known = Object.keys(spec.flags);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (arg === "--") break;
    if (arg === "--help" || arg === "-h") return { help: true };
    if (!arg.startsWith("-") || arg === "-") continue;
    const name = arg.replace(/^--?/, "").split("=")[0] ?? "";
    const flag = spec.flags[name];
    if (flag === undefined || !arg.startsWith("--")) {
      const guess = closest(name, known);
      throw new VigilError(
        "invalid_input",
        `${spec.name}: unknown flag ${arg.split("=")[0] ?? arg}${guess !== undefined ? ` (did you mean --${guess}?)` : ""}; see vigil ${spec.name} --help`,
      );
    }
    if (flag.type === "string" && !arg.includes("=")) {
      // "--" ends the flags: it is never a value (`--config -- --help` forgot the file name).
      if (i + 1 >= argv.length || argv[i + 1] === "--") throw new VigilError("invalid_input", `${spec.name}: --${name} needs a value (${flagUsage(name, flag)})`);
      i++;
    }
  }
  const options = Object.fromEntries(Object.entries(spec.flags).map(([name, flag]) => [name, { type: flag.type, multiple: flag.multiple === true }]));
  try {
    const { values, positionals } = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
    const wanted = spec.positionals === undefined ? 0 : spec.positionals.split(" ").length;
    if (positionals.length > wanted) {
      throw new VigilError("invalid_input", `${spec.name}: unexpected argument${positionals.length - wanted > 1 ? "s" : ""} ${positionals.slice(wanted).map((p) => JSON.stringify(p)).join(" ")}; see vigil ${spec.name} --help`);
    }
    return { help: false, values: values as FlagValues, positionals };
  } catch (cause) {
    if (cause instanceof VigilError) throw cause;
    throw new VigilError("invalid_input", `${spec.name}: ${VigilError.from(cause).message}; see vigil ${spec.name} --help`, { cause });
  }
}

/**
 * Parses a command's flags with its entry in the commands table; for --help prints the command's
 * help and returns undefined (the command then exits 0).
 */
export function parseOrHelp(name: string, argv: readonly string[]): { values: FlagValues; positionals: string[] } | undefined {
  const spec = findCommand(name);
  if (spec === undefined) throw new VigilError("internal", `no command table entry for ${name}`);
  const parsed = parseCommand(spec, argv);
  if (parsed.help) {
    process.stdout.write(`${commandHelp(spec)}\n`);
    return undefined;
  }
  return parsed;
}

export function string(values: FlagValues, name: string): string | undefined {
  const value = values[name];
  return typeof value === "string" ? value : undefined;
}

export function strings(values: FlagValues, name: string): string[] | undefined {
  const value = values[name];
  return Array.isArray(value) ? value : undefined;
}
