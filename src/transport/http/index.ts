export { startOpsServer, httpStatusOf, type OpsServer, type OpsServerOptions, type Readiness, type SetReceiver } from "./server.js";
export { AdminAuth, type AdminPrincipal } from "./auth.js";
