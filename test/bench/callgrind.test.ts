// The callgrind benches' bookkeeping: JIT addresses named through node's perf map, and each
// function's instructions sorted into the collector, the compiler and the program.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { costKind, costsByKind, nameAt, perfMap } from "../../bench/callgrind.js";

describe("perf map", () => {
  it("names an address inside a range and nothing between ranges", () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-perfmap-"));
    try {
      const file = join(dir, "perf.map");
      // Out of order, as node appends code as it compiles it.
      writeFileSync(file, "3000 10 JS:*b file:///x/dist/b.js:1:1\n1000 100 JS:*a file:///x/dist/a.js:1:1\n");
      const map = perfMap(file);
      expect(nameAt(map, 0x1000)).toBe("JS:*a file:///x/dist/a.js:1:1");
      expect(nameAt(map, 0x10ff)).toBe("JS:*a file:///x/dist/a.js:1:1");
      expect(nameAt(map, 0x1100)).toBe("");
      expect(nameAt(map, 0x300f)).toBe("JS:*b file:///x/dist/b.js:1:1");
      expect(nameAt(map, 0x3010)).toBe("");
      expect(nameAt(map, 0xfff)).toBe("");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("costKind", () => {
  it.each([
    ["heap::base::SlotCallbackResult v8::internal::Scavenger::ScavengeObject<v8::internal::FullHeapObjectSlot>(v8::internal::FullHeapObjectSlot)", "gc"],
    ["void v8::internal::MarkingVisitorBase<v8::internal::ConcurrentMarkingVisitor, v8::internal::ConcurrentMarkingState>::ProcessStrongHeapObject", "gc"],
    ["v8::internal::Sweeper::RawSweep(v8::internal::Page*)", "gc"],
    ["v8::internal::compiler::GraphReducer::ReduceTop()", "compiler"],
    ["v8::internal::maglev::MaglevGraphBuilder::VisitLdar()", "compiler"],
    ["JS:*readShared file:///work/main/dist/transport/envoy/decode.js:149:20", "program"],
    ["Builtins_KeyedLoadIC_Megamorphic", "program"],
    ["v8::internal::Factory::AllocateRaw(int, v8::internal::AllocationType, v8::internal::AllocationAlignment)", "program"],
    ["nghttp2_hd_deflate_hd_bufs", "program"],
    ["_int_malloc", "program"],
  ])("%s is %s", (name, kind) => {
    expect(costKind(name)).toBe(kind);
  });

  it("counts the program's own code by path", () => {
    const costs = new Map([
      ["JS:*decide file:///w/dist/policy/compiler.js:1:1", 10],
      ["JS:*write /w/node_modules/@grpc/grpc-js/build/src/stream-decoder.js:1:1", 5],
      ["v8::internal::compiler::GraphReducer::ReduceTop()", 7],
      ["v8::internal::Scavenger::Process(v8::JobDelegate*)", 3],
    ]);
    expect(costsByKind(costs, "/dist/")).toEqual({ gc: 3, compiler: 7, program: 15, own: 10 });
  });
});
