// Durability under hostile disks, with real sidecar processes: a journal that hits a file-size
// limit (`ulimit -f`) or a full / read-only tmpfs answers 503 for every write it cannot make
// durable, keeps every write it acknowledged across a restart, says why in /readyz and /metrics,
// takes writes again once the disk has room, and never stops answering Checks; a stdout that
// cannot take log lines (a full file, a pipe nobody reads) never stops gRPC or HTTP.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createEnvoyClient } from "../support/envoy-client.js";
import { ADMIN_TOKEN } from "../support/vigil.js";

const ROOT = process.cwd();
const dir = mkdtempSync(join(tmpdir(), "vigil-hostile-disk-"));
const tokensFile = join(dir, "tokens");
writeFileSync(tokensFile, `${ADMIN_TOKEN} ops-admin signals:write,signals:reinstate,approvals:decide\n`);

/** Every process started here, so none outlives the file (a stuck one would keep a mount busy). */
const children = new Set<ChildProcess>();

interface Sidecar {
  child: ChildProcess;
  httpUrl: string;
  grpcAddress: string;
  stop(): Promise<number | null>;
}

interface SpawnOptions {
  journal: string;
  /** `ulimit -f` in KiB for the process (files it writes: journal and a stdout file). */
  fileLimitKb?: number;
  /** Where stdout goes: a pipe the test reads (default), a file, or a pipe nobody reads. */
  stdout?: { file: string } | "unread-pipe";
  extraArgs?: string[];
}

/** Starts `vigil serve` as its own process and waits for its "vigil ready" line. */
async function spawnVigil(options: SpawnOptions): Promise<Sidecar> {
  const args = [
    "--import", "tsx", "src/cli/main.ts", "serve", "--policy", "examples/policies",
    "--grpc-port", "0", "--http-port", "0", "--journal", options.journal,
    "--admin-tokens-file", tokensFile, ...(options.extraArgs ?? []),
  ];
  const quoted = [process.execPath, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
  const limit = options.fileLimitKb === undefined ? "" : `ulimit -f ${String(options.fileLimitKb)}; `;
  const stdoutFile = typeof options.stdout === "object" ? options.stdout.file : undefined;
  const fd = stdoutFile === undefined ? undefined : openSync(stdoutFile, "w");
  const child = spawn("bash", ["-c", `${limit}exec ${quoted}`], {
    cwd: ROOT,
    env: { ...process.env, VIGIL_ADMIN_TOKENS: undefined, VIGIL_BUS: undefined, VIGIL_LOG_LEVEL: "info" },
    stdio: ["ignore", fd ?? "pipe", "pipe"],
  });
  if (fd !== undefined) closeSync(fd);
  children.add(child);
  child.on("exit", () => { children.delete(child); });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => { stderr += chunk.toString("utf8"); });
  const exited = new Promise<number | null>((resolve) => { child.on("exit", (code) => { resolve(code); }); });

  const ports = await new Promise<{ grpc: number; http: number }>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`vigil did not start: ${stderr}`)); }, 30_000);
    void exited.then((code) => { reject(new Error(`vigil exited with ${String(code)} before ready: ${stderr}`)); });
    const seen = (text: string): boolean => {
      for (const line of text.split("\n")) {
        if (!line.includes("\"vigil ready\"")) continue;
        const ready = JSON.parse(line) as { grpc_port: number; http_port: number };
        clearTimeout(timer);
        resolve({ grpc: ready.grpc_port, http: ready.http_port });
        return true;
      }
      return false;
    };
    if (child.stdout !== null) {
      let text = "";
      const onData = (chunk: Buffer): void => {
        text += chunk.toString("utf8");
        // A pipe nobody reads: stop reading once the ports are known, and never again.
        if (seen(text) && options.stdout === "unread-pipe") {
          child.stdout?.off("data", onData);
          child.stdout?.pause();
        }
      };
      child.stdout.on("data", onData);
    } else if (stdoutFile !== undefined) {
      const poll = setInterval(() => {
        if (seen(readFileSync(stdoutFile, "utf8"))) clearInterval(poll);
      }, 50);
      void exited.then(() => { clearInterval(poll); });
    }
  });
  return {
    child,
    httpUrl: `http://127.0.0.1:${String(ports.http)}`,
    grpcAddress: `127.0.0.1:${String(ports.grpc)}`,
    stop: async () => {
      child.kill("SIGTERM");
      const timer = setTimeout(() => { child.kill("SIGKILL"); }, 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Starts a sidecar that is expected to refuse to start; resolves with its exit code and stderr. */
function refusedStart(journal: string, extraArgs: string[] = []): { code: number | null; stderr: string } {
  const res = spawnSync(process.execPath, [
    "--import", "tsx", "src/cli/main.ts", "serve", "--policy", "examples/policies",
    "--grpc-port", "0", "--http-port", "0", "--journal", journal, "--admin-tokens-file", tokensFile, ...extraArgs,
  ], { cwd: ROOT, encoding: "utf8", timeout: 30_000, env: { ...process.env, VIGIL_ADMIN_TOKENS: undefined, VIGIL_BUS: undefined } });
  return { code: res.status, stderr: res.stderr };
}

async function putRisk(vigil: Sidecar, subject: string): Promise<number> {
  const res = await fetch(`${vigil.httpUrl}/v1/signals`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ kind: "risk", subject, data: { level: "high", reason: "durability probe" } }),
  });
  await res.text();
  return res.status;
}

