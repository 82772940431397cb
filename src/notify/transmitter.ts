// Vigil as a CAEP transmitter (OpenID SSF 1.0, CAEP 1.0, RFC 8417, RFC 8935 push). When Vigil
// revokes a credential or an identity, or an operator reinstates one, every configured receiver
// (the credential's issuer, the IdP, other relying parties) gets one signed SET through the
// durable outbox:
//   credential revoked    CAEP credential-change, change_type "revoke", sub_id opaque fingerprint
//   identity revoked      CAEP session-revoked, sub_id uri (the SPIFFE ID)
//   credential reinstated CAEP credential-change, change_type "update" (CAEP has no "un-revoke")
//   identity reinstated   RISC account-enabled, sub_id uri
// Each SET has its own jti, `txn` = the decision (or reinstate) id, `aud` = that receiver's
// audience, typ secevent+jwt and no exp or sub (SSF). Receivers fetch the public key from
// /.well-known/jwks.json, found through /.well-known/ssf-configuration.
//
// The signing key is read once from a file (PKCS#8 PEM or a private JWK) and never logged; only
// its key id (RFC 7638 thumbprint) is. RSA keys must have at least 2048 bits (CAEP interop).

import { createPrivateKey, createPublicKey, randomUUID, type JsonWebKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { calculateJwkThumbprint, SignJWT, type JWK } from "jose";
import { PATH_JWKS, type TransmitterConfig } from "../config/index.js";
import { VigilError } from "../errors/index.js";
import { destinationKey, noticeId, type Destination, type Notice } from "../outbox/index.js";
import { CAEP, RISC, SET_JOSE_TYPE, SET_MEDIA_TYPE } from "../signals/ssf/index.js";
import type { RevocationChange } from "./revocation-hook.js";


interface SigningKey {
  key: KeyObject;
  alg: "RS256" | "ES256" | "ES384" | "EdDSA";
  kid: string;
  publicJwk: JWK;
}

/** Reads and checks the signing key; the error names the file, never its content. */
export async function loadSigningKey(path: string, read: (path: string) => string = (p) => readFileSync(p, "utf8")): Promise<SigningKey> {
  let text: string;
  try {
    text = read(path);
  } catch (cause) {
    throw new VigilError("invalid_input", `cannot read the transmitter signing key file ${path}: ${(cause as NodeJS.ErrnoException).code ?? "unreadable"}`, { cause });
  }
  let key: KeyObject;
  try {
    const trimmed = text.trim();
    key = trimmed.startsWith("{")
      ? createPrivateKey({ key: JSON.parse(trimmed) as JsonWebKey, format: "jwk" })
      : createPrivateKey(trimmed);
  } catch {
    // The parser's message may quote the key; say only what is wrong.
    throw new VigilError("invalid_input", `the transmitter signing key file ${path} does not hold a private key (PKCS#8 PEM or a private JWK)`);
  }
  const alg = algorithmOf(key, path);
  const publicJwk = createPublicKey(key).export({ format: "jwk" }) as JWK;
  const kid = await calculateJwkThumbprint(publicJwk);
  return { key, alg, kid, publicJwk: { ...publicJwk, kid, alg, use: "sig" } };
}

function algorithmOf(key: KeyObject, path: string): SigningKey["alg"] {
  const details = key.asymmetricKeyDetails;
  const type = key.asymmetricKeyType;
  if (type === "rsa") {
    if ((details?.modulusLength ?? 0) < 2048) throw new VigilError("invalid_input", `the RSA key in ${path} is shorter than 2048 bits`);
    return "RS256";
  }
  if (type === "ec" && details?.namedCurve === "prime256v1") return "ES256";
  if (type === "ec" && details?.namedCurve === "secp384r1") return "ES384";
  if (type === "ed25519") return "EdDSA";
  throw new VigilError("invalid_input", `the key in ${path} is not RSA (2048+ bits), EC P-256/P-384 or Ed25519`);
}

export interface TransmitterReceiver {
  name: string;
  url: string;
  audience: string;
  /** The Authorization header value sent on every push (SSF authorization_header); "" = none. */
  authorization: string;
}

export class Transmitter {
  readonly issuer: string;
  readonly #key: SigningKey;
  readonly #receivers: readonly TransmitterReceiver[];

  constructor(issuer: string, key: SigningKey, receivers: readonly TransmitterReceiver[]) {
    this.issuer = issuer.replace(/\/$/, "");
    this.#key = key;
    this.#receivers = receivers;
  }

  static async fromConfig(config: TransmitterConfig, read?: (path: string) => string): Promise<Transmitter> {
    const key = await loadSigningKey(config.signingKeyFile, read);
    const readSecret = read ?? ((p: string) => readFileSync(p, "utf8"));
    const receivers = config.receivers.map((r) => {
      let authorization = "";
      if (r.authorizationFile !== "") {
        try {
          authorization = readSecret(r.authorizationFile).trim();
        } catch (cause) {
          throw new VigilError("invalid_input", `cannot read the authorization file of CAEP receiver ${r.name}: ${r.authorizationFile}`, { cause });
        }
        if (authorization === "" || /[\r\n]/.test(authorization)) {
          throw new VigilError("invalid_input", `the authorization file of CAEP receiver ${r.name} must hold one non-empty line`);
        }
      }
      return { name: r.name, url: r.url, audience: r.audience, authorization };
    });
    return new Transmitter(config.issuer, key, receivers);
  }

  /** Secret bytes the outbox's seal key is derived from (never logged or sent). */
  sealInput(): Buffer {
    return this.#key.key.export({ format: "der", type: "pkcs8" });
  }

  get kid(): string {
    return this.#key.kid;
  }

  /** The JWK Set served at /.well-known/jwks.json. */
  jwks(): { keys: JWK[] } {
    return { keys: [this.#key.publicJwk] };
  }

  /** The SSF transmitter metadata served at /.well-known/ssf-configuration. */
  configuration(): Record<string, unknown> {
    return {
      spec_version: "1_0",
      issuer: this.issuer,
      jwks_uri: `${this.issuer}${PATH_JWKS}`,
      delivery_methods_supported: ["urn:ietf:rfc:8935"],
      default_subjects: "ALL",
    };
  }

  /** Where each receiver is pushed to: its URL, the SET media types and its authorization header. */
  destinations(): Map<string, Destination> {
    return new Map(this.#receivers.map((r) => [destinationKey("caep", r.name), {
      url: r.url,
      headers: () => ({ accept: "application/json", ...(r.authorization === "" ? {} : { authorization: r.authorization }) }),
    }]));
  }

  /** One signed SET per receiver for this change. */
  async notices(change: RevocationChange): Promise<Notice[]> {
    const { event, payload } = caepEvent(change);
    const subId = change.target === "identity"
      ? { format: "uri", uri: change.subject }
      : { format: "opaque", id: change.subject };
    const iat = Math.floor(change.at / 1000);
    return Promise.all(this.#receivers.map(async (r) => {
      const body = await new SignJWT({ txn: change.eventId, sub_id: subId, events: { [event]: payload } })
        .setProtectedHeader({ alg: this.#key.alg, kid: this.#key.kid, typ: SET_JOSE_TYPE })
        .setIssuer(this.issuer)
        .setAudience(r.audience)
        .setIssuedAt(iat)
        .setJti(randomUUID())
        .sign(this.#key.key);
      return {
        id: noticeId("caep", r.name, `${change.change}:${change.eventId}:${change.target}:${change.subject}`),
        channel: "caep" as const, receiver: r.name, createdAt: change.at, contentType: SET_MEDIA_TYPE, body,
      };
    }));
  }
}

/** The CAEP (or RISC) event URI and payload for a change. */
export function caepEvent(change: RevocationChange): { event: string; payload: Record<string, unknown> } {
  const common = {
    event_timestamp: Math.floor(change.at / 1000),
    initiating_entity: change.change === "revoke" ? "policy" : "admin",
    reason_admin: { en: change.reason === "" ? `${change.change} by ${change.by}` : change.reason },
  };
  if (change.target === "identity") {
    return change.change === "revoke"
      ? { event: CAEP.sessionRevoked, payload: common }
      : { event: RISC.accountEnabled, payload: {} };
  }
  return {
    event: CAEP.credentialChange,
    // "app" is not it; CAEP lets both sides agree on a value: these are bearer tokens and API keys.
    payload: { ...common, credential_type: "api-key", change_type: change.change === "revoke" ? "revoke" : "update" },
  };
}
