import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { GEN_DIR, generateTypes, genTypesArgs } from "../../../src/transport/envoy/codegen.js";
import { LOADER_OPTIONS } from "../../../src/transport/envoy/proto.js";

function listFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

describe("generated proto types", () => {
  const outDir = mkdtempSync(join(tmpdir(), "vigil-gen-"));
  afterAll(() => {
    rmSync(outDir, { recursive: true, force: true });
  });

  it("are generated with exactly the loader's options", () => {
    const args = genTypesArgs(outDir);
    expect(args).toContain("--keepCase");
    expect(args).toContain("--oneofs");
    expect(args).toContain(`--longs=${LOADER_OPTIONS.longs.name}`);
    expect(args).toContain(`--enums=${LOADER_OPTIONS.enums.name}`);
    expect(args).toContain("--importFileExtension=.js");
    expect(args).not.toContain("--defaults");
  });

  it("match what is committed in src/transport/envoy/gen (run `npm run gen:proto` after editing proto/)", () => {
    generateTypes(outDir);
    const committed = listFiles(GEN_DIR);
    expect(listFiles(outDir)).toEqual(committed);
    for (const file of committed) {
      expect(readFileSync(join(outDir, file), "utf8"), file).toBe(readFileSync(join(GEN_DIR, file), "utf8"));
    }
  });
});
