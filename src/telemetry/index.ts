export * from "./logger.js";
export * from "./metrics.js";
export * from "./decision-log.js";
export * from "./hot-metrics.js";
export * from "./decision-feed.js";
