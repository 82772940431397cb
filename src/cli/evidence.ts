// `vigil evidence LOGFILE`: summarises a decision log (JSON lines, as Vigil writes them to
// stdout and a log pipeline stores them) per control: decisions by outcome, first and last seen,
// sample decision ids; as a table, or JSON with --json. Reads the file as a stream, so a day of
// logs does not have to fit in memory.

import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { VigilError } from "../errors/index.js";
import { EvidenceCollector, evidenceTable } from "../policy/index.js";
import { parseOrHelp, string } from "./args.js";

function time(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new VigilError("invalid_input", `--${flag} is not a date: ${value.slice(0, 40)}`);
  return ms;
}

export async function evidence(argv: string[]): Promise<number> {
  const parsed = parseOrHelp("evidence", argv);
  if (parsed === undefined) return 0;
  const file = parsed.positionals[0];
  if (file === undefined) throw new VigilError("invalid_input", "evidence needs a decision log file (or - for stdin); see vigil evidence --help");
  const since = time("since", string(parsed.values, "since"));
  const until = time("until", string(parsed.values, "until"));
  const collector = new EvidenceCollector({ ...(since === undefined ? {} : { since }), ...(until === undefined ? {} : { until }) });
  const input = file === "-" ? process.stdin : createReadStream(file, { encoding: "utf8" });
  const opened = new Promise<void>((resolve, reject) => {
    if (file === "-") resolve();
    input.once("error", (error: NodeJS.ErrnoException) => {
      reject(new VigilError(error.code === "ENOENT" ? "not_found" : "invalid_input", `cannot read ${file}: ${error.message}`, { cause: error }));
    });
    input.once("open", () => { resolve(); });
  });
  await opened;
  for await (const line of createInterface({ input, crlfDelay: Infinity })) collector.add(line);
  const report = collector.report();
  process.stdout.write(parsed.values.json === true ? `${JSON.stringify(report, null, 2)}\n` : evidenceTable(report));
  return 0;
}
