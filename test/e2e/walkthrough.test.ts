// README's "A walkthrough", replayed as written, twice in a row: every `$ command` of its sh blocks
// is run by bash in a scratch copy of the repository's layout (its own .vigil/), and what it prints
// must match the output the README shows under it. `npm start` and `npm run X` run package.json's
// scripts. What the replay changes, and only that: `node dist/cli/main.js` runs src/cli/main.ts
// (the same code, without a build), the sidecar listens on free ports instead of 9191/9192 (so a
// developer's own `npm start` does not collide; VIGIL_URL and the --server address follow), and an
// approval id the README shows is replaced by the one this run's output gave.
//
// Matching: the README's text is literal except that `…` stands for anything, a UUID for any UUID,
// a 13-digit number for any epoch-ms time, and an ISO time for any ISO time. The ```json block is
// a line the server must have logged.

import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../support/ports.js";

const REPO = process.cwd();
// tsx from the scratch directory's node_modules link (a bare --import resolves from the cwd).
const VIGIL = `node --import tsx ${join(REPO, "src/cli/main.ts")}`;

interface Step { command: string; expected: string }
interface Walkthrough { steps: Step[]; logLines: string[] }

/** The sh blocks of README's walkthrough as (command, expected output) steps, and its json blocks. */
export function readWalkthrough(readme: string): Walkthrough {
  const start = readme.indexOf("## A walkthrough");
  const end = readme.indexOf("\n## ", start + 1);
  const section = readme.slice(start, end);
  const steps: Step[] = [];
  const logLines: string[] = [];
  for (const block of section.matchAll(/```(sh|json)\n([\s\S]*?)```/g)) {
    const [, lang = "", body = ""] = block;
    if (lang === "json") {
      logLines.push(body.trim());
      continue;
    }
    const lines = body.replace(/\n$/, "").split("\n");
    let current: Step | undefined;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i] ?? "";
      if (line.startsWith("$ ")) {
        let command = line.slice(2);
        while (command.endsWith("\\") && i + 1 < lines.length) command = `${command.slice(0, -1)} ${(lines[++i] ?? "").trim()}`;
        current = { command, expected: "" };
        steps.push(current);
      } else if (current !== undefined) {
        current.expected += `${line}\n`;
      } else {
        throw new Error(`README walkthrough: output before any command: ${line}`);
      }
    }
  }
  return { steps, logLines };
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

/** The README's shown output as a regular expression (see the header for the wildcards). */
export function outputPattern(expected: string): RegExp {
  const token = new RegExp(`(…)|(${UUID.source})|(\\b\\d{13}\\b)|(\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}Z)`, "g");
  let source = "";
  let last = 0;
  for (const match of expected.matchAll(token)) {
    source += escape(expected.slice(last, match.index));
    if (match[1] !== undefined) source += "[\\s\\S]*?";
    else if (match[2] !== undefined) source += UUID.source;
    else if (match[3] !== undefined) source += "\\d{13}";
    else source += "\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}Z";
    last = match.index + match[0].length;
  }
  source += escape(expected.slice(last));
  return new RegExp(`^${source}$`);
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

const scripts = (JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;

interface Run { grpcPort: number; httpPort: number; cwd: string; server?: ChildProcess; serverOutput: string; ids: Map<string, string> }

/** A command as this run executes it (see the header: source instead of dist, free ports, this run's ids). */
function localize(command: string, run: Run): string {
  let out = command.replaceAll("node dist/cli/main.js", VIGIL).replaceAll("127.0.0.1:9191", `127.0.0.1:${run.grpcPort}`);
  for (const [shown, actual] of run.ids) out = out.replaceAll(shown, actual);
  return out;
}

function script(name: string, run: Run): string {
  const text = scripts[name];
  if (text === undefined) throw new Error(`package.json has no script ${name}`);
  const local = localize(text, run);
  // The sidecar on this run's ports (README's 9191/9192 are the defaults npm start uses).
  return name === "start" ? local.replace(/main\.ts serve /, `main.ts serve --grpc-port ${run.grpcPort} --http-port ${run.httpPort} `) : local;
}

function bash(command: string, run: Run): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile("bash", ["-c", command], {
      cwd: run.cwd, timeout: 60_000,
      env: { ...process.env, VIGIL_URL: `http://127.0.0.1:${run.httpPort}`, VIGIL_ADMIN_TOKEN: "", NO_COLOR: "1" },
    }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr });
    });
  });
}

async function waitReady(run: Run): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (run.server?.exitCode !== null) throw new Error(`npm start exited: ${run.serverOutput}`);
    const ok = await fetch(`http://127.0.0.1:${run.httpPort}/readyz`).then((r) => r.ok, () => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`npm start not ready within 60 s: ${run.serverOutput}`);
}

async function stopServer(run: Run): Promise<void> {
  const server = run.server;
  if (server?.exitCode !== null || server.pid === undefined) return;
  const exited = new Promise<void>((resolve) => { server.once("exit", () => { resolve(); }); });
  // bash -c "a && b" runs the server as a child of bash: signal the group (the README's Ctrl-C).
  process.kill(-server.pid, "SIGINT");
  await exited;
  run.server = undefined;
}

