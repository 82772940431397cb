// Control evidence from a decision log (`vigil evidence`): for each control the rules name, how
// many decisions enforced it, by outcome, over which period, with a few decision ids an auditor
// can look up. Lines are read as untrusted text: a log pipeline mixes in other lines, and a line
// that is not a well-formed decision line is counted and skipped, never trusted.

import { CONTROLS, findControl } from "./controls.js";
import { OUTCOMES } from "../model/index.js";
import type { Outcome } from "../model/index.js";

/** Decision ids kept per control. */
export const SAMPLE_IDS = 5;

export interface ControlEvidence {
  id: string;
  framework: string;
  title: string;
  decisions: number;
  outcomes: Record<Outcome, number>;
  /** ISO times of the first and last decision seen; "" when none. */
  firstSeen: string;
  lastSeen: string;
  /** Up to SAMPLE_IDS decision ids, refusals first. */
  sampleDecisionIds: string[];
}

export interface EvidenceReport {
  /** Lines read, decision lines among them, and lines skipped as not decision lines. */
  lines: number;
  decisions: number;
  skipped: number;
  /** Decision lines whose deciding rule names no control. */
  untagged: number;
  /** Controls named in lines that this build's catalogue does not know (a newer or foreign log). */
  unknownControls: string[];
  from: string;
  to: string;
  controls: ControlEvidence[];
}

const ID = /^[A-Za-z0-9._:-]{1,128}$/;

function isOutcome(value: unknown): value is Outcome {
  return typeof value === "string" && (OUTCOMES as readonly string[]).includes(value);
}

/** Accumulates decision lines; `report()` gives the summary so far. */
export class EvidenceCollector {
  #lines = 0;
  #decisions = 0;
  #skipped = 0;
  #untagged = 0;
  #from = "";
  #to = "";
  readonly #unknown = new Set<string>();
  readonly #byControl = new Map<string, { decisions: number; outcomes: Record<Outcome, number>; first: string; last: string; refusals: string[]; allows: string[] }>();
  readonly #since: number;
  readonly #until: number;

  constructor(options: { since?: number; until?: number } = {}) {
    this.#since = options.since ?? Number.NEGATIVE_INFINITY;
    this.#until = options.until ?? Number.POSITIVE_INFINITY;
  }

  add(text: string): void {
    if (text.trim() === "") return;
    this.#lines++;
    let line: unknown;
    try {
      line = JSON.parse(text);
    } catch {
      this.#skipped++;
      return;
    }
    if (typeof line !== "object" || line === null) {
      this.#skipped++;
      return;
    }
    const record = line as Record<string, unknown>;
    const { msg, outcome, time, controls } = record;
    const id = record.decision_id;
    const at = typeof time === "string" ? Date.parse(time) : typeof time === "number" ? time : Number.NaN;
    if (msg !== "decision" || !isOutcome(outcome) || typeof id !== "string" || !ID.test(id) || Number.isNaN(at)
      || (controls !== undefined && !(Array.isArray(controls) && controls.every((c) => typeof c === "string")))) {
      this.#skipped++;
      return;
    }
    if (at < this.#since || at >= this.#until) return;
    const iso = new Date(at).toISOString();
    this.#decisions++;
    if (this.#from === "" || iso < this.#from) this.#from = iso;
    if (this.#to === "" || iso > this.#to) this.#to = iso;
    const named = (controls ?? []);
    if (named.length === 0) this.#untagged++;
    for (const control of new Set(named)) {
      if (findControl(control) === undefined) {
        if (this.#unknown.size < 100) this.#unknown.add(control.slice(0, 64));
        continue;
      }
      let entry = this.#byControl.get(control);
      if (entry === undefined) {
        entry = { decisions: 0, outcomes: { allow: 0, deny: 0, step_up: 0, delay: 0, revoke: 0 }, first: iso, last: iso, refusals: [], allows: [] };
        this.#byControl.set(control, entry);
      }
      entry.decisions++;
      entry.outcomes[outcome]++;
      if (iso < entry.first) entry.first = iso;
      if (iso > entry.last) entry.last = iso;
      const samples = outcome === "allow" ? entry.allows : entry.refusals;
      if (samples.length < SAMPLE_IDS) samples.push(id);
    }
  }

  report(): EvidenceReport {
    const controls: ControlEvidence[] = [];
    for (const control of CONTROLS) {
      const entry = this.#byControl.get(control.id);
      if (entry === undefined) continue;
      controls.push({
        id: control.id, framework: control.framework, title: control.title,
        decisions: entry.decisions, outcomes: { ...entry.outcomes }, firstSeen: entry.first, lastSeen: entry.last,
        sampleDecisionIds: [...entry.refusals, ...entry.allows].slice(0, SAMPLE_IDS),
      });
    }
    return {
      lines: this.#lines, decisions: this.#decisions, skipped: this.#skipped, untagged: this.#untagged,
      unknownControls: [...this.#unknown].sort(), from: this.#from, to: this.#to, controls,
    };
  }
}

/** The report as a table a person reads (one row per control, then the sample ids). */
export function evidenceTable(report: EvidenceReport): string {
  const rows = [["CONTROL", "FRAMEWORK", "DECISIONS", "ALLOW", "DENY", "STEP_UP", "DELAY", "REVOKE", "FIRST SEEN", "LAST SEEN"]];
  for (const c of report.controls) {
    rows.push([c.id, c.framework, String(c.decisions), String(c.outcomes.allow), String(c.outcomes.deny), String(c.outcomes.step_up),
      String(c.outcomes.delay), String(c.outcomes.revoke), c.firstSeen, c.lastSeen]);
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  const out = rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join("  ").trimEnd());
  out.push("");
  for (const c of report.controls) out.push(`${c.id} (${c.title}): ${c.sampleDecisionIds.join(", ")}`);
  out.push("");
  out.push(`${report.decisions} decision(s) from ${report.from === "" ? "-" : report.from} to ${report.to === "" ? "-" : report.to}; `
    + `${report.untagged} named no control; ${report.skipped} of ${report.lines} line(s) were not decision lines`);
  if (report.unknownControls.length > 0) out.push(`controls this build does not know (ignored): ${report.unknownControls.join(", ")}`);
  return `${out.join("\n")}\n`;
}
