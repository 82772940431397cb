export {
  startOpsServer, httpStatusOf, readBody, type MountedRoutes, type OpsServer, type OpsServerOptions, type Readiness, type SetReceiver,
} from "./server.js";
export { createAdminActions, type AdminActions } from "./admin-actions.js";
export { AdminAuth, type AdminPrincipal } from "./auth.js";
