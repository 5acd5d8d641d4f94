import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { JetkitError } from "@jetkit/contracts";
import { ConsumerErrorCodes } from "./errors.js";
import type { HealthOptions } from "./options.js";

/** What the probe asks of the consumer. */
export interface Probed {
  readonly durable: string;
  isReady(): boolean;
  lag(): Promise<{ pending: number; ackPending: number; redelivered: number }>;
}

export interface HealthServer {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * `GET /healthz`: 200 when the consumer is ready, 503 otherwise; the body is JSON with the durable,
 * readiness and lag (null when the server cannot be asked).
 */
export async function startHealthServer(o: HealthOptions, consumer: Probed): Promise<HealthServer> {
  const server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url !== "/healthz" && req.url !== "/readyz")) {
      res.writeHead(404).end();
      return;
    }
    const ready = consumer.isReady();
    const timeout = new Promise<null>((r) => setTimeout(() => r(null), 1000).unref());
    void Promise.race([consumer.lag().catch(() => null), timeout]).then((lag) => {
      res
        .writeHead(ready ? 200 : 503, { "content-type": "application/json" })
        .end(JSON.stringify({ durable: consumer.durable, ready, lag }));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err) =>
      reject(
        new JetkitError(
          ConsumerErrorCodes.HEALTH,
          `health probe could not listen on ${o.host}:${o.port}: ${err.message}. Pick a free port.`,
          { cause: err },
        ),
      ),
    );
    server.listen(o.port, o.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${o.host}:${port}/healthz`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
