// The bottom layer: the words every phase of a Check shares. It imports nothing of Vigil's own.
export * from "./outcome.js";
export type * from "./request.js";
export type * from "./decision.js";
export type * from "./views.js";
export type * from "./hints.js";
