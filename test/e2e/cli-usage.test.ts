// The `vigil` command as a newcomer meets it: --help on every command, a suggestion for a misspelt
// flag or command, a clear message when nothing listens (gRPC and HTTP), VIGIL_URL, `check` that
// will not silently pick a policy, and the dev tokens / reset that `npm start` / `npm run reset` use.

import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { COMMANDS } from "../../src/cli/args.js";
import { DEV_HOLDERS } from "../../src/cli/dev.js";
import { readAdminTokensFile, SERVE_FLAGS } from "../../src/config/index.js";
import { ADMIN_TOKEN, startTestVigil, type TestVigil } from "../support/vigil.js";
import { freePort } from "../support/ports.js";

const MAIN = join(process.cwd(), "src/cli/main.ts");

function vigilCli(args: string[], env: Record<string, string> = {}, cwd = process.cwd()): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import", "tsx", MAIN, ...args], {
      cwd, timeout: 30_000, env: { ...process.env, VIGIL_ADMIN_TOKEN: "", VIGIL_URL: "", ...env },
    }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

const scratch = mkdtempSync(join(tmpdir(), "vigil-usage-"));
afterAll(() => { rmSync(scratch, { recursive: true, force: true }); });

describe("vigil --help", () => {
  it("lists every command and every flag of each, serve's included, with nothing hidden behind ...", async () => {
    const res = await vigilCli(["--help"]);
    expect(res.code).toBe(0);
    expect(res.stdout).not.toContain("...");
    for (const command of COMMANDS) {
      expect(res.stdout).toContain(`vigil ${command.name}`);
      for (const flag of Object.keys(command.flags)) expect(res.stdout, `${command.name} --${flag}`).toContain(`--${flag}`);
    }
    for (const flag of Object.keys(SERVE_FLAGS)) expect(res.stdout).toContain(`[--${flag}`);
  });

  it.each(COMMANDS.map((c) => [c.name] as const))("vigil %s --help explains that command's flags and exits 0", async (name) => {
    const res = await vigilCli([...name.split(" "), "--help"]);
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
    expect(res.stdout).toContain(`usage: vigil ${name}`);
    const spec = COMMANDS.find((c) => c.name === name);
    for (const [flag, { help }] of Object.entries(spec?.flags ?? {})) {
      expect(res.stdout).toContain(`--${flag}`);
      expect(help.length).toBeGreaterThan(10);
    }
  });

  it("-h works after other flags too, and `vigil help check` is check's help", async () => {
    expect((await vigilCli(["check", "--policy", "examples/policies", "-h"])).stdout).toContain("usage: vigil check");
    expect((await vigilCli(["help", "check"])).stdout).toContain("usage: vigil check");
    expect((await vigilCli(["signal", "--help"])).stdout).toMatch(/vigil signal put[\s\S]*vigil signal get[\s\S]*vigil signal reinstate/);
  });
});

