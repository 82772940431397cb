export * from "./defaults.js";
export * from "./schema.js";
export { loadConfig, parseServeArgs, readTokensFile, formatZodError, SERVE_FLAGS } from "./load.js";
