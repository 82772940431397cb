// `npm run lint:deps` (part of `npm test`): imports in src/ flow one way and never in a circle.
// Type-only imports count too: two modules that need each other's types cannot be understood (or
// moved) apart, and that is what the layers are for.
//
// Layers, lowest first. A folder may import its own layer and those below it, never one above:
//   model      the words every phase shares (AccessRequest, Decision, Outcome, the policy views)
//   util       small helpers every layer may use (type guards, error formatting); imports nothing of ours
//   building blocks: errors, config, telemetry, identity, signals, approvals, behavior, policy, outbox, notify
//   decision   the Check's phases
//   transport  Envoy's wire and the HTTP API
//   cli        wires everything together

const BELOW_DECISION = "^src/(policy|identity|signals|approvals|behavior|outbox|notify|telemetry|config|errors)/";

/** @type {import("dependency-cruiser").IConfiguration} */
export default {
  forbidden: [
    {
      name: "no-cycles",
      severity: "error",
      comment: "A module may not reach itself through its imports (type-only ones included).",
      from: { path: "^src/" },
      to: { circular: true },
    },
    {
      name: "model-imports-nothing-of-ours",
      severity: "error",
      comment: "src/model is the bottom layer: it imports nothing of Vigil's own.",
      from: { path: "^src/model/" },
      to: { path: "^src/", pathNot: "^src/model/" },
    },
    {
      name: "util-imports-nothing-of-ours",
      severity: "error",
      comment: "src/util holds helpers any layer may use: it imports nothing of Vigil's own.",
      from: { path: "^src/util/" },
      to: { path: "^src/", pathNot: "^src/util/" },
    },
    {
      name: "building-blocks-below-decision",
      severity: "error",
      comment: "policy, identity, signals, approvals, behavior, telemetry, config and errors know nothing of the decision, the wire or the CLI; move shared words to src/model.",
      from: { path: BELOW_DECISION },
      to: { path: "^src/(decision|transport|cli)/" },
    },
    {
      name: "decision-below-transport",
      severity: "error",
      comment: "The decision knows nothing of the wire or the CLI.",
      from: { path: "^src/decision/" },
      to: { path: "^src/(transport|cli)/" },
    },
    {
      name: "transport-below-cli",
      severity: "error",
      comment: "Transport does not import the CLI.",
      from: { path: "^src/transport/" },
      to: { path: "^src/cli/" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    // Generated from Envoy's protos (npm run gen:proto): google.protobuf.Struct and Value are
    // defined in terms of each other, as in the .proto files; nothing of ours is in there.
    exclude: { path: "^src/transport/envoy/gen/" },
    // Type-only imports are dependencies too (see above).
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
