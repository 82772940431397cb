// The notification settings: what the schema and the flags accept, and what they refuse with a
// message naming the setting (never the secret a file holds).

import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { loadConfig, parseConfig } from "../../src/config/index.js";
import { outboxPath, startNotifications } from "../../src/notify/index.js";
import { createMetrics } from "../../src/telemetry/metrics.js";

const key = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "vigil-notify-settings-"));
  const file = join(dir, "k.pem");
  writeFileSync(file, generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "pem", type: "pkcs8" }));
  return file;
};

describe("notification settings", () => {
  const refused: { name: string; input: Record<string, unknown>; message: RegExp }[] = [
    { name: "a hook URL with credentials in it", input: { revocationHookUrl: "https://user:pw@hooks.example.com/x" }, message: /must not carry credentials/ },
    { name: "a hook that is not http(s)", input: { revocationHookUrl: "file:///etc/passwd" }, message: /http:\/\/ or https:\/\// },
    { name: "a transmitter without a signing key", input: { transmitter: { issuer: "https://vigil.example.com" } }, message: /signing key file/ },
    { name: "an issuer with a query", input: { transmitter: { issuer: "https://vigil.example.com/?x=1", signingKeyFile: "/k" } }, message: /without query or fragment/ },
    {
      name: "CAEP receivers without an issuer",
      input: { transmitter: { receivers: [{ name: "idp", url: "https://idp.example.com/push", audience: "idp" }] } }, message: /need the transmitter's issuer/,
    },
    {
      name: "two receivers with one name",
      input: { approvalWebhooks: [{ name: "chat", url: "https://a.example.com/", secretFile: "/s" }, { name: "chat", url: "https://b.example.com/", secretFile: "/s" }] },
      message: /used twice/,
    },
    { name: "a receiver name that could not be a log field", input: { approvalWebhooks: [{ name: "Chat Ops!", url: "https://a.example.com/", secretFile: "/s" }] }, message: /must be 1-64/ },
    { name: "an outbox without retry delays", input: { outbox: { retryDelaysMs: [] } }, message: /retryDelaysMs/ },
  ];
  for (const c of refused) {
    it(`refuses ${c.name}`, () => {
      expect(() => parseConfig(c.input)).toThrow(c.message);
    });
  }

  it("puts the outbox beside the journal unless told otherwise, and in memory with a memory-only journal", () => {
    expect(outboxPath(parseConfig({ store: { journalPath: "/var/lib/vigil/journal.jsonl" } }))).toBe("/var/lib/vigil/outbox.jsonl");
    expect(outboxPath(parseConfig({ store: { journalPath: "/j/journal.jsonl" }, outbox: { path: "/o/notices.jsonl" } }))).toBe("/o/notices.jsonl");
    expect(outboxPath(parseConfig({ store: { journalPath: "" } }))).toBe("");
  });

  it("maps the flags onto the settings, and wants the webhook URL and secret file together", () => {
    const config = loadConfig({
      "transmitter-issuer": "https://vigil.example.com", "transmitter-key-file": "/k.pem", "outbox": "/o.jsonl",
      "approval-webhook-url": "https://chat.example.com/hook", "approval-webhook-secret-file": "/s", "console-url": "https://vigil.example.com",
    }, {});
    expect(config.transmitter).toMatchObject({ issuer: "https://vigil.example.com", signingKeyFile: "/k.pem" });
    expect(config.outbox.path).toBe("/o.jsonl");
    expect(config.approvalWebhooks).toEqual([{ name: "default", url: "https://chat.example.com/hook", secretFile: "/s" }]);
    expect(config.consoleUrl).toBe("https://vigil.example.com");
    expect(() => loadConfig({ "approval-webhook-url": "https://chat.example.com/hook" }, {})).toThrow(/go together/);
  });

  it("starts no outbox when nobody is to be told, but serves the transmitter's keys when an issuer is set", async () => {
    const deps = { logger: pino({ level: "silent" }), metrics: createMetrics({ defaultMetrics: false }) };
    const none = await startNotifications(parseConfig({ store: { journalPath: "" } }), deps);
    expect(none).toEqual({ transmitter: undefined, notifications: undefined });
    const keysOnly = await startNotifications(parseConfig({ store: { journalPath: "" }, transmitter: { issuer: "https://vigil.example.com", signingKeyFile: key() } }), deps);
    expect(keysOnly.notifications).toBeUndefined();
    expect(keysOnly.transmitter?.jwks().keys[0]).toMatchObject({ kty: "EC", crv: "P-256", alg: "ES256" });
  });

  it("refuses to start on an unreadable signing key or a short webhook secret, naming the file only", async () => {
    const deps = { logger: pino({ level: "silent" }), metrics: createMetrics({ defaultMetrics: false }) };
    const dir = mkdtempSync(join(tmpdir(), "vigil-notify-settings-"));
    await expect(startNotifications(parseConfig({ transmitter: { issuer: "https://v.example.com", signingKeyFile: join(dir, "missing.pem") } }), deps))
      .rejects.toThrow(/cannot read the transmitter signing key file .*missing\.pem/);
    const secret = join(dir, "secret");
    writeFileSync(secret, "tiny-secret");
    const failure = startNotifications(parseConfig({ store: { journalPath: "" }, approvalWebhooks: [{ name: "chat", url: "https://chat.example.com/", secretFile: secret }] }), deps);
    await expect(failure).rejects.toThrow(/shorter than 16 bytes/);
    await expect(failure).rejects.not.toThrow(/tiny-secret/);
  });
});
