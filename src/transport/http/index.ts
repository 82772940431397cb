export {
  startOpsServer, httpStatusOf, readBody, sendJson, type HttpRoute, type MountedRoutes, type OpsServer, type OpsServerOptions, type Readiness,
  type SetReceiver,
} from "./server.js";
export { createAdminActions, type AdminActions } from "./admin-actions.js";
export { AdminAuth, requireScope, type AdminPrincipal } from "./auth.js";
