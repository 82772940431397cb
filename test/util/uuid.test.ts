import { describe, expect, it } from "vitest";
import { createUuidV4 } from "../../src/util/uuid.js";

const V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("createUuidV4", () => {
  it("makes RFC 9562 version 4 UUIDs, unique over many batches", () => {
    const next = createUuidV4();
    const seen = new Set<string>();
    for (let i = 0; i < 20_000; i++) {
      const id = next();
      expect(id).toMatch(V4);
      seen.add(id);
    }
    expect(seen.size).toBe(20_000);
  });

  it("spreads every random nibble over all 16 values (no stuck or constant position)", () => {
    const next = createUuidV4();
    const positions = Array.from({ length: 36 }, () => new Set<string>());
    for (let i = 0; i < 4_000; i++) {
      const id = next();
      for (let p = 0; p < 36; p++) positions[p]?.add(id[p] ?? "");
    }
    positions.forEach((values, p) => {
      if ([8, 13, 18, 23].includes(p)) expect([...values]).toEqual(["-"]);
      else if (p === 14) expect([...values]).toEqual(["4"]);
      else if (p === 19) expect([...values].sort()).toEqual(["8", "9", "a", "b"]);
      else expect(values.size, `position ${p}`).toBe(16);
    });
  });

  it("gives independent generators independent ids", () => {
    const a = createUuidV4();
    const b = createUuidV4();
    expect(a()).not.toBe(b());
  });
});
