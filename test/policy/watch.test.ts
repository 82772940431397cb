// Hot reload: a change to the directory becomes the active policy; a broken change keeps the last
// good policy and is reported; a ConfigMap "..data" swap is picked up.

import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { VigilError } from "../../src/errors/index.js";
import { watchPolicyDir } from "../../src/policy/index.js";
import type { CompiledPolicy, PolicyLoadInfo, PolicyWatch } from "../../src/policy/index.js";
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
});