async function getRisk(vigil: Sidecar, subject: string): Promise<number> {
  const res = await fetch(`${vigil.httpUrl}/v1/signals/risk?subject=${encodeURIComponent(subject)}`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  const body = await res.text();
  if (res.status !== 200) return res.status;
  return body.includes("durability probe") ? 200 : 404;
}

async function readyz(vigil: Sidecar): Promise<{ status: number; checks: Record<string, { ok: boolean; detail: string }> }> {
  const res = await fetch(`${vigil.httpUrl}/readyz`);
  const body = await res.json() as { checks: Record<string, { ok: boolean; detail: string }> };
  return { status: res.status, checks: body.checks };
}

async function metricsText(vigil: Sidecar): Promise<string> {
  return (await fetch(`${vigil.httpUrl}/metrics`)).text();
}

/** One Check over real gRPC; a caller without identity is denied, as a CheckResponse. */
async function checkAnswered(vigil: Sidecar): Promise<number | undefined> {
  const client = createEnvoyClient(vigil.grpcAddress);
  try {
    const res = await client.check({ host: "payments", method: "GET", path: "/v1/payments/1" });
    return res.status?.code;
  } finally {
    client.close();
  }
}

/** Fires `count` concurrent writes; returns the subjects acknowledged (201) and refused (503). */
async function flood(vigil: Sidecar, tag: string, count: number): Promise<{ acknowledged: string[]; refused: string[]; other: number[] }> {
  const subjects = Array.from({ length: count }, (_, i) => `spiffe://example.org/ns/load/sa/${tag}-${String(i)}`);
  const statuses = await Promise.all(subjects.map((subject) => putRisk(vigil, subject)));
  return {
    acknowledged: subjects.filter((_, i) => statuses[i] === 201),
    refused: subjects.filter((_, i) => statuses[i] === 503),
    other: statuses.filter((s) => s !== 201 && s !== 503),
  };
}

/** Restarts on the same journal without limits: every acknowledged write is there, no refused one. */
async function expectExactlyAcknowledged(journal: string, acknowledged: string[], refused: string[]): Promise<void> {
  const after = await spawnVigil({ journal });
  try {
    // It started at all: the journal has no corrupt record (start refuses otherwise).
    expect((await readyz(after)).checks.journal).toMatchObject({ ok: true });
    const found = await Promise.all(acknowledged.map((s) => getRisk(after, s)));
    expect(found.filter((s) => s !== 200)).toEqual([]);
    const lost = await Promise.all(refused.map((s) => getRisk(after, s)));
    expect(lost.filter((s) => s !== 404)).toEqual([]);
  } finally {
    await after.stop();
  }
}

function tryMount(target: string, sizeKb: number): boolean {
  mkdirSync(target, { recursive: true });
  const res = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${String(sizeKb)}k`, "tmpfs", target], { encoding: "utf8" });
  return res.status === 0;
}

function umount(target: string): void {
  spawnSync("umount", [target]);
}

afterAll(() => {
  for (const child of children) child.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

describe("a journal on a disk that runs out (ulimit -f 96)", { timeout: 180_000 }, () => {
  it("acknowledges only durable writes, refuses the rest with 503, says why, and keeps deciding", async () => {
    const journal = join(dir, "ulimit", "journal.jsonl");
    const vigil = await spawnVigil({ journal, fileLimitKb: 96 });
    let result: Awaited<ReturnType<typeof flood>>;
    try {
      // ~250 bytes a record: 600 writes need ~150 KiB, past the 96 KiB the process may write.
      result = await flood(vigil, "fsize", 600);
      expect(result.other).toEqual([]);
      expect(result.acknowledged.length).toBeGreaterThan(0);
      expect(result.refused.length).toBeGreaterThan(0);

      const ready = await readyz(vigil);
      expect(ready.status).toBe(503);
      expect(ready.checks.journal?.ok).toBe(false);
      expect(ready.checks.journal?.detail).toMatch(/^journal: EFBIG since \d{4}-\d\d-\d\dT/);
      const metrics = await metricsText(vigil);
      expect(metrics).toMatch(/^vigil_journal_writable 0$/m);
      expect(metrics).toMatch(/^vigil_journal_write_failures_total\{reason="file_too_large"\} [1-9]/m);

      // Decisions go on from memory.
      expect(await checkAnswered(vigil)).toBe(7);
      expect((await fetch(`${vigil.httpUrl}/healthz`)).status).toBe(200);
      // One record at a time may still fit in what the refused batch left; write until it does not.
      for (let i = 0; i < 400; i++) {
        const subject = `spiffe://example.org/ns/load/sa/one-more-${String(i)}`;
        const status = await putRisk(vigil, subject);
        expect([201, 503]).toContain(status);
        (status === 201 ? result.acknowledged : result.refused).push(subject);
        if (status === 503) break;
      }
      expect((await readyz(vigil)).checks.journal?.detail).toMatch(/^journal: EFBIG since /);
    } finally {
      await vigil.stop();
    }
    await expectExactlyAcknowledged(journal, result.acknowledged, result.refused);
  });
});

