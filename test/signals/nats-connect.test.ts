// NATS credentials and TLS for `--bus`, against real nats-server processes this test starts on
// free ports (token; user + password and NKey; TLS with client certificates from openssl): the
// right credentials open the signal bucket, wrong or missing ones fail clearly, and no secret is
// ever in an error or a log line. The shared NATS on 4222 is not touched.

import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createUser } from "@nats-io/nkeys";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig, parseServeArgs } from "../../src/config/index.js";
import { storeSchema } from "../../src/config/schema.js";
import type { StoreConfig } from "../../src/config/schema.js";
import { VigilError } from "../../src/errors/index.js";
import { createNatsStore } from "../../src/signals/index.js";
import { describeBusSecurity, natsSecurityOptions } from "../../src/signals/nats-connect.js";
import { NATS_SERVER, startNats } from "./nats-server.js";
import type { NatsProcess } from "./nats-server.js";
import { captureLogger } from "./support.js";

const suite = NATS_SERVER === undefined ? describe.skip : describe;

const TOKEN = "tok-3f9a1c7e5b2d4068a1b2c3d4e5f60718";
const PASSWORD = "pw-9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a49";
const nkeyUser = createUser();
const NKEY_SEED = new TextDecoder().decode(nkeyUser.getSeed());
const SECRETS = [TOKEN, PASSWORD, NKEY_SEED];

const scratch = mkdtempSync(join(tmpdir(), "vigil-nats-auth-"));
const file = (name: string, content: string): string => {
  const path = join(scratch, name);
  writeFileSync(path, content, { mode: 0o600 });
  return path;
};

function config(bus: string, overrides: Record<string, unknown> = {}): StoreConfig {
  return storeSchema.parse({ bus, bucketPrefix: `vigilauth_${String(process.pid)}`, freshnessBoundMs: 1_000, ...overrides });
}

/** Opens the signal bucket with these settings; returns "ok" or the error message, and the log. */
async function open(settings: StoreConfig): Promise<{ result: string; logged: string }> {
  const log = captureLogger();
  const store = createNatsStore(settings, { logger: log.logger, name: "auth-test" });
  let result = "ok";
  try {
    await store.ready();
    await store.put({ id: `a-${String(Date.now())}`, kind: "risk", subject: "spiffe://example.org/ns/a/sa/b", source: "test", observedAt: Date.now(), data: { level: "low" } });
  } catch (error) {
    result = VigilError.from(error).message;
  } finally {
    await store.close();
  }
  return { result, logged: JSON.stringify(log.lines) };
}

function expectNoSecret(...texts: string[]): void {
  for (const text of texts) for (const secret of SECRETS) expect(text).not.toContain(secret);
}

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

describe("bus security settings", () => {
  it.each([
    ["a password in the URL", { bus: "nats://vigil:hunter2@nats:4222" }, "must not carry credentials"],
    ["a token in a scheme-less URL", { bus: "s3cr3t@nats:4222" }, "must not carry credentials"],
    ["a user without a password file", { busAuth: { user: "vigil" } }, "user and passwordFile go together"],
    ["two methods at once", { busAuth: { tokenFile: "/t", credsFile: "/c" } }, "choose one of"],
    ["a client certificate without its key", { busTls: { certFile: "/c.pem" } }, "certFile and keyFile go together"],
  ])("refuses %s", (_name, settings, message) => {
    const result = storeSchema.safeParse({ bus: "nats://nats:4222", ...settings });
    expect(result.success).toBe(false);
    expect(JSON.stringify(result.error?.issues)).toContain(message);
    expect(JSON.stringify(result.error?.issues)).not.toContain("hunter2");
  });

  it("maps the serve flags onto the settings", () => {
    const { values } = parseServeArgs([
      "--bus", "tls://nats:4222", "--bus-token-file", "/s/token", "--bus-tls-ca", "/s/ca.pem", "--bus-tls-cert", "/s/c.pem", "--bus-tls-key", "/s/k.pem",
    ]);
    const store = loadConfig(values, {}).store;
    expect(store.busAuth).toMatchObject({ tokenFile: "/s/token", user: "", credsFile: "" });
    expect(store.busTls).toEqual({ caFile: "/s/ca.pem", certFile: "/s/c.pem", keyFile: "/s/k.pem" });
    expect(describeBusSecurity(store)).toEqual({ auth: "token", tls: true, clientCertificate: true });
    const both = parseServeArgs(["--bus", "nats://n:4222", "--bus-user", "vigil", "--bus-password-file", "/p", "--bus-nkey-file", "/n"]).values;
    expect(() => loadConfig(both, {})).toThrow("choose one of");
  });

  it.each([
    ["a missing token file", { busAuth: { tokenFile: join(scratch, "nope") } }, `cannot read the NATS token file ${join(scratch, "nope")}: ENOENT`],
    ["an empty password file", { busAuth: { user: "vigil", passwordFile: file("empty", "\n") } }, "is empty"],
    ["a missing CA file", { busTls: { caFile: join(scratch, "ca-nope.pem") } }, "cannot read the NATS TLS CA file"],
  ])("fails clearly on %s", (_name, settings, message) => {
    expect(() => natsSecurityOptions(config("nats://127.0.0.1:1", settings))).toThrow(message);
  });

  it("re-reads a rotated secret and keeps the last good one when the file is gone", () => {
    const path = file("rotating", `${TOKEN}\n`);
    const options = natsSecurityOptions(config("nats://127.0.0.1:1", { busAuth: { tokenFile: path } }));
    const auth = options.authenticator;
    if (auth === undefined || Array.isArray(auth)) throw new Error("expected one authenticator");
    expect(auth()).toEqual({ auth_token: TOKEN });
    writeFileSync(path, "tok-rotated-0123456789abcdef");
    expect(auth()).toEqual({ auth_token: "tok-rotated-0123456789abcdef" });
    rmSync(path);
    expect(auth()).toEqual({ auth_token: "tok-rotated-0123456789abcdef" });
  });
});

