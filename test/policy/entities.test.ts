// The entities file (--entities): what it accepts, what it refuses (naming where, never loading
// half a file), the lookups policies see, and hot reload keeping the last good entities.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseEntities, watchEntitiesFile } from "../../src/policy/index.js";

const HEAD = "apiVersion: vigil.dev/v1alpha1\nkind: Entities\n";
const GOOD = `${HEAD}spec:
  subjects:
    - ids: [u-1, alice@example.com]
      roles: [editor]
      attributes: { email: alice@example.com, level: 3, teams: [a, b] }
  resources:
    - type: todo
      ids: [t-1]
      attributes: { ownerID: alice@example.com }
`;

describe("parseEntities", () => {
  it("keys a subject by every id, a resource by type and id", () => {
    const book = parseEntities(GOOD, "e.yaml");
    expect(book.subject("u-1")).toEqual({ roles: ["editor"], attributes: { email: "alice@example.com", level: 3, teams: ["a", "b"] } });
    expect(book.subject("alice@example.com")).toBe(book.subject("u-1"));
    expect(book.subject("bob")).toBeUndefined();
    expect(book.subject("")).toBeUndefined();
    expect(book.resource("todo", "t-1")?.attributes).toEqual({ ownerID: "alice@example.com" });
    expect(book.resource("user", "t-1")).toBeUndefined();
    // A prototype member is no entity.
    expect(book.subject("constructor")).toBeUndefined();
    expect(book.resource("todo", "__proto__")).toBeUndefined();
  });

  it.each([
    { name: "another kind", text: "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nspec: {}\n", problem: "kind" },
    { name: "an unknown field", text: `${HEAD}spec:\n  subjects:\n    - ids: [a]\n      rolez: [x]\n`, problem: "rolez" },
    { name: "a subject without ids", text: `${HEAD}spec:\n  subjects:\n    - roles: [x]\n`, problem: "spec.subjects[0].ids" },
    { name: "an id given to two subjects", text: `${HEAD}spec:\n  subjects:\n    - ids: [a]\n    - ids: [b, a]\n`, problem: "\"a\" is given to two subjects" },
    { name: "a resource given twice", text: `${HEAD}spec:\n  resources:\n    - { type: t, ids: [x] }\n    - { type: t, ids: [x] }\n`, problem: "given twice" },
    { name: "a prototype key in attributes", text: `${HEAD}spec:\n  subjects:\n    - ids: [a]\n      attributes: { constructor: 1 }\n`, problem: "\"constructor\" is not allowed" },
    { name: "attributes nested too deep", text: `${HEAD}spec:\n  subjects:\n    - ids: [a]\n      attributes: { a: [[[[[[[[[[1]]]]]]]]]] }\n`, problem: "deeper than 8" },
    { name: "broken YAML", text: `${HEAD}spec: {subjects: [`, problem: "YAML" },
    { name: "a duplicate YAML key", text: `${HEAD}spec:\n  subjects: []\n  subjects: []\n`, problem: "YAML" },
  ])("refuses $name, saying where", ({ text, problem }) => {
    expect(() => parseEntities(text, "e.yaml")).toThrow(problem);
  });
});

describe("watchEntitiesFile", () => {
  const dir = mkdtempSync(join(tmpdir(), "vigil-entities-"));
  afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

  it("reloads a change, and keeps the last good entities when a change is broken", async () => {
    const file = join(dir, "entities.yaml");
    writeFileSync(file, GOOD);
    const errors: string[] = [];
    const watch = await watchEntitiesFile(file, { onError: (e) => errors.push(e.message), debounceMs: 10 });
    try {
      expect(watch.current().subject("u-1")?.roles).toEqual(["editor"]);
      writeFileSync(file, GOOD.replace("[editor]", "[admin]"));
      await watch.reload();
      expect(watch.current().subject("u-1")?.roles).toEqual(["admin"]);
      writeFileSync(file, `${HEAD}spec: {subjects: [`);
      await watch.reload();
      expect(watch.current().subject("u-1")?.roles).toEqual(["admin"]);
      expect(errors.join("\n")).toContain("YAML");
    } finally {
      watch.close();
    }
  });

  it("refuses to start on a missing or broken file", async () => {
    await expect(watchEntitiesFile(join(dir, "none.yaml"))).rejects.toThrow("cannot read the entities file");
    const broken = join(dir, "broken.yaml");
    writeFileSync(broken, "kind: Entities\n");
    await expect(watchEntitiesFile(broken)).rejects.toThrow("entities file refused");
  });
});