describe("a journal on a small tmpfs", { timeout: 180_000 }, () => {
  const mountPoint = join(dir, "tmpfs");
  const mounted = tryMount(mountPoint, 256);
  if (!mounted) {
    console.warn(`skipping the tmpfs variant: cannot mount a tmpfs at ${mountPoint} here (the ulimit -f test covers a full disk)`);
  }
  afterAll(async () => {
    for (const child of children) child.kill("SIGKILL");
    await new Promise((resolve) => setTimeout(resolve, 200));
    if (mounted) umount(mountPoint);
  });

  it.skipIf(!mounted)("refuses writes while the tmpfs is full or read-only and takes them again once it is not, without a restart", async () => {
    const journal = join(mountPoint, "journal.jsonl");
    const filler = join(mountPoint, "filler");
    // Leave about 40 KiB of the 256 KiB for the journal.
    writeFileSync(filler, Buffer.alloc(216 * 1024));
    const vigil = await spawnVigil({ journal });
    const acknowledged: string[] = [];
    const refused: string[] = [];
    try {
      const full = await flood(vigil, "tmpfs", 400);
      expect(full.other).toEqual([]);
      expect(full.refused.length).toBeGreaterThan(0);
      acknowledged.push(...full.acknowledged);
      refused.push(...full.refused);
      expect((await readyz(vigil)).checks.journal?.detail).toMatch(/^journal: ENOSPC since /);
      expect(await metricsText(vigil)).toMatch(/^vigil_journal_write_failures_total\{reason="no_space"\} [1-9]/m);
      expect(await checkAnswered(vigil)).toBe(7);

      // Room again: the next write is durable and acknowledged, readiness recovers.
      rmSync(filler);
      const retried = await Promise.all(full.refused.slice(0, 20).map((s) => putRisk(vigil, s)));
      expect(retried.every((s) => s === 201)).toBe(true);
      acknowledged.push(...full.refused.slice(0, 20));
      refused.splice(0, 20);
      expect((await readyz(vigil)).checks.journal).toMatchObject({ ok: true });
      expect(await metricsText(vigil)).toMatch(/^vigil_journal_writable 1$/m);

    } finally {
      await vigil.stop();
    }
    await expectExactlyAcknowledged(journal, acknowledged, refused);
  });

  it.skipIf(!mounted)("starts on a read-only disk (EROFS), refuses writes, and takes them once it is read-write again", async () => {
    const journal = join(mountPoint, "ro", "journal.jsonl");
    const first = await spawnVigil({ journal });
    expect(await putRisk(first, "spiffe://example.org/ns/load/sa/before-ro")).toBe(201);
    await first.stop();
    // A file open for writing keeps a remount read-only from working; nothing is open now.
    expect(spawnSync("mount", ["-o", "remount,ro", mountPoint]).status).toBe(0);
    let vigil: Sidecar | undefined;
    try {
      vigil = await spawnVigil({ journal });
      expect(await getRisk(vigil, "spiffe://example.org/ns/load/sa/before-ro")).toBe(200);
      expect(await putRisk(vigil, "spiffe://example.org/ns/load/sa/ro-1")).toBe(503);
      const ready = await readyz(vigil);
      expect(ready.status).toBe(503);
      expect(ready.checks.journal?.detail).toMatch(/^journal: EROFS since /);
      expect(await metricsText(vigil)).toMatch(/^vigil_journal_write_failures_total\{reason="read_only"\} [1-9]/m);
      expect(await checkAnswered(vigil)).toBe(7);

      expect(spawnSync("mount", ["-o", "remount,rw", mountPoint]).status).toBe(0);
      expect(await putRisk(vigil, "spiffe://example.org/ns/load/sa/rw-1")).toBe(201);
      expect((await readyz(vigil)).checks.journal).toMatchObject({ ok: true });
    } finally {
      spawnSync("mount", ["-o", "remount,rw", mountPoint]);
      await vigil?.stop();
    }
    await expectExactlyAcknowledged(journal, [
      "spiffe://example.org/ns/load/sa/before-ro", "spiffe://example.org/ns/load/sa/rw-1",
    ], ["spiffe://example.org/ns/load/sa/ro-1"]);
  });
});

