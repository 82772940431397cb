// Regenerates src/transport/envoy/gen/ from proto/ with proto-loader-gen-types, deriving every
// flag from LOADER_OPTIONS so the types cannot drift from what the loader produces.
// Run: `npm run gen:proto` (writes gen/), or `tsx src/transport/envoy/codegen.ts <outDir>`.

import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Options } from "@grpc/proto-loader";
import { EXTERNAL_AUTH_PROTO, LOADER_OPTIONS } from "./proto.js";

/** Repository root: the generator runs here so paths written into gen/ are machine-independent. */
const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/** The committed output folder. */
export const GEN_DIR = fileURLToPath(new URL("./gen/", import.meta.url));

/** Command-line flags for proto-loader-gen-types equivalent to LOADER_OPTIONS. */
export function genTypesArgs(outDir: string): string[] {
  // Widened on purpose: every option the loader may be given is mapped, not only today's values.
  const options: Options = LOADER_OPTIONS;
  // The proto file goes first: yargs lets an array flag (includeDirs) swallow later positionals.
  const args = [
    EXTERNAL_AUTH_PROTO,
    "--grpcLib=@grpc/grpc-js",
    // NodeNext needs explicit extensions in relative imports.
    "--importFileExtension=.js",
    `--outDir=${outDir}`,
  ];
  if (options.longs !== undefined) args.push(`--longs=${options.longs.name}`);
  if (options.enums !== undefined) args.push(`--enums=${options.enums.name}`);
  if (options.bytes !== undefined) args.push(`--bytes=${options.bytes.name}`);
  for (const flag of ["keepCase", "defaults", "arrays", "objects", "oneofs", "json"] as const) {
    if (options[flag] === true) args.push(`--${flag}`);
  }
  // Relative to REPO_ROOT (the same folders): gen-types copies them into "Original file" comments.
  for (const dir of options.includeDirs ?? []) args.push(`--includeDirs=${relative(REPO_ROOT, dir)}`);
  return args;
}

/** Writes the generated types for proto/ into outDir (created if missing). */
export function generateTypes(outDir: string): void {
  const require = createRequire(import.meta.url);
  const loaderPackage = require.resolve("@grpc/proto-loader/package.json");
  const cli = join(dirname(loaderPackage), "build", "bin", "proto-loader-gen-types.js");
  execFileSync(process.execPath, [cli, ...genTypesArgs(resolve(outDir))], { cwd: REPO_ROOT, stdio: "pipe" });
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  generateTypes(process.argv[2] ?? GEN_DIR);
}
