// Loading a policy directory: YAML files in name order, multi-document files, hidden files and
// ConfigMap "..data" entries skipped, symlinks followed, one error listing every problem.

import { mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { VigilError } from "../../src/errors/index.js";
import type { PolicyDocument } from "../../src/policy/index.js";
import { compilePolicy, loadCompiledPolicy, loadPolicyDir, parsePolicyDocuments, requiredPolicyProblems } from "../../src/policy/index.js";
import { policyYaml } from "./policy-files.js";
import { policyInput } from "./policy-input.js";

describe("loadPolicyDir", () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "vigil-policy-"));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads *.yaml and *.yml files in name order, with several documents per file", async () => {
    await writeFile(join(dir, "b.yml"), policyYaml("bravo"));
    await writeFile(join(dir, "a.yaml"), `${policyYaml("alpha")}---\n${policyYaml("alpha-two")}`);
    await writeFile(join(dir, "README.md"), "not a policy");
    await writeFile(join(dir, "c.yaml.bak"), "not: a policy");
    const loaded = await loadPolicyDir(dir);
    expect(loaded.files).toEqual([join(dir, "a.yaml"), join(dir, "b.yml")]);
    expect(loaded.documents.map((d) => [d.manifest.metadata.name, d.source.document])).toEqual([["alpha", 1], ["alpha-two", 2], ["bravo", 1]]);
    expect(loaded.version).toBe(compilePolicy(loaded.documents).version);
  });

  it("skips hidden files", async () => {
    await writeFile(join(dir, "a.yaml"), policyYaml("alpha"));
    await writeFile(join(dir, ".draft.yaml"), "this: [is not valid");
    expect((await loadPolicyDir(dir)).files).toEqual([join(dir, "a.yaml")]);
  });

  it("reads a Kubernetes ConfigMap mount through its ..data symlinks", async () => {
    const generation = join(dir, "..2025_06_11_10_00_00.123456789");
    await mkdir(generation);
    await writeFile(join(generation, "guards.yaml"), policyYaml("guards", "deny", "*"));
    await writeFile(join(generation, "tickets.yaml"), policyYaml("tickets"));
    await symlink("..2025_06_11_10_00_00.123456789", join(dir, "..data"));
    await symlink("..data/guards.yaml", join(dir, "guards.yaml"));
    await symlink("..data/tickets.yaml", join(dir, "tickets.yaml"));
    const loaded = await loadCompiledPolicy(dir);
    expect(loaded.files).toEqual([join(dir, "guards.yaml"), join(dir, "tickets.yaml")]);
    expect(loaded.policy.ruleCount).toBe(2);
    expect(loaded.policy.evaluate(policyInput("tickets", "GET", "/")).rule).toBe("guards/everything");
  });

  // The kubelet swaps ..data to a new generation and then removes the old one; a load that
  // resolved ..data just before the swap finds its files vanishing. That is no broken policy: the
  // load reads the new generation instead of failing (a spurious error and a log line per swap).
  it("reads through ConfigMap swaps that remove the generation being read", async () => {
    const generation = async (n: number): Promise<string> => {
      const name = `..2025_06_11_10_00_00.${String(n)}`;
      await mkdir(join(dir, name));
      await writeFile(join(dir, name, "tickets.yaml"), policyYaml("tickets", n % 2 === 0 ? "allow" : "deny"));
      await writeFile(join(dir, name, "guards.yaml"), policyYaml("guards", "deny", "/admin/*"));
      return name;
    };
    let current = await generation(0);
    await symlink(current, join(dir, "..data"));
    await symlink("..data/tickets.yaml", join(dir, "tickets.yaml"));
    await symlink("..data/guards.yaml", join(dir, "guards.yaml"));
    // A kubelet swaps at most once per sync period (a minute); here every 10 ms, while loads run back to back.
    const SWAPS = 40;
    let swaps = 0;
    const swapper = (async () => {
      while (swaps < SWAPS) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        const next = await generation(swaps + 1);
        await symlink(next, join(dir, "..data_tmp"));
        await rename(join(dir, "..data_tmp"), join(dir, "..data"));
        await rm(join(dir, current), { recursive: true });
        current = next;
        swaps++;
      }
    })();
    let loads = 0;
    while (swaps < SWAPS) {
      const loaded = await loadPolicyDir(dir);
      expect(loaded.documents).toHaveLength(2);
      loads++;
    }
    await swapper;
    expect(loads).toBeGreaterThan(10);
  });

  it("refuses a dangling symlink: a file that vanished is not read as no rules", async () => {
    await writeFile(join(dir, "a.yaml"), policyYaml("alpha"));
    await symlink("gone/gone.yaml", join(dir, "gone.yaml"));
    await expect(loadPolicyDir(dir)).rejects.toThrow(`${join(dir, "gone.yaml")}: vanished while the directory was read`);
  });

  it.each([
    ["an empty file", "", "is empty"],
    ["a file of blanks", "\n  \n", "is empty"],
    ["a file of comments only", "# guards\n# (rest not written yet)\n", "holds no policy documents"],
    ["a file of empty documents", "---\n---\n", "holds no policy documents"],
  ])("refuses the whole directory when one file is %s", async (_name, text, message) => {
    await writeFile(join(dir, "a.yaml"), policyYaml("alpha"));
    await writeFile(join(dir, "guards.yaml"), text);
    await expect(loadPolicyDir(dir)).rejects.toThrow(`${join(dir, "guards.yaml")}: ${message}`);
  });

  it("reads a ConfigMap mount from the one generation ..data resolves to, not from its visible links", async () => {
    const generation = join(dir, "..2025_06_11_10_00_00.1");
    await mkdir(generation);
    await writeFile(join(generation, "guards.yaml"), policyYaml("guards", "deny", "*"));
    await writeFile(join(generation, "tickets.yaml"), policyYaml("tickets"));
    await symlink("..2025_06_11_10_00_00.1", join(dir, "..data"));
    // Mid-update: the visible link for guards.yaml is not there (yet, or any more), and a stray
    // link points at a generation that is gone.
    await symlink("..data/tickets.yaml", join(dir, "tickets.yaml"));
    await symlink("..2025_06_11_09_00_00.0/stale.yaml", join(dir, "stale.yaml"));
    const loaded = await loadCompiledPolicy(dir);
    expect(loaded.files).toEqual([join(dir, "guards.yaml"), join(dir, "tickets.yaml")]);
    expect(loaded.policy.evaluate(policyInput("tickets", "GET", "/")).rule).toBe("guards/everything");
  });

  it("refuses a ConfigMap mount whose ..data does not resolve", async () => {
    await symlink("..2025_06_11_10_00_00.1", join(dir, "..data"));
    await symlink("..data/tickets.yaml", join(dir, "tickets.yaml"));
    await expect(loadPolicyDir(dir)).rejects.toMatchObject({ code: "unavailable", message: expect.stringContaining("..data does not resolve") as unknown });
  });

  it("checks the vigil.dev/required annotation's value", async () => {
    await writeFile(join(dir, "a.yaml"), policyYaml("alpha").replace("name: alpha", "name: alpha\n  annotations:\n    vigil.dev/required: \"yes\""));
    await expect(loadPolicyDir(dir)).rejects.toThrow('metadata.annotations.vigil.dev/required: must be "true" or "false", got "yes"');
  });

  it("lists the problems of all files in one error", async () => {
    await writeFile(join(dir, "a.yaml"), policyYaml("alpha", "maybe"));
    await writeFile(join(dir, "b.yaml"), policyYaml("bravo").replace("kind: Policy", "kind: Policy\nextra: 1"));
    const error = await loadPolicyDir(dir).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(VigilError);
    expect((error as VigilError).code).toBe("invalid_input");
    expect((error as VigilError).message).toContain(`${join(dir, "a.yaml")} doc 1: spec.rules[0].outcome: expected one of`);
    expect((error as VigilError).message).toContain(`${join(dir, "b.yaml")} doc 1: extra: unknown field (line 3)`);
  });

  it("reports CEL errors with their file when compiling", async () => {
    await writeFile(join(dir, "a.yaml"), policyYaml("alpha").replace("outcome: allow", "outcome: allow\n      when: signals.nope"));
    await expect(loadCompiledPolicy(dir)).rejects.toThrow(`${join(dir, "a.yaml")} doc 1: spec.rules[0].when: No such key: nope (line 10)`);
  });

  it("refuses a missing directory, an empty one, and one with only empty files", async () => {
    await expect(loadPolicyDir(join(dir, "missing"))).rejects.toMatchObject({ code: "not_found" });
    await expect(loadPolicyDir(dir)).rejects.toMatchObject({ code: "invalid_input", message: expect.stringContaining("no policy files") as unknown });
    await writeFile(join(dir, "empty.yaml"), "# nothing yet\n");
    await expect(loadPolicyDir(dir)).rejects.toMatchObject({ code: "invalid_input", message: expect.stringContaining("no policy documents") as unknown });
    await writeFile(join(dir, "empty.yaml"), "");
    await expect(loadCompiledPolicy(dir)).rejects.toMatchObject({ code: "invalid_input", message: expect.stringContaining("is empty") as unknown });
  });

  it("versions the content, not the formatting", async () => {
    await writeFile(join(dir, "a.yaml"), policyYaml("alpha"));
    const first = (await loadPolicyDir(dir)).version;
    await writeFile(join(dir, "a.yaml"), `# a comment\n${policyYaml("alpha")}`);
    expect((await loadPolicyDir(dir)).version).toBe(first);
    await writeFile(join(dir, "a.yaml"), policyYaml("alpha", "deny"));
    expect((await loadPolicyDir(dir)).version).not.toBe(first);
  });
});

