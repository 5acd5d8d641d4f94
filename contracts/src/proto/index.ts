export { ProtoWriter } from "./writer.js";
