import { existsSync } from "node:fs";

/**
 * True when the caller asked for a containerised server (JETKIT_TEST_NATS=testcontainers) and a
 * Docker engine answers on its socket. The local pinned binary is the default everywhere else.
 */
export function wantsContainer(): boolean {
  if (process.env.JETKIT_TEST_NATS !== "testcontainers") return false;
  const socket = (process.env.DOCKER_HOST ?? "unix:///var/run/docker.sock").replace(/^unix:\/\//, "");
  return existsSync(socket);
}

/** A nats-server in a container from `@testcontainers/nats` (installed by the caller). */
export async function startContainerServer(
  image = "nats:2.14",
): Promise<{ url: string; dispose(): Promise<void> }> {
  const moduleName = "@testcontainers/nats";
  let mod: {
    NatsContainer: new (
      image: string,
    ) => {
      withJetStream(): {
        start(): Promise<{ getConnectionOptions(): { servers: string }; stop(): Promise<unknown> }>;
      };
    };
  };
  try {
    mod = (await import(moduleName)) as typeof mod;
  } catch (err) {
    throw new Error(
      "JETKIT_TEST_NATS=testcontainers needs the @testcontainers/nats package: add it to the workspace (pnpm add -Dw @testcontainers/nats) or unset JETKIT_TEST_NATS to use the local nats-server.",
      { cause: err },
    );
  }
  const started = await new mod.NatsContainer(image).withJetStream().start();
  return { url: started.getConnectionOptions().servers, dispose: async () => void (await started.stop()) };
}
