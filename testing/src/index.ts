export { type ClusterOptions, freePort, NatsCluster, startCluster } from "./cluster.js";
export { startContainerServer, wantsContainer } from "./container.js";
export { NatsServer, natsServerBinary, type ServerOptions, type ServerPorts, startServer } from "./server.js";
