export {
  startOpsServer, httpStatusOf, readBody, sendJson, type HttpRoute, type OpsServer, type OpsServerOptions, type Readiness, type SetReceiver,
} from "./server.js";
export { AdminAuth, requireScope, type AdminPrincipal } from "./auth.js";
