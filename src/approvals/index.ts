export * from "./book.js";