async function replay(walkthrough: Walkthrough, run: Run): Promise<void> {
  for (const step of walkthrough.steps) {
    const npm = /^npm (start|run ([a-z:-]+))\b/.exec(step.command);
    if (npm?.[1] === "start") {
      run.server = spawn("bash", ["-c", script("start", run)], {
        cwd: run.cwd, detached: true, stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, VIGIL_ADMIN_TOKENS: "", VIGIL_CONFIG: "" },
      });
      run.server.stdout?.on("data", (chunk: Buffer) => { run.serverOutput += chunk.toString(); });
      run.server.stderr?.on("data", (chunk: Buffer) => { run.serverOutput += chunk.toString(); });
      await waitReady(run);
      // What README shows under `npm start` is what it printed first (then the server's log).
      expect(run.serverOutput.startsWith(step.expected), `npm start printed:\n${run.serverOutput}`).toBe(true);
      continue;
    }
    const command = npm?.[2] !== undefined ? script(npm[2], run) : localize(step.command, run);
    const res = await bash(command, run);
    const context = `$ ${step.command}\nexit ${res.code}\nstdout:\n${res.stdout}\nstderr:\n${res.stderr}`;
    // 0 allowed / done, 1 a refusal the README shows; nothing a newcomer would see as a crash.
    expect(res.code, context).toBeLessThanOrEqual(1);
    expect(res.stdout + (npm !== null ? "" : res.stderr), context).toMatch(outputPattern(step.expected));
    // Learn this run's approval ids from what the README shows in the same place.
    const shownIds = step.expected.match(/apr_[0-9a-f-]{36}/g) ?? [];
    const actualIds = res.stdout.match(/apr_[0-9a-f-]{36}/g) ?? [];
    shownIds.forEach((shown, i) => {
      const actual = actualIds[i];
      if (actual !== undefined && !run.ids.has(shown)) run.ids.set(shown, actual);
    });
  }
  for (const line of walkthrough.logLines) {
    const pattern = outputPattern(line);
    expect(run.serverOutput.split("\n").some((l) => pattern.test(l)), `no server log line matches ${line}`).toBe(true);
  }
}

describe("README walkthrough", () => {
  const walkthrough = readWalkthrough(readFileSync(join(REPO, "README.md"), "utf8"));
  const cwd = mkdtempSync(join(tmpdir(), "vigil-walkthrough-"));
  symlinkSync(join(REPO, "examples"), join(cwd, "examples"));
  symlinkSync(join(REPO, "node_modules"), join(cwd, "node_modules"));
  const runs: Run[] = [];
  afterAll(async () => {
    for (const run of runs) await stopServer(run);
    rmSync(cwd, { recursive: true, force: true });
  });

  it("has the steps a newcomer takes: reset, start, then the four outcomes", () => {
    const commands = walkthrough.steps.map((s) => s.command.split(/\s+#/)[0]?.trim());
    expect(commands.slice(0, 2)).toEqual(["npm run reset", "npm start"]);
    expect(walkthrough.steps.length).toBeGreaterThanOrEqual(10);
    for (const outcome of ["\"allowed\": true", "\"outcome\": \"delay\"", "\"outcome\": \"revoke\"", "\"outcome\": \"step_up\""]) {
      expect(walkthrough.steps.some((s) => s.expected.includes(outcome)), outcome).toBe(true);
    }
    expect(walkthrough.logLines).toHaveLength(1);
  });

  it("replays as written, twice in a row, in the same directory", async () => {
    for (let round = 0; round < 2; round++) {
      const run: Run = { grpcPort: await freePort(), httpPort: await freePort(), cwd, serverOutput: "", ids: new Map() };
      runs.push(run);
      await replay(walkthrough, run);
      await stopServer(run);
    }
  }, 300_000);
});

describe("the replay's matcher", () => {
  it.each([
    ["{\"id\":\"0bcfae34-f3a4-47df-8b75-7dc6105e36fd\",\"at\":1796093295577}\n", "{\"id\":\"11111111-2222-4333-8444-555555555555\",\"at\":1700000000000}\n", true],
    ["{\"id\":\"0bcfae34-f3a4-47df-8b75-7dc6105e36fd\"}\n", "{\"id\":\"not-a-uuid\"}\n", false],
    ["{\n  \"a\": 1,\n  …\n}\n", "{\n  \"a\": 1,\n  \"b\": 2,\n  \"c\": 3\n}\n", true],
    ["{\n  \"a\": 1,\n  …\n}\n", "{\n  \"a\": 2,\n  \"b\": 2\n}\n", false],
    ["\"outcome\": \"delay\"\n", "\"outcome\": \"allow\"\n", false],
    ["x (y) [z] $1.0\n", "x (y) [z] $1.0\n", true],
  ])("%j against %j: %s", (expected, actual, matches) => {
    expect(outputPattern(expected).test(actual)).toBe(matches);
  });
});
