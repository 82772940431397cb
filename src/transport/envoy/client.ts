// A minimal Check client over Vigil's own protos, for `vigil check --server`: it lets an operator
// ask a running sidecar exactly what Envoy would ask, without Envoy.

import * as grpc from "@grpc/grpc-js";
import type { ProtoGrpcType } from "./gen/external_auth.js";
import type { CheckRequest } from "./gen/envoy/service/auth/v3/CheckRequest.js";
import type { CheckResponse__Output } from "./gen/envoy/service/auth/v3/CheckResponse.js";
import { loadAuthorizationPackage } from "./proto.js";

export interface CheckClient {
  check(request: CheckRequest, deadlineMs?: number): Promise<CheckResponse__Output>;
  close(): void;
}

export function createCheckClient(address: string): CheckClient {
  const loaded = grpc.loadPackageDefinition(loadAuthorizationPackage()) as unknown as ProtoGrpcType;
  const client = new loaded.envoy.service.auth.v3.Authorization(address, grpc.credentials.createInsecure());
  return {
    check: (request, deadlineMs = 5000) => new Promise((resolve, reject) => {
      client.Check(request, { deadline: Date.now() + deadlineMs }, (err, response) => {
        if (err !== null) reject(err);
        else if (response === undefined) reject(new Error("Check answered without a message"));
        else resolve(response);
      });
    }),
    close: () => { client.close(); },
  };
}