describe("requiredPolicyProblems", () => {
  const required = (name: string, rules: string[]): string => `apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata:
  name: ${name}
  annotations:
    vigil.dev/required: "true"
spec:
  destinations: ["*"]
  rules:
${rules.map((rule) => `    - name: ${rule}\n      outcome: deny\n`).join("")}`;
  const docs = (...texts: string[]) => texts.flatMap((text, i) => parsePolicyDocuments(text, `f${String(i)}.yaml`));

  it.each([
    ["the same policies", docs(required("guards", ["revoked", "leaked"]), policyYaml("tickets")), []],
    ["a required policy with a rule added and others dropped", docs(required("guards", ["revoked", "leaked", "risk"])), []],
    ["a required policy in another file", docs(policyYaml("tickets"), required("guards", ["revoked", "leaked"])), []],
    ["the required policy gone", docs(policyYaml("tickets")), ['required policy "guards" is missing from the new policy']],
    ["a rule of it gone (truncated file)", docs(required("guards", ["revoked"]), policyYaml("tickets")), ['rule "leaked" of required policy "guards" is missing (truncated file?)']],
    ["its annotation and its rules dropped at once", docs(policyYaml("guards", "deny", "*"), policyYaml("tickets")), [
      'rule "revoked" of required policy "guards" is missing (truncated file?)', 'rule "leaked" of required policy "guards" is missing (truncated file?)',
    ]],
    ["only its annotation dropped (first step of a removal)", docs(required("guards", ["revoked", "leaked"]).replace('vigil.dev/required: "true"', 'vigil.dev/required: "false"')), []],
  ])("with %s", (_name, next, expected) => {
    const previous = docs(required("guards", ["revoked", "leaked"]), policyYaml("tickets"));
    expect(requiredPolicyProblems(previous, next).map((p) => p.message.split(";")[0])).toEqual(expected);
  });

  it("lets a policy that is not required go, and a required one go once its annotation is gone", () => {
    expect(requiredPolicyProblems(docs(policyYaml("tickets"), policyYaml("guards")), docs(policyYaml("guards")))).toEqual([]);
    expect(requiredPolicyProblems(docs(policyYaml("guards", "deny", "*")), docs(policyYaml("tickets")))).toEqual([]);
  });
});

