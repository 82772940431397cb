import { createHmac } from "node:crypto";
import { HTTP } from "cloudevents";
import { describe, expect, it } from "vitest";
import { ApprovalWebhooks, webhookSecret, webhookSignature, type ApprovalNoticeEvent } from "../../src/notify/index.js";

const SECRET = "whsec_" + Buffer.from("0123456789abcdef0123456789abcdef").toString("base64");

function hooks(consoleUrl = "https://vigil.example.com/"): ApprovalWebhooks {
  return new ApprovalWebhooks({
    hooks: [{ name: "chatops", url: "https://chat.example.com/hooks/vigil", secretFile: "/s/chatops" }],
    consoleUrl, source: "https://vigil.example.com", read: () => `${SECRET}\n`,
  });
}

const opened: ApprovalNoticeEvent = {
  type: "opened", approvalId: "apr_7Hq2", caller: "spiffe://example.org/ns/ci/sa/deployer", action: "deploy-api POST /v1/deploy",
  rule: "deploy-api/prod-deploy-out-of-window", reason: "production deploy outside the change window needs a human", status: "pending",
  by: "", at: Date.UTC(2026, 10, 25, 12),
};

describe("approval webhooks", () => {
  it("send a CloudEvents 1.0 event with what a human needs to act", () => {
    const [notice] = hooks().notices(opened);
    expect(notice?.contentType).toMatch(/^application\/cloudevents\+json/);
    // The SDK itself reads it back as a valid CloudEvent.
    const event = HTTP.toEvent({ headers: { "content-type": notice?.contentType ?? "" }, body: notice?.body ?? "" });
    const ce = Array.isArray(event) ? event[0] : event;
    expect(ce).toMatchObject({ specversion: "1.0", type: "vigil.approval.opened", source: "https://vigil.example.com", subject: "apr_7Hq2", id: "apr_7Hq2.opened" });
    expect(ce?.data).toEqual({
      approval_id: "apr_7Hq2", status: "pending", caller: opened.caller, action: opened.action, rule: opened.rule, reason: opened.reason,
      commands: { approve: "vigil approvals approve apr_7Hq2", deny: "vigil approvals deny apr_7Hq2" },
      console_url: "https://vigil.example.com/console/approvals/apr_7Hq2",
    });
  });

  it("tell who decided, as a separate event of its own type", () => {
    const [notice] = hooks("").notices({ ...opened, type: "decided", status: "approved", by: "alice", reason: "approved by alice" });
    const body = JSON.parse(notice?.body ?? "{}") as { type: string; id: string; data: Record<string, unknown> };
    expect(body.type).toBe("vigil.approval.decided");
    expect(body.id).toBe("apr_7Hq2.decided");
    expect(body.data).toMatchObject({ status: "approved", decided_by: "alice" });
    expect(body.data).not.toHaveProperty("console_url");
    expect(notice?.id).not.toBe(hooks().notices(opened)[0]?.id);
  });

  it("sign each attempt the Standard Webhooks way, so the receiver can check body and time", () => {
    const h = hooks();
    const [notice] = h.notices(opened);
    if (notice === undefined) throw new Error("no notice");
    const now = Date.UTC(2026, 10, 25, 12, 0, 5);
    const headers = h.destinations().get("approval_webhook/chatops")?.headers(notice, now) ?? {};
    expect(headers["webhook-id"]).toBe(notice.id);
    expect(headers["webhook-timestamp"]).toBe(String(now / 1000));
    const key = Buffer.from("0123456789abcdef0123456789abcdef");
    const expected = createHmac("sha256", key).update(`${notice.id}.${String(now / 1000)}.${notice.body}`).digest("base64");
    expect(headers["webhook-signature"]).toBe(`v1,${expected}`);
    // A body changed on the way no longer matches.
    expect(webhookSignature(key, notice.id, now / 1000, notice.body.replace("approve", "apprOve"))).not.toBe(headers["webhook-signature"]);
    // The secret never travels.
    expect(JSON.stringify(headers) + notice.body).not.toContain("0123456789abcdef0123456789abcdef");
  });

  it("refuse a secret shorter than 16 bytes", () => {
    expect(() => webhookSecret("short", "chatops")).toThrow(/shorter than 16 bytes/);
    expect(webhookSecret("a-raw-secret-of-enough-length", "x").length).toBe(29);
  });

  it("escape the approval id in the console link", () => {
    const [notice] = hooks().notices({ ...opened, approvalId: "apr_../../admin" });
    expect((JSON.parse(notice?.body ?? "{}") as { data: { console_url: string } }).data.console_url)
      .toBe("https://vigil.example.com/console/approvals/apr_..%2F..%2Fadmin");
  });
});
