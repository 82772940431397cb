import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { startFloorServer } from "../../../bench/floor-server.js";
import { DEFAULT_H2LOAD_DATA, grpcFrame } from "../../../bench/h2load-data.js";
import { decodeCheckRequest } from "../../../src/transport/envoy/index.js";
import { benchmarkCheckRequestBytes, createEnvoyClient } from "../../support/envoy-client.js";

describe("benchmark fixtures", () => {
  it("the committed h2load data file is one gRPC frame of the benchmark request (`tsx bench/h2load-data.ts` rewrites it)", () => {
    const file = readFileSync(DEFAULT_H2LOAD_DATA);
    expect(file[0]).toBe(0);
    expect(file.readUInt32BE(1)).toBe(file.length - 5);
    expect(file).toEqual(grpcFrame(benchmarkCheckRequestBytes()));
    const request = decodeCheckRequest(file.subarray(5));
    expect(request.malformed).toEqual([]);
    expect(Object.keys(request.headers)).toHaveLength(14);
    expect(request.headers.authorization).toMatch(/^Bearer /);
    expect(Object.keys(request.contextExtensions)).toEqual(["action", "env"]);
  });

  it("the floor server answers any Check with an OK", async () => {
    const floor = await startFloorServer(0);
    const client = createEnvoyClient(`127.0.0.1:${floor.port}`);
    try {
      expect((await client.checkRaw(Buffer.from("not even protobuf"))).http_response).toBe("ok_response");
    } finally {
      client.close();
      await floor.close();
    }
  });
});
