// scripts/setup-system.sh installs the Debian tools tests and benchmarks run (promtool, h2load,
// chromium, valgrind).
// Checked without touching apt: valid bash, and a no-op that says so when both are present.

import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readRepoFile, repoPath } from "./repo.js";

const SCRIPT = "scripts/setup-system.sh";

describe(SCRIPT, () => {
  it("is valid bash", () => {
    execFileSync("bash", ["-n", repoPath(SCRIPT)]);
  });

  it("installs promtool, h2load, chromium and valgrind from their Debian packages, without recommends, only when missing", () => {
    const text = readRepoFile(SCRIPT);
    expect(text).toContain("\"promtool:prometheus\"");
    expect(text).toContain("\"h2load:nghttp2-client\"");
    expect(text).toContain("\"chromium:chromium\"");
    expect(text).toContain("\"valgrind:valgrind\"");
    expect(text).toMatch(/apt-get install -y .*--no-install-recommends/);
    expect(text).toMatch(/if \[ "\$\{#missing_packages\[@\]\}" -eq 0 \]; then[\s\S]*?exit 0/);
  });

  it("does nothing, quickly, when every program is present", () => {
    const bin = mkdtempSync(join(tmpdir(), "vigil-setup-"));
    try {
      for (const name of ["promtool", "h2load", "chromium", "valgrind"]) {
        writeFileSync(join(bin, name), "#!/bin/sh\nexit 0\n");
        chmodSync(join(bin, name), 0o755);
      }
      // apt-get on this PATH would fail loudly: the script must not reach it.
      writeFileSync(join(bin, "apt-get"), "#!/bin/sh\necho apt-get must not run >&2\nexit 99\n");
      chmodSync(join(bin, "apt-get"), 0o755);
      const out = execFileSync("bash", [repoPath(SCRIPT)], {
        encoding: "utf8",
        env: { ...process.env, PATH: `${bin}:/usr/bin:/bin` },
      });
      expect(out).toContain("nothing to install");
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });
});
