export { type ClusterOptions, freePort, NatsCluster, startCluster } from "./cluster.js";
export { isServerMissing, LauncherError, type LauncherErrorCode, LauncherErrorCodes } from "./errors.js";
export { NatsServer, natsServerBinary, type ServerOptions, type ServerPorts, startServer } from "./server.js";
