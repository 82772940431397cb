// A JSON-RPC batch carries several calls while the policy judges one action: the pipeline refuses
// any batch holding a call, and looks at nothing but the first character of every other body.

import { describe, expect, it } from "vitest";
import { jsonRpcBatchProblem } from "../../src/decision/index.js";

const CALL = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "delete_all" } });

describe("jsonRpcBatchProblem", () => {
  it.each([
    { name: "a batch of one call", body: `[${CALL}]`, refused: true },
    { name: "a batch of a notification and a call", body: `[{"jsonrpc":"2.0","method":"notifications/initialized"},${CALL}]`, refused: true },
    { name: "a batch behind whitespace", body: `\r\n\t [${CALL}]`, refused: true },
    { name: "a single call", body: CALL, refused: false },
    { name: "an empty body", body: "", refused: false },
    { name: "a JSON array of numbers (a REST body, not JSON-RPC)", body: "[1,2,3]", refused: false },
    { name: "an array of objects without a method", body: '[{"id":1},{"name":"x"}]', refused: false },
    { name: "a truncated batch (not JSON: left to the rules)", body: `[${CALL}`, refused: false },
    { name: "plain text", body: "[not json", refused: false },
  ])("$name → refused: $refused", ({ body, refused }) => {
    expect(jsonRpcBatchProblem(body) !== undefined).toBe(refused);
  });
});
