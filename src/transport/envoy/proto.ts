// Where Vigil's .proto files live and how they are loaded: one options object shared by the
// runtime loader and the type generator, so the generated types describe exactly the objects
// proto-loader produces.

import { fileURLToPath } from "node:url";
import { loadSync, type Options } from "@grpc/proto-loader";

/** Absolute path of the repository's proto/ folder (same depth from src/ and dist/). */
export const PROTO_DIR = fileURLToPath(new URL("../../../proto/", import.meta.url));

/** Entry file; it imports everything else the Authorization service needs. */
export const EXTERNAL_AUTH_PROTO = "envoy/service/auth/v3/external_auth.proto";

/**
 * The only options ever given to `loadSync`, and (via codegen.ts) to `proto-loader-gen-types`.
 * keepCase keeps Envoy's snake_case names; defaults:false shows unset versus default; longs as
 * strings because int64 `size` and Timestamp seconds do not fit a double.
 */
export const LOADER_OPTIONS = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
  includeDirs: [PROTO_DIR],
} as const satisfies Options;

/** Loads Vigil's trimmed ext_authz definitions (a proto-loader PackageDefinition). */
export function loadAuthorizationPackage(): ReturnType<typeof loadSync> {
  return loadSync(EXTERNAL_AUTH_PROTO, { ...LOADER_OPTIONS, includeDirs: [...LOADER_OPTIONS.includeDirs] });
}
