// Local development state: `vigil dev-tokens` (run by `npm start`) gives a laptop server admin
// tokens so the README walkthrough works as written, and `vigil reset` (`npm run reset`) clears
// what a previous run left in .vigil (revocations, grants, tokens).
//
// The tokens are random, written 0600 into a 0700 directory, kept across runs, and never printed:
// the output names the files, and the CLI reads them with --token-file. The approver's token is
// named with the SPIFFE ID examples/policies/change-mgmt.yaml names in stepUp.approvers, because an
// approval is checked against the token holder's NAME (a token named "admin" would be refused).

import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join, resolve } from "node:path";
import { parseAdminTokens, type AdminScope } from "../config/index.js";
import { VigilError } from "../errors/index.js";

export const DEV_DIR = ".vigil";
export const ADMIN_TOKENS_FILE = "admin-tokens";

export interface DevHolder {
  /** The file holding this holder's token alone, for --token-file. */
  readonly file: string;
  /** The token's NAME: its audit identity and, for an approver, who it approves as. */
  readonly name: string;
  readonly scopes: readonly AdminScope[];
}

export const DEV_HOLDERS: readonly DevHolder[] = [
  { file: "operator.token", name: "operator", scopes: ["signals:write", "signals:reinstate"] },
  { file: "approver.token", name: "spiffe://example.org/ns/ops/sa/change-approver", scopes: ["approvals:decide"] },
];

/**
 * The state `vigil reset` removes: journals (signals, approvals, their compaction and repair
 * copies: *.jsonl*), JSON state kept beside them (behaviour baselines: *.json*) and the dev tokens.
 */
const STATE_FILE = /^([A-Za-z0-9_.-]+\.jsonl?(\..*)?|admin-tokens|[a-z-]+\.token)$/;

function newToken(): string {
  // 32 random bytes, base64url: only characters an admin token may hold.
  return randomBytes(32).toString("base64url");
}

function tokensIntact(dir: string): boolean {
  const file = join(dir, ADMIN_TOKENS_FILE);
  if (!existsSync(file) || DEV_HOLDERS.some((h) => !existsSync(join(dir, h.file)))) return false;
  const tokens = parseAdminTokens(readFileSync(file, "utf8"), `admin tokens file ${file}`);
  return DEV_HOLDERS.every((h) => {
    const own = readFileSync(join(dir, h.file), "utf8").trim();
    return tokens.some((t) => t.token === own && t.name === h.name && h.scopes.every((s) => t.scopes.includes(s)));
  });
}

/**
 * Creates DIR/admin-tokens and DIR/<holder>.token unless they are all there and agree (then they
 * are kept, so a running CLI session's token stays valid). Returns what it says to the user.
 */
export function ensureDevTokens(dir: string): { created: boolean; message: string } {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const created = !tokensIntact(dir);
  if (created) {
    const lines = ["# Dev admin tokens written by `vigil dev-tokens` (npm start): TOKEN NAME SCOPES. Local use only."];
    for (const holder of DEV_HOLDERS) {
      const token = newToken();
      writeFileSync(join(dir, holder.file), `${token}\n`, { mode: 0o600 });
      chmodSync(join(dir, holder.file), 0o600);
      lines.push(`${token} ${holder.name} ${holder.scopes.join(",")}`);
    }
    writeFileSync(join(dir, ADMIN_TOKENS_FILE), `${lines.join("\n")}\n`, { mode: 0o600 });
    chmodSync(join(dir, ADMIN_TOKENS_FILE), 0o600);
  }
  const message = [
    `vigil: dev admin tokens ${created ? "written to" : "kept in"} ${join(dir, ADMIN_TOKENS_FILE)} (for serve --admin-tokens-file; the tokens themselves are not printed)`,
    ...DEV_HOLDERS.map((h) => `vigil:   --token-file ${join(dir, h.file)}   ${h.name} (${h.scopes.join(",")})`),
  ].join("\n");
  return { created, message };
}

/** True when something accepts a TCP connection at the URL's host and port. */
function answers(url: URL): Promise<boolean> {
  const port = Number(url.port !== "" ? url.port : url.protocol === "https:" ? 443 : 80);
  return new Promise((done) => {
    const socket = connect({ host: url.hostname.replace(/^\[|\]$/g, ""), port });
    socket.setTimeout(1_000);
    const finish = (result: boolean): void => {
      socket.destroy();
      done(result);
    };
    socket.once("connect", () => { finish(true); });
    socket.once("error", () => { finish(false); });
    socket.once("timeout", () => { finish(false); });
  });
}

/**
 * Processes (other than this one) holding a file under `dir` open, where /proc tells (Linux): a
 * server on a port --url does not name still has its journal open. Unreadable entries (other
 * users' processes) are skipped; without /proc the answer is empty and the port check stands alone.
 */
function processesHolding(dir: string): number[] {
  if (!existsSync("/proc/self/fd")) return [];
  const holders: number[] = [];
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      for (const fd of readdirSync(`/proc/${entry}/fd`)) {
        const target = readlinkSync(`/proc/${entry}/fd/${fd}`);
        if (target.startsWith(`${dir}/`)) {
          holders.push(pid);
          break;
        }
      }
    } catch {
      // Gone, or not ours to read.
    }
  }
  return holders;
}

/**
 * Removes the journal and dev tokens from DIR (nothing else: a file it does not know is left and
 * named). Refuses while a Vigil answers at `url`, or while any process holds a file there open:
 * a running server would keep writing to a journal no longer there.
 */
export async function resetState(dir: string, url: URL): Promise<string> {
  if (await answers(url)) {
    throw new VigilError("conflict", `something answers at ${url.origin} (a running vigil serve / npm start?): stop it first, then reset; its journal is in use`);
  }
  const full = resolve(dir);
  if (!existsSync(full)) return `vigil: nothing to reset (${dir} does not exist)`;
  if (!statSync(full).isDirectory()) throw new VigilError("invalid_input", `${dir} is not a directory`);
  const holders = processesHolding(full);
  if (holders.length > 0) {
    throw new VigilError("conflict", `process ${holders.join(", ")} has a file in ${dir} open (a running vigil serve?): stop it first, then reset`);
  }
  const removed: string[] = [];
  const kept: string[] = [];
  for (const entry of readdirSync(full)) {
    if (STATE_FILE.test(entry) && statSync(join(full, entry)).isFile()) {
      rmSync(join(full, entry), { force: true });
      removed.push(entry);
    } else {
      kept.push(entry);
    }
  }
  if (kept.length === 0) rmSync(full, { recursive: true, force: true });
  return [
    `vigil: reset ${dir}: removed ${removed.length === 0 ? "nothing" : removed.join(", ")}`,
    ...(kept.length > 0 ? [`vigil: left what reset does not know: ${kept.join(", ")}`] : []),
  ].join("\n");
}