suite("the signal bucket behind an authenticating nats-server", () => {
  const servers: NatsProcess[] = [];
  let tokenServer: NatsProcess;
  let usersServer: NatsProcess;
  let tlsServer: NatsProcess;
  const pki = {
    ca: join(scratch, "ca.pem"), caKey: join(scratch, "ca.key"),
    otherCa: join(scratch, "other-ca.pem"), otherCaKey: join(scratch, "other-ca.key"),
    server: join(scratch, "server.pem"), serverKey: join(scratch, "server.key"),
    client: join(scratch, "client.pem"), clientKey: join(scratch, "client.key"),
  };

  function makePki(): void {
    const openssl = (...args: string[]): void => { execFileSync("openssl", args, { stdio: "ignore" }); };
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl("req", "-x509", ...ec, "-keyout", pki.caKey, "-out", pki.ca, "-days", "1", "-subj", "/CN=vigil test CA");
    openssl("req", "-x509", ...ec, "-keyout", pki.otherCaKey, "-out", pki.otherCa, "-days", "1", "-subj", "/CN=someone else's CA");
    const leaf = (cert: string, key: string, cn: string, ext: string): void => {
      const csr = `${cert}.csr`;
      openssl("req", ...ec, "-keyout", key, "-out", csr, "-subj", `/CN=${cn}`);
      openssl("x509", "-req", "-in", csr, "-CA", pki.ca, "-CAkey", pki.caKey, "-CAcreateserial", "-out", cert, "-days", "1", "-extfile", file(`${cn}.ext`, ext));
    };
    leaf(pki.server, pki.serverKey, "nats", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
    leaf(pki.client, pki.clientKey, "vigil", "subjectAltName=URI:spiffe://example.org/ns/vigil/sa/vigil\nextendedKeyUsage=clientAuth\n");
  }

  beforeAll(async () => {
    makePki();
    tokenServer = await startNats(scratch, "token", `authorization { token: "${TOKEN}" }`);
    usersServer = await startNats(scratch, "users", `authorization { users: [ { user: "vigil", password: "${PASSWORD}" }, { nkey: "${nkeyUser.getPublicKey()}" } ] }`);
    tlsServer = await startNats(scratch, "tls", `authorization { token: "${TOKEN}" }\ntls { cert_file: "${pki.server}", key_file: "${pki.serverKey}", ca_file: "${pki.ca}", verify: true, timeout: 2 }`, "tls");
    servers.push(tokenServer, usersServer, tlsServer);
  }, 30_000);

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  const tokenFile = () => file("token", `${TOKEN}\n`);
  const wrongTokenFile = () => file("wrong-token", "tok-wrong-00000000000000000000000");

  it.each([
    ["the right token", "ok", () => config(tokenServer.url, { busAuth: { tokenFile: tokenFile() } })],
    ["a wrong token", "Authorization Violation", () => config(tokenServer.url, { busAuth: { tokenFile: wrongTokenFile() } })],
    ["no credentials", "Authorization Violation", () => config(tokenServer.url)],
    ["the right user and password", "ok", () => config(usersServer.url, { busAuth: { user: "vigil", passwordFile: file("pw", PASSWORD) } })],
    ["a wrong password", "Authorization Violation", () => config(usersServer.url, { busAuth: { user: "vigil", passwordFile: file("bad-pw", `${PASSWORD}x`) } })],
    ["the right NKey seed", "ok", () => config(usersServer.url, { busAuth: { nkeySeedFile: file("seed", `${NKEY_SEED}\n`) } })],
    ["an NKey the server does not know", "Authorization Violation", () => config(usersServer.url, { busAuth: { nkeySeedFile: file("other-seed", new TextDecoder().decode(createUser().getSeed())) } })],
    ["TLS with the CA, a client certificate and the token", "ok", () => config(tlsServer.url, { busAuth: { tokenFile: tokenFile() }, busTls: { caFile: pki.ca, certFile: pki.client, keyFile: pki.clientKey } })],
    ["TLS without a client certificate", "TLS", () => config(tlsServer.url, { busAuth: { tokenFile: tokenFile() }, busTls: { caFile: pki.ca } })],
    ["TLS trusting another CA", "TLS", () => config(tlsServer.url, { busAuth: { tokenFile: tokenFile() }, busTls: { caFile: pki.otherCa, certFile: pki.client, keyFile: pki.clientKey } })],
    ["TLS with a client certificate but a wrong token", "Authorization Violation", () => config(tlsServer.url, { busAuth: { tokenFile: wrongTokenFile() }, busTls: { caFile: pki.ca, certFile: pki.client, keyFile: pki.clientKey } })],
  ])("with %s: %s", async (_name, expected, settings) => {
    const { result, logged } = await open(settings());
    if (expected === "ok") expect(result).toBe("ok");
    else if (expected === "TLS") expect(result).toMatch(/cannot open signal bucket .*: .*(certificate|TLS|tls|alert|socket|closed|CONNECTION_REFUSED|timeout)/i);
    else {
      expect(result).toContain("cannot open signal bucket");
      expect(result).toContain(expected);
    }
    expectNoSecret(result, logged);
  }, 20_000);
});
