// Where the transmitter's signing keys come from: a local JWK Set file (re-read, at most once per
// cooldown, when a SET names a key it does not hold, so a rotated Secret/ConfigMap is picked up)
// or the transmitter's jwks_uri through jose's remote set (cached, refetch rate-limited).

import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import {
  createLocalJWKSet, createRemoteJWKSet, customFetch, errors,
  type CryptoKey, type FetchImplementation, type FlattenedJWSInput, type JSONWebKeySet,
  type JWSHeaderParameters, type RemoteJWKSetOptions,
} from "jose";
import type { Logger } from "pino";
import { VigilError } from "../../errors/index.js";
import { KeySourceUnavailable } from "./set-error.js";

export type TransmitterKeys = (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey>;

/** Minimum time between two unprompted reloads of the key source (jose's own default). */
export const JWKS_COOLDOWN_MS = 30_000;
const JWKS_TIMEOUT_MS = 5_000;

function parseJwks(text: string, origin: string): JSONWebKeySet {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new VigilError("invalid_input", `ssf.jwksFile ${origin} is not JSON`, { cause });
  }
  if (typeof parsed !== "object" || parsed === null || !Array.isArray((parsed as { keys?: unknown }).keys)) {
    throw new VigilError("invalid_input", `ssf.jwksFile ${origin} is not a JWK Set (needs a "keys" array)`);
  }
  return parsed as JSONWebKeySet;
}

function fileKeys(path: string, now: () => number, logger: Logger): TransmitterKeys {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (cause) {
    throw new VigilError("invalid_input", `ssf.jwksFile ${path} cannot be read`, { cause });
  }
  let keySet = createLocalJWKSet(parseJwks(text, path));
  let loadedAt = now();
  return async (header, token) => {
    try {
      return await keySet(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey) || now() - loadedAt < JWKS_COOLDOWN_MS) throw err;
      loadedAt = now();
      try {
        keySet = createLocalJWKSet(parseJwks(await readFile(path, "utf8"), path));
        logger.info({ jwksFile: path }, "reloaded the transmitter JWK Set file after an unknown key");
      } catch (reloadError) {
        logger.warn({ jwksFile: path, err: reloadError }, "could not reload the transmitter JWK Set file; keeping the keys held");
        throw err;
      }
      return await keySet(header, token);
    }
  };
}

/** jose errors that mean "the JWKS could not be fetched", as opposed to "it holds no good key". */
function isFetchFailure(err: unknown): boolean {
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) return true;
  // Non-200 answers and unparseable bodies are plain JOSEErrors; network failures are not JOSE errors.
  return !(err instanceof errors.JOSEError) || err.constructor === errors.JOSEError;
}

function remoteKeys(jwksUrl: string, fetchJwks: FetchImplementation | undefined): TransmitterKeys {
  let url: URL;
  try {
    url = new URL(jwksUrl);
  } catch (cause) {
    throw new VigilError("invalid_input", `ssf.jwksUrl ${jwksUrl} is not a URL`, { cause });
  }
  const loopback = ["localhost", "127.0.0.1", "[::1]"].includes(url.hostname);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) {
    throw new VigilError("invalid_input", "ssf.jwksUrl must be https (http only on loopback)");
  }
  const options: RemoteJWKSetOptions = { timeoutDuration: JWKS_TIMEOUT_MS, cooldownDuration: JWKS_COOLDOWN_MS };
  if (fetchJwks !== undefined) options[customFetch] = fetchJwks;
  const remote = createRemoteJWKSet(url, options);
  return async (header, token) => {
    try {
      return await remote(header, token);
    } catch (err) {
      if (isFetchFailure(err)) throw new KeySourceUnavailable("the transmitter JWKS could not be fetched", { cause: err });
      throw err;
    }
  };
}

/** Builds the key source from the SSF settings; throws VigilError("invalid_input") on a bad setting. */
export function createTransmitterKeys(options: {
  jwksFile: string;
  jwksUrl: string;
  now: () => number;
  logger: Logger;
  fetchJwks: FetchImplementation | undefined;
}): TransmitterKeys {
  if (options.jwksFile !== "" && options.jwksUrl !== "") {
    throw new VigilError("invalid_input", "set one of ssf.jwksFile and ssf.jwksUrl, not both");
  }
  if (options.jwksFile !== "") return fileKeys(options.jwksFile, options.now, options.logger);
  if (options.jwksUrl !== "") return remoteKeys(options.jwksUrl, options.fetchJwks);
  throw new VigilError("invalid_input", "ssf.issuer is set but neither ssf.jwksFile nor ssf.jwksUrl is");
}