describe("a damaged journal", { timeout: 180_000 }, () => {
  it("refuses to start over a corrupt record in the middle, naming its line, and starts with --journal-repair", async () => {
    const journal = join(dir, "corrupt", "journal.jsonl");
    const first = await spawnVigil({ journal });
    for (let i = 0; i < 4; i++) expect(await putRisk(first, `spiffe://example.org/ns/load/sa/c${String(i)}`)).toBe(201);
    await first.stop();
    const lines = readFileSync(journal, "utf8").split("\n");
    lines[1] = lines[1]!.replace("durability probe", "durability pr0be");
    writeFileSync(journal, lines.join("\n"));

    const refused = refusedStart(journal);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("1 corrupt record(s) (line 2)");
    expect(refused.stderr).toContain("--journal-repair");

    const repaired = await spawnVigil({ journal, extraArgs: ["--journal-repair"] });
    try {
      expect((await readyz(repaired)).checks.journal?.detail).toContain("1 corrupt record(s) dropped");
      expect(await metricsText(repaired)).toMatch(/^vigil_journal_corrupt_records 1$/m);
      expect(await getRisk(repaired, "spiffe://example.org/ns/load/sa/c1")).toBe(404);
      for (const i of [0, 2, 3]) expect(await getRisk(repaired, `spiffe://example.org/ns/load/sa/c${String(i)}`)).toBe(200);
    } finally {
      await repaired.stop();
    }
    // The repair rewrote the journal: a plain start works again.
    const after = await spawnVigil({ journal });
    await after.stop();
  });

  it("starts over a torn last record (a crash mid-write), cutting it off", async () => {
    const journal = join(dir, "torn", "journal.jsonl");
    const first = await spawnVigil({ journal });
    for (let i = 0; i < 3; i++) expect(await putRisk(first, `spiffe://example.org/ns/load/sa/t${String(i)}`)).toBe(201);
    await first.stop();
    const text = readFileSync(journal, "utf8");
    writeFileSync(journal, text + text.slice(0, 60));

    const second = await spawnVigil({ journal });
    try {
      expect((await readyz(second)).checks.journal).toMatchObject({ ok: true });
      for (let i = 0; i < 3; i++) expect(await getRisk(second, `spiffe://example.org/ns/load/sa/t${String(i)}`)).toBe(200);
      expect(await putRisk(second, "spiffe://example.org/ns/load/sa/t3")).toBe(201);
    } finally {
      await second.stop();
    }
    expect(readFileSync(journal, "utf8").split("\n").filter((l) => l !== "")).toHaveLength(4);
  });
});

describe("stdout that cannot take log lines", { timeout: 180_000 }, () => {
  it.each([
    ["a file on a full disk (ulimit -f 16)", "file"],
    ["a pipe nobody reads", "unread-pipe"],
  ] as const)("keeps answering gRPC Checks and HTTP with stdout on %s", async (_label, sink) => {
    // Signals in memory only ("" journal): the file-size limit is for stdout here.
    const vigil = await spawnVigil(sink === "file"
      ? { journal: "", fileLimitKb: 16, stdout: { file: join(dir, `stdout-${sink}.log`) } }
      : { journal: "", stdout: "unread-pipe" });
    try {
      // Each Check and each write logs a line: far more than 16 KiB, and than a pipe buffer holds.
      for (let round = 0; round < 10; round++) {
        const checks = await Promise.all(Array.from({ length: 100 }, () => checkAnswered(vigil)));
        expect(checks.every((code) => code === 7)).toBe(true);
        const writes = await Promise.all(Array.from({ length: 20 }, (_, i) => putRisk(vigil, `spiffe://example.org/ns/load/sa/o${String(round)}-${String(i)}`)));
        expect(writes.every((s) => s === 201)).toBe(true);
      }
      expect((await fetch(`${vigil.httpUrl}/healthz`)).status).toBe(200);
      // A full file refuses lines at once; a stalled pipe only once the bounded queue is full.
      if (sink === "file") expect(await metricsText(vigil)).toMatch(/^vigil_log_lines_dropped_total [1-9]/m);
    } finally {
      vigil.child.kill("SIGKILL");
      await vigil.stop();
    }
  });
});
