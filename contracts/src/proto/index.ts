export * from "./reader.js";
export { ProtoWriter } from "./writer.js";
