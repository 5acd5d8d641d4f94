// The launcher is a public package (jetkit dev up and chaos drills start servers at run time);
// tests keep importing it from here, beside what only tests use.
export {
  type ClusterOptions,
  freePort,
  NatsCluster,
  NatsServer,
  natsServerBinary,
  type ServerOptions,
  type ServerPorts,
  startCluster,
  startServer,
} from "@jetkit/launcher";
export { startContainerServer, wantsContainer } from "./container.js";
export { type PostgresOptions, PostgresServer, postgresBinDir, startPostgres } from "./postgres.js";
