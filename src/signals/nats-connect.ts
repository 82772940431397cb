// The security half of the NATS connection options: who Vigil is to the bus (user + password,
// token, NKey seed or creds file) and TLS (CA, client certificate). Secrets are read from files
// (a mounted Kubernetes Secret) and re-read on every (re)connect, so a rotated Secret is used
// without a restart; a file that cannot be read at start fails start-up naming the file, and
// no secret is ever put in an error, a log line or the options' description.

import { readFileSync } from "node:fs";
import {
  credsAuthenticator, nkeyAuthenticator, tokenAuthenticator, usernamePasswordAuthenticator,
} from "@nats-io/transport-node";
import type { Authenticator, NodeConnectionOptions, TlsOptions } from "@nats-io/transport-node";
import type { StoreConfig } from "../config/schema.js";
import { VigilError } from "../errors/index.js";

export type BusAuthMethod = "none" | "user_password" | "token" | "nkey" | "creds";

/** What the connection uses, safe to log: methods and file paths, never their contents. */
export interface BusSecurityDescription {
  auth: BusAuthMethod;
  tls: boolean;
  clientCertificate: boolean;
}

type SecurityConfig = Pick<StoreConfig, "bus" | "busAuth" | "busTls">;
type ReadFile = (path: string) => Buffer;

const readFromDisk: ReadFile = (path) => readFileSync(path);

/**
 * A secret file: read now (failing clearly if it is missing or empty), then again each time the
 * client authenticates; a failed re-read keeps the last good value rather than dropping auth.
 */
function secretFile(path: string, what: string, read: ReadFile, trim: boolean): () => Uint8Array {
  const load = (): Uint8Array => {
    let bytes: Buffer;
    try {
      bytes = read(path);
    } catch (cause) {
      throw new VigilError("invalid_input", `cannot read the NATS ${what} file ${path}: ${(cause as NodeJS.ErrnoException).code ?? "unreadable"}`, { cause });
    }
    const value = trim ? Buffer.from(bytes.toString("utf8").trim(), "utf8") : bytes;
    if (value.length === 0) throw new VigilError("invalid_input", `the NATS ${what} file ${path} is empty`);
    return new Uint8Array(value);
  };
  let last = load();
  return () => {
    try {
      last = load();
    } catch {
      // Keep the last good secret: a Secret mid-update must not log the sidecar out of the bus.
    }
    return last;
  };
}

function text(secret: () => Uint8Array): () => string {
  return () => new TextDecoder().decode(secret());
}

function readable(path: string, what: string, read: ReadFile): string {
  try {
    read(path);
  } catch (cause) {
    throw new VigilError("invalid_input", `cannot read the NATS TLS ${what} file ${path}: ${(cause as NodeJS.ErrnoException).code ?? "unreadable"}`, { cause });
  }
  return path;
}

function authMethod(config: SecurityConfig): BusAuthMethod {
  const auth = config.busAuth;
  if (auth.credsFile !== "") return "creds";
  if (auth.nkeySeedFile !== "") return "nkey";
  if (auth.tokenFile !== "") return "token";
  if (auth.user !== "") return "user_password";
  return "none";
}

function wantsTls(config: SecurityConfig): boolean {
  const tls = config.busTls;
  return tls.caFile !== "" || tls.certFile !== "" || config.bus.split(",").some((url) => url.trim().toLowerCase().startsWith("tls://"));
}

export function describeBusSecurity(config: SecurityConfig): BusSecurityDescription {
  return { auth: authMethod(config), tls: wantsTls(config), clientCertificate: config.busTls.certFile !== "" };
}

/**
 * The `authenticator` and `tls` options for @nats-io/transport-node's connect(), from the
 * settings. Throws VigilError("invalid_input") naming a file that cannot be read.
 */
export function natsSecurityOptions(config: SecurityConfig, read: ReadFile = readFromDisk): Pick<NodeConnectionOptions, "authenticator" | "tls"> {
  const auth = config.busAuth;
  let authenticator: Authenticator | undefined;
  switch (authMethod(config)) {
    case "creds":
      authenticator = credsAuthenticator(secretFile(auth.credsFile, "creds", read, false));
      break;
    case "nkey":
      authenticator = nkeyAuthenticator(secretFile(auth.nkeySeedFile, "NKey seed", read, true));
      break;
    case "token":
      authenticator = tokenAuthenticator(text(secretFile(auth.tokenFile, "token", read, true)));
      break;
    case "user_password":
      authenticator = usernamePasswordAuthenticator(auth.user, text(secretFile(auth.passwordFile, "password", read, true)));
      break;
    case "none":
      break;
  }
  let tls: TlsOptions | undefined;
  if (wantsTls(config)) {
    const t = config.busTls;
    tls = {
      ...(t.caFile === "" ? {} : { caFile: readable(t.caFile, "CA", read) }),
      ...(t.certFile === "" ? {} : { certFile: readable(t.certFile, "certificate", read), keyFile: readable(t.keyFile, "key", read) }),
    };
  }
  return { ...(authenticator === undefined ? {} : { authenticator }), ...(tls === undefined ? {} : { tls }) };
}
