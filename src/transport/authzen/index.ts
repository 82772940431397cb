export {
  AUTHZEN_PROTOCOL, AUTHZEN_SCOPE, authzenDecision, createAuthzenRoutes, stops, type AuthzenDecision, type AuthzenOptions,
} from "./server.js";
export {
  checkDepth, EVALUATION_SEMANTICS, MAX_NAME_LENGTH, parseEvaluationRequest, parseEvaluationsRequest, type EvaluationSemantic, type EvaluationsRequest,
} from "./request.js";
