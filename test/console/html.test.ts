// Escaping is the console's defence against values an attacker chose (paths, caller names,
// reasons, tool names): whatever the string, interpolated text can neither open a tag nor leave
// a quoted attribute.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { escapeHtml, html, Html } from "../../src/transport/console/html.js";

describe("html templates", () => {
  it.each([
    { name: "a script tag", value: "<script>alert(1)</script>", out: "&lt;script&gt;alert(1)&lt;/script&gt;" },
    { name: "an attribute breakout", value: "\" onmouseover=\"x", out: "&quot; onmouseover=&quot;x" },
    { name: "a single-quoted breakout", value: "' autofocus onfocus='x", out: "&#39; autofocus onfocus=&#39;x" },
    { name: "an entity", value: "&lt;", out: "&amp;lt;" },
    { name: "a backtick", value: "`x`", out: "&#96;x&#96;" },
    { name: "plain text", value: "spiffe://example.org/ns/ci/sa/deployer", out: "spiffe://example.org/ns/ci/sa/deployer" },
  ])("escapes $name", ({ value, out }) => {
    expect(html`<td title="${value}">${value}</td>`.value).toBe(`<td title="${out}">${out}</td>`);
  });

  it("keeps markup built by html`` and renders arrays, skipping null, undefined and false", () => {
    const inner = html`<b>${"<i>"}</b>`;
    expect(html`<p>${inner}${[html`<br>`, "<x>"]}${null}${undefined}${false}${0}</p>`.value).toBe("<p><b>&lt;i&gt;</b><br>&lt;x&gt;0</p>");
  });

  it("never lets an interpolated string add a tag or leave a quoted attribute (property)", () => {
    fc.assert(fc.property(fc.string({ unit: "binary", maxLength: 200 }), (value) => {
      const out = escapeHtml(value);
      expect(out).not.toMatch(/[<>"'`]/);
      // Every & starts an entity this escaper wrote or the input's own text, escaped.
      expect(out.replace(/&(amp|lt|gt|quot|#39|#96);/g, "")).not.toContain("&");
      expect(html`<a title="${value}">${value}</a>`).toBeInstanceOf(Html);
    }), { numRuns: 2000 });
  });
});