function withoutReasons(document: PolicyDocument | undefined): unknown {
  return document?.manifest.spec.rules.map(({ reason: _reason, ...rule }) => rule);
}

describe("a truncated copy of the shipped guards.yaml", () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "vigil-truncate-"));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /**
   * What a reload from the full guards.yaml to `text` would make active: the guards' rules
   * without their `reason`, or "refused". A cut right after a line of the last rule can still drop
   * that rule's last field; the shipped guards put `reason` last, so only the message may fall
   * back to its default, never what the rule matches or decides (README: "Reloads").
   */
  async function reloadTo(full: readonly PolicyDocument[], text: string): Promise<unknown> {
    await writeFile(join(dir, "guards.yaml"), text);
    try {
      const next = await loadPolicyDir(dir);
      if (requiredPolicyProblems(full, next.documents).length > 0) return "refused";
      return withoutReasons(next.documents.find((d) => d.manifest.metadata.name === "guards"));
    } catch (error) {
      expect(error).toBeInstanceOf(VigilError);
      return "refused";
    }
  }

  it("is refused, or is the whole policy, whatever line it was cut after", async () => {
    const text = await readFile("examples/policies/guards.yaml", "utf8");
    const full = parsePolicyDocuments(text, "guards.yaml");
    const spec = withoutReasons(full[0]);
    const lineEnds = [...text.matchAll(/\n/g)].map((m) => m.index + 1);
    for (const end of [0, ...lineEnds]) {
      const result = await reloadTo(full, text.slice(0, end));
      if (result !== "refused") expect(result, `cut after byte ${String(end)}`).toEqual(spec);
    }
  });

  it("is refused, or is the whole policy, wherever it was cut (property)", async () => {
    const text = await readFile("examples/policies/guards.yaml", "utf8");
    const full = parsePolicyDocuments(text, "guards.yaml");
    const spec = withoutReasons(full[0]);
    await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: text.length }), async (end) => {
      const result = await reloadTo(full, text.slice(0, end));
      if (result !== "refused") expect(result).toEqual(spec);
    }), { numRuns: 150 });
  });
});
