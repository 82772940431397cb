// pathProblem: the normal-form check every Check runs on the request path. A table of forms, and
// fast-check properties: whatever string comes in, nothing crashes, and nothing accepted holds a
// dot segment, an empty segment, a backslash or a separator once percent-decoded.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { pathProblem } from "../../src/decision/index.js";

describe("pathProblem", () => {
  it.each([
    "/", "/v1/deploy", "/v1/deploy/", "/api/tickets/4711", "/files/a.b.c", "/v1.2/...", "/x/.hidden", "/x/..x", "/a%20b", "/%41", "/~user/a-b_c",
    "/v1/customers/%C3%A9", "/a:b@c!$&'()*+,=",
  ])("accepts %s", (path) => {
    expect(pathProblem(path)).toBeUndefined();
  });

  it.each([
    ["", "does not start with /"],
    ["*", "does not start with /"],
    ["v1/deploy", "does not start with /"],
    ["http://x/v1", "does not start with /"],
    ["//v1/deploy", "empty segment"],
    ["/v1//deploy", "empty segment"],
    ["/v1/deploy//", "empty segment"],
    ["/.", "dot segment"],
    ["/..", "dot segment"],
    ["/v1/./deploy", "dot segment"],
    ["/v1/deploy/../admin", "dot segment"],
    ["/v1/deploy/..", "dot segment"],
    ["/v1/deploy/.", "dot segment"],
    ["/v1/%2e%2e/admin", "encoded dot"],
    ["/v1/.%2E/admin", "encoded dot"],
    ["/v1/hosts/%2F..%2Fx/quarantine", "encoded slash"],
    ["/v1/hosts/a%2fb", "encoded slash"],
    ["/v1/hosts/a%5Cb", "encoded slash or backslash"],
    ["/v1/hosts/a%5cb", "encoded slash or backslash"],
    ["/v1\\admin", "backslash"],
    ["/v1/a;b", "semicolon"],
    ["/v1/a%3Bb", "encoded semicolon"],
    ["/v1/a%252F", "double percent-encoding"],
    ["/v1/a%00", "control character"],
    ["/v1/a%0a", "control character"],
    ["/v1/a%7F", "control character"],
    ["/v1/a%", "malformed"],
    ["/v1/a%2", "malformed"],
    ["/v1/a%zz", "malformed"],
    ["/v1/a b", "space"],
    ["/v1/a\tb", "control"],
    ["/v1/a\u0000", "control"],
    ["/v1/caf\u00e9", "non-ASCII"],
    ["/v1/a#frag", "fragment"],
  ])("refuses %j (%s)", (path, because) => {
    expect(pathProblem(path)).toContain(because);
  });
});

/** Percent-decodes byte by byte (as latin1), so every %XX becomes the character it names. */
function decodeBytes(path: string): string {
  return path.replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}

// Strings made of the pieces path tricks are built from (and plain ones), so the generator finds them.
const trickyPiece = fc.constantFrom(
  "/", "/", ".", "..", "a", "b0", "~", "-", "%2F", "%2f", "%5C", "%5c", "%2e", "%2E", "%25", "%3B", "%00", "%41", "%",
  "%g", "\\", ";", "#", " ", "\u212A", "\u00e9",
);
const trickyPath = fc.array(trickyPiece, { maxLength: 16 }).map((pieces) => pieces.join(""));
const slashFirst = trickyPath.map((p) => `/${p}`);

describe("pathProblem properties", () => {
  it("never accepts a path that, decoded, has a dot or empty segment, a backslash, a semicolon or a control character", () => {
    fc.assert(fc.property(fc.oneof(trickyPath, slashFirst, fc.string(), fc.string({ unit: "binary" })), (path) => {
      if (pathProblem(path) !== undefined) return;
      expect(path.startsWith("/")).toBe(true);
      const decoded = decodeBytes(path);
      // Encoded "/" or "\" would make new segments once decoded: none may be there.
      expect(decoded.split("/").length).toBe(path.split("/").length);
      const segments = decoded.split("/").slice(1);
      segments.forEach((segment, i) => {
        expect(segment === "." || segment === "..").toBe(false);
        if (i < segments.length - 1) expect(segment).not.toBe("");
      });
      // eslint-disable-next-line no-control-regex -- control characters are what must not be there
      expect(decoded).not.toMatch(/[\\;#%\u0000-\u0020\u007f]/u);
    }), { numRuns: 3000 });
  });

  it("accepts any path of plain segments, and refuses it once a dot segment or // is spliced in", () => {
    const segment = fc.stringMatching(/^[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,11}$/).filter((s) => s !== "." && s !== "..");
    fc.assert(fc.property(fc.array(segment, { minLength: 1, maxLength: 8 }), fc.nat(), fc.constantFrom("..", ".", ""), (segments, at, bad) => {
      const path = `/${segments.join("/")}`;
      expect(pathProblem(path)).toBeUndefined();
      const spliced = [...segments];
      spliced.splice(at % (segments.length + 1), 0, bad);
      const hostile = `/${spliced.join("/")}`;
      // "" spliced at the very end only adds a trailing slash, which is normal.
      if (bad === "" && at % (segments.length + 1) === segments.length) expect(pathProblem(hostile)).toBeUndefined();
      else expect(pathProblem(hostile)).toBeDefined();
    }));
  });

  it("reading a path up to its query is reading the path without it: the query never changes the answer", () => {
    // The pipeline passes the whole path and where its query starts; a "%" or "%2" right before
    // the "?" must stay malformed whatever the query holds (the reader must not take query
    // characters as the hex digits).
    const query = fc.oneof(fc.string(), trickyPath, fc.constantFrom("2F", "41", "2e", "/..", "", "?"));
    fc.assert(fc.property(fc.oneof(trickyPath, slashFirst, fc.string()), query, (path, q) => {
      const before = path.split("?")[0] ?? "";
      expect(pathProblem(`${before}?${q}`, before.length)).toBe(pathProblem(before));
    }), { numRuns: 3000 });
    expect(pathProblem("/a%?41", 3)).toBe("path has a malformed percent-encoding");
    expect(pathProblem("/a%4?1", 4)).toBe("path has a malformed percent-encoding");
    expect(pathProblem("?/a", 0)).toBe("path does not start with /");
  });
});
