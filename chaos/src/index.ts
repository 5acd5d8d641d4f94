export { ChaosTarget, openTarget } from "./cluster/target.js";
export { ChaosError, ChaosErrorCodes } from "./errors.js";
export { createRng } from "./prng.js";
export { FaultProxy } from "./proxy/fault-proxy.js";
