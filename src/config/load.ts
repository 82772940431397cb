// Maps command-line flags, environment variables and an optional YAML settings file onto the
// one Config schema. This is the only module that reads process.env or files for settings.

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { parse as parseYaml } from "yaml";
import { VigilError } from "../errors/index.js";
import { parseAdminTokens, type AdminToken } from "./admin-tokens.js";
import { configSchema, type Config } from "./schema.js";
import { isRecord } from "../util/guards.js";
import { formatZodError } from "../util/zod.js";
import { withOneByteStrings } from "../util/one-byte.js";

/** Flags understood by `vigil serve` (and, where they make sense, `check`). */
export const SERVE_FLAGS = {
  "config": { type: "string" },
  "policy": { type: "string" },
  "signals": { type: "string" },
  "grpc-host": { type: "string" },
  "grpc-port": { type: "string" },
  "grpc-socket": { type: "string" },
  "http-host": { type: "string" },
  "http-port": { type: "string" },
  "journal": { type: "string" },
  "journal-repair": { type: "boolean" },
  "dry-run": { type: "boolean" },
  "bus": { type: "string" },
  "bucket-prefix": { type: "string" },
  "bus-replicas": { type: "string" },
  "bus-user": { type: "string" },
  "bus-password-file": { type: "string" },
  "bus-token-file": { type: "string" },
  "bus-nkey-file": { type: "string" },
  "bus-creds-file": { type: "string" },
  "bus-tls-ca": { type: "string" },
  "bus-tls-cert": { type: "string" },
  "bus-tls-key": { type: "string" },
  "freshness-bound-ms": { type: "string" },
  "admin-tokens-file": { type: "string" },
  "xfcc-trusted-hops": { type: "string" },
  "trust-domain": { type: "string", multiple: true },
  "destination": { type: "string" },
  "destination-source": { type: "string" },
  "destination-host": { type: "string", multiple: true },
  "ssf-issuer": { type: "string" },
  "ssf-audience": { type: "string", multiple: true },
  "ssf-jwks-file": { type: "string" },
  "ssf-jwks-url": { type: "string" },
  "ssf-push-tokens-file": { type: "string" },
  "revocation-hook-url": { type: "string" },
  "outbox": { type: "string" },
  "transmitter-issuer": { type: "string" },
  "transmitter-key-file": { type: "string" },
  "approval-webhook-url": { type: "string" },
  "approval-webhook-secret-file": { type: "string" },
  "console-url": { type: "string" },
  "shutdown-drain-ms": { type: "string" },
  "console": { type: "boolean" },
  "console-session-key-file": { type: "string" },
  "log-level": { type: "string" },
  "no-behavior": { type: "boolean" },
  "behavior-learning-ms": { type: "string" },
  "behavior-state": { type: "string" },
  "behavior-exclude-caller": { type: "string", multiple: true },
  "entities": { type: "string" },
  "authzen-destination": { type: "string" },
  "mcp-path": { type: "string", multiple: true },
} as const;

type FlagValues = Partial<Record<keyof typeof SERVE_FLAGS, string | string[] | boolean | undefined>>;

/** Reads a push tokens file (SSF): one token per line, blank lines and # comments ignored. */
export function readTokensFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (cause) {
    throw new VigilError("invalid_input", `cannot read tokens file ${path}`, { cause });
  }
  return text.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
}

/** Reads the admin tokens file (config/admin-tokens.ts: `TOKEN NAME [SCOPES]` per line). */
export function readAdminTokensFile(path: string): AdminToken[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (cause) {
    throw new VigilError("invalid_input", `cannot read admin tokens file ${path}`, { cause });
  }
  return parseAdminTokens(text, `admin tokens file ${path}`);
}

function splitList(value: string | undefined): string[] {
  return (value ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");
}

function int(name: string, value: string | string[] | boolean | undefined): number | undefined {
  if (typeof value !== "string") return undefined;
  const n = Number(value);
  if (!Number.isInteger(n)) throw new VigilError("invalid_input", `--${name} must be an integer, got "${value}"`);
  return n;
}

function str(value: string | string[] | boolean | undefined): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/** Deep-merges b over a (objects only; arrays and scalars replace). */
function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    if (v === undefined) continue;
    const prev = out[k];
    if (isRecord(prev) && isRecord(v)) out[k] = merge(prev, v);
    else out[k] = v;
  }
  return out;
}


/**
 * Builds the Config: defaults ← settings file (--config or VIGIL_CONFIG) ← environment
 * (VIGIL_ADMIN_TOKENS, VIGIL_SSF_PUSH_TOKENS, VIGIL_LOG_LEVEL, VIGIL_BUS) ← flags.
 */
