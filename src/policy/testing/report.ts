// What `vigil test` prints: one line per failing case (file, document and case named), a
// summary, per-rule coverage (the rules no case exercised) and, on request, JUnit XML for CI.

export interface CaseResult {
  file: string;
  /** 1-based document number in the file. */
  document: number;
  /** metadata.name of the PolicyTest. */
  suite: string;
  name: string;
  /** Mismatches between the expectation and the answer; empty when the case passed. */
  failures: string[];
  /** A case that could not run (its request or signals are unusable). */
  error?: string;
  /** The rules that matched the request (deciding rule first). */
  exercised: readonly string[];
  durationMs: number;
}

export interface TestRun {
  cases: CaseResult[];
  /** Every rule of the policy, as "<policy>/<rule>", in load order. */
  rules: readonly string[];
  policyVersion: string;
}

export function passed(result: CaseResult): boolean {
  return result.failures.length === 0 && result.error === undefined;
}

/** Rules no case exercised, in load order. */
export function uncoveredRules(run: TestRun): string[] {
  const seen = new Set(run.cases.flatMap((c) => c.exercised));
  return run.rules.filter((rule) => !seen.has(rule));
}

export function failureLine(result: CaseResult): string {
  const what = result.error !== undefined ? `error: ${result.error}` : result.failures.join("; ");
  return `FAIL ${result.file} doc ${result.document} case "${result.name}": ${what}`;
}

/** The text report: failures, then the summary and the coverage. */
export function textReport(run: TestRun): string {
  const lines = run.cases.filter((c) => !passed(c)).map(failureLine);
  const failed = lines.length;
  const uncovered = uncoveredRules(run);
  const covered = run.rules.length - uncovered.length;
  if (failed > 0) lines.push("");
  lines.push(`${run.cases.length - failed} passed, ${failed} failed, ${run.cases.length} case(s); policy version ${run.policyVersion}`);
  lines.push(`coverage: ${covered}/${run.rules.length} rule(s) exercised${uncovered.length === 0 ? "" : "; not exercised by any case:"}`);
  for (const rule of uncovered) lines.push(`  ${rule}`);
  return `${lines.join("\n")}\n`;
}

function xml(text: string): string {
  // Characters XML 1.0 cannot carry at all are dropped; the rest escaped.
  // eslint-disable-next-line no-control-regex -- removing control characters is the point
  return text.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, "").replace(/[<>&"']/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", "\"": "&quot;", "'": "&apos;" })[c] ?? c);
}

/** JUnit XML (the subset Jenkins, GitLab and GitHub reporters read): one testsuite per test document. */
export function junitReport(run: TestRun): string {
  const suites = new Map<string, CaseResult[]>();
  for (const result of run.cases) {
    const key = `${result.file}#${result.document}`;
    const list = suites.get(key) ?? [];
    list.push(result);
    suites.set(key, list);
  }
  const total = run.cases.length;
  const failures = run.cases.filter((c) => c.failures.length > 0 && c.error === undefined).length;
  const errors = run.cases.filter((c) => c.error !== undefined).length;
  const seconds = (ms: number): string => (ms / 1000).toFixed(3);
  const out = [
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
    `<testsuites name="vigil test" tests="${total}" failures="${failures}" errors="${errors}" time="${seconds(run.cases.reduce((t, c) => t + c.durationMs, 0))}">`,
  ];
  for (const cases of suites.values()) {
    const first = cases[0];
    if (first === undefined) continue;
    const suiteFailures = cases.filter((c) => c.failures.length > 0 && c.error === undefined).length;
    const suiteErrors = cases.filter((c) => c.error !== undefined).length;
    out.push(`  <testsuite name="${xml(first.suite)}" file="${xml(first.file)}" tests="${cases.length}" failures="${suiteFailures}" errors="${suiteErrors}" time="${seconds(cases.reduce((t, c) => t + c.durationMs, 0))}">`);
    for (const c of cases) {
      const head = `    <testcase classname="${xml(`${first.file}.${first.suite}`)}" name="${xml(c.name)}" file="${xml(c.file)}" time="${seconds(c.durationMs)}"`;
      if (c.error !== undefined) out.push(`${head}>`, `      <error message="${xml(c.error)}"/>`, "    </testcase>");
      else if (c.failures.length > 0) out.push(`${head}>`, `      <failure message="${xml(c.failures.join("; "))}">${xml(c.failures.join("\n"))}</failure>`, "    </testcase>");
      else out.push(`${head}/>`);
    }
    out.push("  </testsuite>");
  }
  const uncovered = uncoveredRules(run);
  if (uncovered.length > 0) out.push(`  <!-- rules not exercised by any case: ${xml(uncovered.join(", ")).replace(/--/g, "- -")} -->`);
  out.push("</testsuites>");
  return `${out.join("\n")}\n`;
}
