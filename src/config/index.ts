export * from "./defaults.js";
export * from "./schema.js";
export { loadConfig, parseServeArgs, readTokensFile, readAdminTokensFile, SERVE_FLAGS } from "./load.js";
export { ADMIN_SCOPES, parseAdminTokens, parseAdminTokenLine, type AdminScope, type AdminToken } from "./admin-tokens.js";