export function loadConfig(flags: FlagValues, env: NodeJS.ProcessEnv): Config {
  let fromFile: Record<string, unknown> = {};
  const configPath = str(flags.config) ?? env.VIGIL_CONFIG;
  if (configPath !== undefined && configPath !== "") {
    try {
      const parsed = withOneByteStrings(parseYaml(readFileSync(configPath, "utf8")));
      if (parsed !== null && parsed !== undefined) {
        if (!isRecord(parsed)) throw new Error("settings file must be a YAML mapping");
        fromFile = parsed;
      }
    } catch (cause) {
      throw new VigilError("invalid_input", `cannot read settings file ${configPath}: ${VigilError.from(cause).message}`, { cause });
    }
  }

  const adminTokensFile = str(flags["admin-tokens-file"]);
  const pushTokensFile = str(flags["ssf-push-tokens-file"]);
  const fromEnv: Record<string, unknown> = {
    // Same format as the tokens file; entries separated by newlines or ";".
    http: {
      adminTokens: env.VIGIL_ADMIN_TOKENS !== undefined
        ? parseAdminTokens(env.VIGIL_ADMIN_TOKENS.replaceAll(";", "\n"), "VIGIL_ADMIN_TOKENS (entries separated by newlines or ;)")
        : undefined,
    },
    ssf: { pushTokens: env.VIGIL_SSF_PUSH_TOKENS !== undefined ? splitList(env.VIGIL_SSF_PUSH_TOKENS) : undefined },
    store: { bus: env.VIGIL_BUS },
    logLevel: env.VIGIL_LOG_LEVEL,
  };
  const fromFlags: Record<string, unknown> = {
    policyDir: str(flags.policy),
    signalsFile: str(flags.signals),
    grpc: { host: str(flags["grpc-host"]), port: int("grpc-port", flags["grpc-port"]), socket: str(flags["grpc-socket"]) },
    http: {
      host: str(flags["http-host"]),
      port: int("http-port", flags["http-port"]),
      adminTokens: adminTokensFile !== undefined ? readAdminTokensFile(adminTokensFile) : undefined,
    },
    store: {
      journalPath: str(flags.journal),
      journalRepair: flags["journal-repair"] === true ? true : undefined,
      bus: str(flags.bus),
      bucketPrefix: str(flags["bucket-prefix"]),
      replicas: int("bus-replicas", flags["bus-replicas"]),
      freshnessBoundMs: int("freshness-bound-ms", flags["freshness-bound-ms"]),
      busAuth: {
        user: str(flags["bus-user"]),
        passwordFile: str(flags["bus-password-file"]),
        tokenFile: str(flags["bus-token-file"]),
        nkeySeedFile: str(flags["bus-nkey-file"]),
        credsFile: str(flags["bus-creds-file"]),
      },
      busTls: { caFile: str(flags["bus-tls-ca"]), certFile: str(flags["bus-tls-cert"]), keyFile: str(flags["bus-tls-key"]) },
    },
    identity: {
      xfccTrustedHops: int("xfcc-trusted-hops", flags["xfcc-trusted-hops"]),
      trustDomains: Array.isArray(flags["trust-domain"]) ? flags["trust-domain"] : undefined,
    },
    destination: {
      name: str(flags.destination),
      source: str(flags["destination-source"]),
      hosts: Array.isArray(flags["destination-host"]) ? flags["destination-host"] : undefined,
    },
    ssf: {
      issuer: str(flags["ssf-issuer"]),
      audience: Array.isArray(flags["ssf-audience"]) ? flags["ssf-audience"] : undefined,
      jwksFile: str(flags["ssf-jwks-file"]),
      jwksUrl: str(flags["ssf-jwks-url"]),
      pushTokens: pushTokensFile !== undefined ? readTokensFile(pushTokensFile) : undefined,
    },
    revocationHookUrl: str(flags["revocation-hook-url"]),
    dryRun: flags["dry-run"] === true ? true : undefined,
    outbox: { path: str(flags.outbox) },
    transmitter: { issuer: str(flags["transmitter-issuer"]), signingKeyFile: str(flags["transmitter-key-file"]) },
    // One webhook from flags (named "default"); more, each with its own secret, in the settings file.
    approvalWebhooks: approvalWebhookFlag(str(flags["approval-webhook-url"]), str(flags["approval-webhook-secret-file"])),
    consoleUrl: str(flags["console-url"]),
    shutdownDrainMs: int("shutdown-drain-ms", flags["shutdown-drain-ms"]),
    behavior: {
      enabled: flags["no-behavior"] === true ? false : undefined,
      learningPeriodMs: int("behavior-learning-ms", flags["behavior-learning-ms"]),
      statePath: str(flags["behavior-state"]),
      excludeCallers: Array.isArray(flags["behavior-exclude-caller"]) ? flags["behavior-exclude-caller"] : undefined,
    },
    logLevel: str(flags["log-level"]),
    entitiesFile: str(flags.entities),
    authzen: { destination: str(flags["authzen-destination"]) },
    mcp: { paths: Array.isArray(flags["mcp-path"]) ? flags["mcp-path"] : undefined },
    console: { enabled: flags.console === true ? true : undefined, sessionKeyFile: str(flags["console-session-key-file"]) },
  };

  const merged = merge(merge(fromFile, fromEnv), fromFlags);
  const result = configSchema.safeParse(merged);
  if (!result.success) throw new VigilError("invalid_input", `invalid settings: ${formatZodError(result.error)}`);
  return result.data;
}

function approvalWebhookFlag(url: string | undefined, secretFile: string | undefined): unknown[] | undefined {
  if (url === undefined && secretFile === undefined) return undefined;
  if (url === undefined || secretFile === undefined) {
    throw new VigilError("invalid_input", "--approval-webhook-url and --approval-webhook-secret-file go together");
  }
  return [{ name: "default", url, secretFile }];
}

/** Parses argv for `serve`-like commands; unknown flags are errors. */
export function parseServeArgs(argv: string[]): { values: FlagValues; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: argv, options: SERVE_FLAGS, allowPositionals: true, strict: true });
    return { values, positionals };
  } catch (cause) {
    throw new VigilError("invalid_input", VigilError.from(cause).message, { cause });
  }
}