describe("mistakes", () => {
  it.each([
    [["serve", "--polcy", "x"], "serve: unknown flag --polcy (did you mean --policy?)"],
    [["serve", "--admin-token-file", "x"], "(did you mean --admin-tokens-file?)"],
    [["check", "--sever", "127.0.0.1:9191", "x.json"], "(did you mean --server?)"],
    [["signal", "put", "--subjet", "x"], "(did you mean --subject?)"],
    [["approvals", "list", "--token", "f"], "(did you mean --token-file?)"],
    [["chek"], "unknown command \"chek\" (did you mean check?)"],
    [["signal", "pt"], "signal: unknown \"pt\" (did you mean put?)"],
    [["serve", "--policy"], "serve: --policy needs a value (--policy DIR)"],
    [["validate", "--zzzzzzzz"], "validate: unknown flag --zzzzzzzz; see vigil validate --help"],
  ])("%j is refused with exit code 2 saying %s", async (args, message) => {
    const res = await vigilCli(args);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain(message);
    expect(res.stderr).not.toContain("parseArgs");
    expect(res.stderr).not.toContain("ERR_PARSE_ARGS");
  });

  it("check without --server or --policy refuses instead of judging against examples/policies", async () => {
    const res = await vigilCli(["check", "examples/requests/deploy-staging.json"]);
    expect(res.code).toBe(2);
    expect(res.stdout).toBe("");
    expect(res.stderr).toContain("check needs --server ADDRESS");
    expect(res.stderr).toContain("--policy DIR");
  });

  it("check --server with offline flags says the sidecar judges with its own policy and clock", async () => {
    const res = await vigilCli(["check", "--server", "127.0.0.1:9191", "--now", "2026-11-28T10:00:00Z", "examples/requests/deploy-prod.json"]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain("drop --now");
  });
});

describe("nothing listening", () => {
  let port: number;
  beforeAll(async () => { port = await freePort(); });

  it("check --server names the address and suggests starting the server, no raw gRPC error", async () => {
    const res = await vigilCli(["check", "--server", `127.0.0.1:${port}`, "examples/requests/deploy-staging.json"]);
    expect(res.code).toBe(2);
    expect(res.stderr).toBe(`vigil: cannot reach a Vigil Check service at 127.0.0.1:${port}: is \`vigil serve\` (npm start) running there? (gRPC UNAVAILABLE)\n`);
  });

  it("signal put names the URL and the reason instead of \"fetch failed\"", async () => {
    const res = await vigilCli(["signal", "get", "--subject", "spiffe://example.org/ns/ci/sa/deployer", "--url", `http://127.0.0.1:${port}`], { VIGIL_ADMIN_TOKEN: ADMIN_TOKEN });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain(`cannot reach Vigil's admin API at http://127.0.0.1:${port} (ECONNREFUSED)`);
    expect(res.stderr).not.toContain("fetch failed");
    expect(res.stderr).not.toContain(ADMIN_TOKEN);
  });

  it("a bad VIGIL_URL is named, not sent to", async () => {
    const res = await vigilCli(["approvals", "list"], { VIGIL_ADMIN_TOKEN: ADMIN_TOKEN, VIGIL_URL: "ftp://x" });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain("VIGIL_URL is not an http(s) URL: ftp://x");
  });
});

describe("VIGIL_URL", () => {
  let vigil: TestVigil;
  beforeAll(async () => { vigil = await startTestVigil(); });
  afterAll(async () => { await vigil.close(); });

  it("points admin commands at the server, and --url wins over it", async () => {
    const viaEnv = await vigilCli(["approvals", "list"], { VIGIL_ADMIN_TOKEN: ADMIN_TOKEN, VIGIL_URL: vigil.httpUrl });
    expect(viaEnv).toMatchObject({ code: 0 });
    expect(JSON.parse(viaEnv.stdout)).toBeTypeOf("object");
    const port = await freePort();
    const flagWins = await vigilCli(["approvals", "list", "--url", `http://127.0.0.1:${port}`], { VIGIL_ADMIN_TOKEN: ADMIN_TOKEN, VIGIL_URL: vigil.httpUrl });
    expect(flagWins.code).toBe(2);
    expect(flagWins.stderr).toContain(`127.0.0.1:${port}`);
  });
});

describe("dev tokens and reset", () => {
  it("writes named 0600 tokens the server accepts, prints where they are and never the tokens, and keeps them on a second run", async () => {
    const dir = join(scratch, "dev");
    const first = await vigilCli(["dev-tokens", "--dir", dir]);
    expect(first.code).toBe(0);
    expect(first.stdout).toBe("");
    const tokens = readAdminTokensFile(join(dir, "admin-tokens"));
    expect(tokens.map((t) => [t.name, t.scopes])).toEqual(DEV_HOLDERS.map((h) => [h.name, h.scopes]));
    // The approver is the one examples/policies/change-mgmt.yaml names.
    expect(readFileSync("examples/policies/change-mgmt.yaml", "utf8")).toContain(`approvers: ["${DEV_HOLDERS[1]?.name ?? "?"}"]`);
    for (const token of tokens) {
      expect(token.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(first.stderr).not.toContain(token.token);
    }
    for (const holder of DEV_HOLDERS) {
      const file = join(dir, holder.file);
      expect(first.stderr).toContain(`--token-file ${file}`);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(tokens.some((t) => t.token === readFileSync(file, "utf8").trim() && t.name === holder.name)).toBe(true);
    }
    expect(statSync(join(dir, "admin-tokens")).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);

    const second = await vigilCli(["dev-tokens", "--dir", dir]);
    expect(second.stderr).toContain("kept in");
    expect(readAdminTokensFile(join(dir, "admin-tokens"))).toEqual(tokens);
  });

  it("rewrites tokens that no longer agree with the server's file (a hand-edited or half-deleted dir)", async () => {
    const dir = join(scratch, "broken");
    await vigilCli(["dev-tokens", "--dir", dir]);
    const before = readFileSync(join(dir, "operator.token"), "utf8");
    writeFileSync(join(dir, "approver.token"), "not-the-approvers-token-at-all\n");
    const res = await vigilCli(["dev-tokens", "--dir", dir]);
    expect(res.stderr).toContain("written to");
    expect(readFileSync(join(dir, "operator.token"), "utf8")).not.toBe(before);
  });

  it("reset removes the journal and the tokens, leaves a file it does not know, and refuses while a server answers", async () => {
    const dir = join(scratch, "state");
    await vigilCli(["dev-tokens", "--dir", dir]);
    writeFileSync(join(dir, "journal.jsonl"), "{}\n");
    writeFileSync(join(dir, "notes.txt"), "mine\n");
    mkdirSync(join(dir, "sub"));

    const vigil = await startTestVigil();
    try {
      const refused = await vigilCli(["reset", "--dir", dir, "--url", vigil.httpUrl]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain("stop it first");
      expect(existsSync(join(dir, "journal.jsonl"))).toBe(true);
    } finally {
      await vigil.close();
    }

    const port = await freePort();
    const res = await vigilCli(["reset", "--dir", dir, "--url", `http://127.0.0.1:${port}`]);
    expect(res.code).toBe(0);
    expect(res.stderr).toContain("removed");
    for (const file of ["journal.jsonl", "admin-tokens", "operator.token", "approver.token"]) expect(existsSync(join(dir, file))).toBe(false);
    expect(readFileSync(join(dir, "notes.txt"), "utf8")).toBe("mine\n");
    expect(res.stderr).toContain("left what reset does not know: notes.txt, sub");

    // A server on a port --url does not name is still found: it holds its journal open.
    const held = join(scratch, "held");
    await vigilCli(["dev-tokens", "--dir", held]);
    const other = await startTestVigil({ store: { journalPath: join(held, "journal.jsonl") } });
    try {
      const refused = await vigilCli(["reset", "--dir", held, "--url", `http://127.0.0.1:${port}`]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/process \d+(, \d+)* has a file in .* open/);
      expect(existsSync(join(held, "journal.jsonl"))).toBe(true);
    } finally {
      await other.close();
    }
    const after = await vigilCli(["reset", "--dir", held, "--url", `http://127.0.0.1:${port}`]);
    expect(after.code).toBe(0);
    // Everything that server kept there (signals and approvals journals, behaviour state) was Vigil's.
    expect(existsSync(held), after.stderr).toBe(false);

    const empty = join(scratch, "empty-state");
    await vigilCli(["dev-tokens", "--dir", empty]);
    await vigilCli(["reset", "--dir", empty, "--url", `http://127.0.0.1:${port}`]);
    expect(existsSync(empty)).toBe(false);
  }, 120_000);
});
