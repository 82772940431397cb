// The commands table's parser (src/cli/args.ts) on any argv: an answer or a usage error naming the
// command, never another exception; a flag one slip away from a real one gets that one suggested.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { closest, COMMANDS, editDistance, parseCommand } from "../../src/cli/args.js";
import { VigilError } from "../../src/errors/index.js";

const commandArb = fc.constantFrom(...COMMANDS);

describe("parseCommand", () => {
  it("answers any argv with values or a usage error that names the command, and nothing else", () => {
    const word = fc.oneof(
      fc.string({ maxLength: 12 }),
      fc.constantFrom("--", "-", "-h", "--help", "--policy", "--server", "--url=", "--kind", "--now", "--journal-repair", "--x=1"),
      commandArb.chain((c) => fc.constantFrom(...Object.keys(c.flags).map((f) => `--${f}`), "--nope")),
    );
    fc.assert(fc.property(commandArb, fc.array(word, { maxLength: 8 }), (spec, argv) => {
      try {
        const parsed = parseCommand(spec, argv);
        if (parsed.help) {
          const stop = argv.indexOf("--");
          const before = stop < 0 ? argv : argv.slice(0, stop);
          expect(before.some((a) => a === "--help" || a === "-h")).toBe(true);
        } else {
          for (const name of Object.keys(parsed.values)) expect(spec.flags[name]).toBeDefined();
        }
      } catch (error) {
        expect(error).toBeInstanceOf(VigilError);
        expect((error as VigilError).code).toBe("invalid_input");
        expect((error as VigilError).message.startsWith(`${spec.name}: `)).toBe(true);
      }
    }), { numRuns: 2_000 });
  });

  it.each([
    // fast-check found it: "--" used to be taken as --config's value, and the --help after it obeyed.
    [["--config", "--", "--help"], "serve: --config needs a value"],
    [["--policy", "--"], "serve: --policy needs a value"],
  ])("refuses %j: a flag's value is never the end of the flags", (argv, message) => {
    const serve = COMMANDS.find((c) => c.name === "serve");
    if (serve === undefined) throw new Error("no serve command");
    expect(() => parseCommand(serve, argv)).toThrow(message);
  });

  it("suggests the flag a single slip came from, when no other flag is as close", () => {
    const slip = commandArb
      .filter((c) => Object.keys(c.flags).length > 0)
      .chain((c) => fc.tuple(fc.constant(c), fc.constantFrom(...Object.keys(c.flags)), fc.nat(), fc.constantFrom("drop", "swap", "typo")));
    fc.assert(fc.property(slip, ([spec, flag, at, kind]) => {
      const i = at % flag.length;
      const typo = kind === "drop" ? flag.slice(0, i) + flag.slice(i + 1)
        : kind === "swap" ? flag.slice(0, i) + (flag[i] === "x" ? "y" : "x") + flag.slice(i + 1)
          : `${flag}s`;
      const known = Object.keys(spec.flags);
      if (typo.length < 3 || known.includes(typo)) return;
      // Skip slips that are as near to another flag (then either answer is honest).
      if (known.some((k) => k !== flag && editDistance(typo, k) <= editDistance(typo, flag))) return;
      expect(() => parseCommand(spec, [`--${typo}`, "v"])).toThrow(`(did you mean --${flag}?)`);
    }), { numRuns: 1_000 });
  });
});

describe("closest", () => {
  it.each([
    ["polcy", ["policy", "signals"], "policy"],
    ["token", ["url", "token-file"], "token-file"],
    ["grpc-prot", ["grpc-port", "grpc-host", "http-port"], "grpc-port"],
    ["zzzzzz", ["policy", "signals"], undefined],
    ["x", ["policy"], undefined],
    ["chek", ["check", "serve"], "check"],
  ] as const)("%s among %j is %s", (given, known, expected) => {
    expect(closest(given, known)).toBe(expected);
  });

  it("editDistance is a distance: zero only for equals, symmetric, at most the longer length", () => {
    fc.assert(fc.property(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 }), (a, b) => {
      const d = editDistance(a, b);
      expect(d === 0).toBe(a === b);
      expect(editDistance(b, a)).toBe(d);
      expect(d).toBeLessThanOrEqual(Math.max(a.length, b.length));
    }));
  });
});
