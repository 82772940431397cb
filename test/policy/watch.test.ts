// Hot reload: a change to the directory becomes the active policy; a broken change keeps the last
// good policy and is reported; a ConfigMap "..data" swap is picked up. Fault rows write real files
// the way editors, `kubectl cp` and the kubelet do: truncate-then-write, an empty or half-written
// guard file, a vanished guard file, a ConfigMap generation without the guards.

import { appendFile, cp, mkdir, mkdtemp, rename, rm, symlink, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { VigilError } from "../../src/errors/index.js";
import { watchPolicyDir } from "../../src/policy/index.js";
import type { CompiledPolicy, PolicyLoadInfo, PolicyWatch } from "../../src/policy/index.js";
import { startTestVigil } from "../support/vigil.js";
import { policyYaml } from "./policy-files.js";
import { policyInput } from "./policy-input.js";

/** Collects callbacks and lets a test wait for the next one. */
class Events {
  readonly loads: { policy: CompiledPolicy; info: PolicyLoadInfo }[] = [];
  readonly errors: VigilError[] = [];
  #waiters: (() => void)[] = [];

  onLoad = (policy: CompiledPolicy, info: PolicyLoadInfo): void => {
    this.loads.push({ policy, info });
    this.#wake();
  };

  onError = (error: VigilError): void => {
    this.errors.push(error);
    this.#wake();
  };

  /** Resolves once `condition` holds, checking after every callback. */
  async until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error("timed out waiting for a policy reload");
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

const decide = (watch: PolicyWatch) => watch.current().evaluate(policyInput("tickets", "GET", "/api/tickets/1"));

describe("watchPolicyDir", () => {
  let dir: string;
  let watch: PolicyWatch | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "vigil-watch-"));
  });

  afterEach(async () => {
    watch?.close();
    watch = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it("loads the directory and reports the initial load", async () => {
    await writeFile(join(dir, "tickets.yaml"), policyYaml("tickets"));
    const events = new Events();
    watch = await watchPolicyDir(dir, { onLoad: events.onLoad, onError: events.onError, debounceMs: 20 });
    expect(decide(watch).outcome).toBe("allow");
    expect(events.loads).toHaveLength(1);
    expect(events.loads[0]?.info).toEqual({ files: [join(dir, "tickets.yaml")], initial: true });
  });

  it("throws when the initial load fails", async () => {
    await writeFile(join(dir, "tickets.yaml"), policyYaml("tickets", "perhaps"));
    await expect(watchPolicyDir(dir)).rejects.toMatchObject({ code: "invalid_input" });
    await expect(watchPolicyDir(join(dir, "missing"))).rejects.toMatchObject({ code: "not_found" });
  });

  it("activates a changed file, keeps the last good policy on a broken change, and recovers", async () => {
    await writeFile(join(dir, "tickets.yaml"), policyYaml("tickets"));
    const events = new Events();
    watch = await watchPolicyDir(dir, { onLoad: events.onLoad, onError: events.onError, debounceMs: 20 });
    const first = watch.current();

    await writeFile(join(dir, "tickets.yaml"), policyYaml("tickets", "deny"));
    await events.until(() => events.loads.length === 2);
    expect(events.loads[1]?.info.initial).toBe(false);
    expect(watch.current()).not.toBe(first);
    expect(watch.current().version).not.toBe(first.version);
    expect(decide(watch).outcome).toBe("deny");

    const good = watch.current();
    await writeFile(join(dir, "tickets.yaml"), policyYaml("tickets").replace("outcome: allow", "outcome: allow\n      when: signals.bogus"));
    await events.until(() => events.errors.length === 1);
    expect(events.errors[0]?.code).toBe("invalid_input");
    expect(events.errors[0]?.message).toContain(`${join(dir, "tickets.yaml")} doc 1: spec.rules[0].when: No such key: bogus`);
    expect(watch.current()).toBe(good);
    expect(decide(watch).outcome).toBe("deny");

    await writeFile(join(dir, "extra.yaml"), policyYaml("extra"));
    await writeFile(join(dir, "tickets.yaml"), policyYaml("tickets"));
    await events.until(() => events.loads.length === 3);
    expect(decide(watch).outcome).toBe("allow");
    expect(watch.current().ruleCount).toBe(2);
  });

  it("ignores events that do not change the policy", async () => {
    await writeFile(join(dir, "tickets.yaml"), policyYaml("tickets"));
    const events = new Events();
    watch = await watchPolicyDir(dir, { onLoad: events.onLoad, onError: events.onError, debounceMs: 20 });
    await writeFile(join(dir, "tickets.yaml"), `# reformatted\n${policyYaml("tickets")}`);
    await watch.reload();
    expect(events.loads).toHaveLength(1);
    expect(events.errors).toHaveLength(0);
  });

  it("picks up a ConfigMap ..data symlink swap", async () => {
    const writeGeneration = async (name: string, outcome: string): Promise<void> => {
      await mkdir(join(dir, name));
      await writeFile(join(dir, name, "tickets.yaml"), policyYaml("tickets", outcome));
    };
    await writeGeneration("..2025_06_11_10_00_00.1", "allow");
    await symlink("..2025_06_11_10_00_00.1", join(dir, "..data"));
    await symlink("..data/tickets.yaml", join(dir, "tickets.yaml"));
    const events = new Events();
    watch = await watchPolicyDir(dir, { onLoad: events.onLoad, onError: events.onError, debounceMs: 20 });
    expect(decide(watch).outcome).toBe("allow");

    // What the kubelet does: write a new generation, point a temporary link at it, rename the
    // link over ..data (atomic), then remove the old generation.
    await writeGeneration("..2025_06_11_10_05_00.2", "deny");
    await symlink("..2025_06_11_10_05_00.2", join(dir, "..data_tmp"));
    await rename(join(dir, "..data_tmp"), join(dir, "..data"));
    await rm(join(dir, "..2025_06_11_10_00_00.1"), { recursive: true });

    await events.until(() => events.loads.length === 2);
    expect(decide(watch).outcome).toBe("deny");
    expect(events.errors).toHaveLength(0);
  });

  it("stops reloading after close", async () => {
    await writeFile(join(dir, "tickets.yaml"), policyYaml("tickets"));
    const events = new Events();
    watch = await watchPolicyDir(dir, { onLoad: events.onLoad, onError: events.onError, debounceMs: 20 });
    const before = watch.current();
    watch.close();
    await writeFile(join(dir, "tickets.yaml"), policyYaml("tickets", "deny"));
    await watch.reload();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(watch.current()).toBe(before);
    expect(events.loads).toHaveLength(1);
  });

  describe("keeps the last good policy through a partial or gutted change", () => {
    // A required guard policy (two deny rules for every destination) beside a service policy.
    const GUARDS = `apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata:
  name: guards
  annotations:
    vigil.dev/required: "true"
spec:
  destinations: ["*"]
  rules:
    - name: revoked
      outcome: deny
      when: signals.revoked
    - name: blocked-path
      outcome: deny
      paths: ["/api/tickets/blocked"]
`;
    const blocked = (w: PolicyWatch) => w.current().evaluate(policyInput("tickets", "GET", "/api/tickets/blocked"));

    async function start(): Promise<Events> {
      await writeFile(join(dir, "guards.yaml"), GUARDS);
      await writeFile(join(dir, "tickets.yaml"), policyYaml("tickets"));
      const events = new Events();
      watch = await watchPolicyDir(dir, { onLoad: events.onLoad, onError: events.onError, debounceMs: 20 });
      expect(blocked(watch).rule).toBe("guards/blocked-path");
      return events;
    }

    it.each([
      ["an empty guard file (the truncate of truncate-then-write)", () => truncate(join(dir, "guards.yaml"), 0), "guards.yaml: is empty"],
      ["a guard file cut after its first rule (a half-written save)", () => writeFile(join(dir, "guards.yaml"), GUARDS.slice(0, GUARDS.indexOf("    - name: blocked-path"))), 'rule "blocked-path" of required policy "guards" is missing'],
      ["a guard file cut mid-rule", () => writeFile(join(dir, "guards.yaml"), GUARDS.slice(0, GUARDS.lastIndexOf("      outcome: deny"))), "guards.yaml doc 1: spec.rules[1].outcome"],
      ["a guard file cut mid-YAML", () => writeFile(join(dir, "guards.yaml"), GUARDS.slice(0, GUARDS.indexOf("[\"/api") + 3)), "guards.yaml doc 1: YAML"],
      ["a guard file that vanished", () => rm(join(dir, "guards.yaml")), 'required policy "guards" is missing'],
      ["a guard file renamed away (an editor's backup step)", () => rename(join(dir, "guards.yaml"), join(dir, "guards.yaml~")), 'required policy "guards" is missing'],
      ["a dangling symlink in place of the guard file", async () => { await rm(join(dir, "guards.yaml")); await symlink("gone/guards.yaml", join(dir, "guards.yaml")); }, "guards.yaml: vanished"],
      ["an empty service file", () => writeFile(join(dir, "tickets.yaml"), ""), "tickets.yaml: is empty"],
    ])("%s", async (_name, damage, message) => {
      const events = await start();
      const good = watch?.current();
      await damage();
      await events.until(() => events.errors.length >= 1);
      expect(events.errors[0]?.message).toContain(message);
      expect(watch?.current()).toBe(good);
      if (watch !== undefined) expect(blocked(watch).rule).toBe("guards/blocked-path");
      expect(events.loads).toHaveLength(1);
    });

    it("refuses the truncated state of a truncate-then-write, then takes the finished write", async () => {
      const events = await start();
      const good = watch?.current();
      const next = GUARDS.replace("/api/tickets/blocked", "/api/tickets/locked");
      // Step by step, reloading in between, as a watcher may see it.
      await truncate(join(dir, "guards.yaml"), 0);
      await watch?.reload();
      await appendFile(join(dir, "guards.yaml"), next.slice(0, 120));
      await watch?.reload();
      expect(events.errors.length).toBeGreaterThanOrEqual(2);
      expect(watch?.current()).toBe(good);
      await appendFile(join(dir, "guards.yaml"), next.slice(120));
      await watch?.reload();
      expect(watch?.current()).not.toBe(good);
      if (watch !== undefined) expect(watch.current().evaluate(policyInput("tickets", "GET", "/api/tickets/locked")).rule).toBe("guards/blocked-path");
    });

    it("lets a service policy go (and says so), and a required one only in two steps", async () => {
      const events = await start();
      await rm(join(dir, "tickets.yaml"));
      await events.until(() => events.loads.length === 2);
      expect(events.loads[1]?.info.removed).toEqual(["tickets"]);
      await writeFile(join(dir, "tickets.yaml"), policyYaml("tickets"));
      await events.until(() => events.loads.length === 3);

      await writeFile(join(dir, "guards.yaml"), GUARDS.replace('"true"', '"false"'));
      await events.until(() => events.loads.length === 4);
      await rm(join(dir, "guards.yaml"));
      await events.until(() => events.loads.length === 5);
      expect(events.loads[4]?.info.removed).toEqual(["guards"]);
      expect(events.errors).toHaveLength(0);
      if (watch !== undefined) expect(blocked(watch).outcome).toBe("allow");
    });

    it("refuses a ConfigMap generation without the guards, or with them empty, and takes a whole one", async () => {
      const generation = async (name: string, files: Record<string, string>): Promise<void> => {
        await mkdir(join(dir, name));
        for (const [file, text] of Object.entries(files)) await writeFile(join(dir, name, file), text);
      };
      const swap = async (name: string): Promise<void> => {
        await symlink(name, join(dir, "..data_tmp"));
        await rename(join(dir, "..data_tmp"), join(dir, "..data"));
      };
      await generation("..gen.1", { "guards.yaml": GUARDS, "tickets.yaml": policyYaml("tickets") });
      await symlink("..gen.1", join(dir, "..data"));
      await symlink("..data/guards.yaml", join(dir, "guards.yaml"));
      await symlink("..data/tickets.yaml", join(dir, "tickets.yaml"));
      const events = new Events();
      watch = await watchPolicyDir(dir, { onLoad: events.onLoad, onError: events.onError, debounceMs: 20 });
      const good = watch.current();

      await generation("..gen.2", { "tickets.yaml": policyYaml("tickets", "deny") });
      await swap("..gen.2");
      await events.until(() => events.errors.length === 1);
      expect(events.errors[0]?.message).toContain('required policy "guards" is missing');

      await generation("..gen.3", { "guards.yaml": "", "tickets.yaml": policyYaml("tickets", "deny") });
      await swap("..gen.3");
      await events.until(() => events.errors.length === 2);
      expect(events.errors[1]?.message).toContain("guards.yaml: is empty");
      expect(watch.current()).toBe(good);

      await generation("..gen.4", { "guards.yaml": GUARDS, "tickets.yaml": policyYaml("tickets", "deny") });
      await swap("..gen.4");
      await events.until(() => events.loads.length === 2);
      expect(decide(watch).outcome).toBe("deny");
      expect(blocked(watch).rule).toBe("guards/blocked-path");
    });

    it("refuses to start on a directory whose only file is empty", async () => {
      await writeFile(join(dir, "guards.yaml"), "");
      await expect(watchPolicyDir(dir)).rejects.toMatchObject({ code: "invalid_input", message: expect.stringContaining("is empty") as unknown });
    });
  });

  it("a running Vigil keeps the example policy when guards.yaml is emptied, and counts the failure", async () => {
    await cp("examples/policies", dir, { recursive: true });
    const vigil = await startTestVigil({ policyDir: dir });
    try {
      const before = vigil.policy();
      const failures = async (): Promise<number> => {
        const text = await (await fetch(`${vigil.httpUrl}/metrics`)).text();
        return Number(/^vigil_policy_reloads_total\{result="failure"\} (\d+)$/m.exec(text)?.[1] ?? "NaN");
      };
      expect(await failures()).toBe(0);
      await truncate(join(dir, "guards.yaml"), 0);
      const deadline = Date.now() + 5000;
      while (await failures() === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(await failures()).toBeGreaterThanOrEqual(1);
      expect(vigil.policy()).toBe(before);
      expect(vigil.readiness().checks.policy?.detail).toContain("last change refused");
    } finally {
      await vigil.close();
    }
  });
});
