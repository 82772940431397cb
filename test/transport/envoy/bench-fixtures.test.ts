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

  it("the node:http2 floor answers a Check as the standard grpc-js floor does, and a broken one with INTERNAL", async () => {
    const standard = await startFloorServer(0, "127.0.0.1", "standard");
    const http2 = await startFloorServer(0, "127.0.0.1", "http2");
    const standardClient = createEnvoyClient(`127.0.0.1:${standard.port}`);
    const http2Client = createEnvoyClient(`127.0.0.1:${http2.port}`);
    try {
      const bytes = benchmarkCheckRequestBytes();
      const fromHttp2 = await http2Client.checkRaw(bytes);
      expect(fromHttp2.status?.code ?? 0).toBe(0);
      expect(fromHttp2).toEqual(await standardClient.checkRaw(bytes));
      // Two calls on one connection: the server keeps no per-stream state between them.
      expect((await http2Client.checkRaw(bytes)).status?.code ?? 0).toBe(0);
      await expect(http2Client.checkRaw(Buffer.from([0xff, 0xff, 0xff]))).rejects.toMatchObject({ code: 13 });
    } finally {
      standardClient.close();
      http2Client.close();
      await standard.close();
      await http2.close();
    }
  });
});
