import Fastify, { type FastifyInstance } from "fastify";
import { GatewayErrorCodes } from "../errors.js";
import type { GatewayContext } from "./context.js";

/** `GET /v1/whoami` on the mTLS listener: the first thing to check when a request is denied. */
export function whoamiRoute(app: FastifyInstance, ctx: GatewayContext): void {
  app.get("/v1/whoami", async (req) => {
    const id = ctx.authenticate(req);
    return { principal: id.principal, kind: id.kind, serial: id.serial };
  });
}

/**
 * The admin listener's app (plain HTTP, its own port, loopback by default), so probes and
 * Prometheus need no client certificate: `GET /healthz` (the process answers), `GET /readyz`
 * (NATS connected; 503 otherwise), `GET /metrics` (Prometheus text, from the OpenTelemetry
 * Prometheus exporter).
 */
export function buildAdminApp(ctx: Pick<GatewayContext, "natsReady" | "metrics" | "log">): FastifyInstance {
  const app = Fastify({
    loggerInstance: ctx.log.child({ component: "admin" }),
  }) as unknown as FastifyInstance;
  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async (_req, reply) => {
    if (ctx.natsReady()) return { status: "ready" };
    reply.code(503);
    return {
      error: {
        code: GatewayErrorCodes.UNAVAILABLE,
        message: "not connected to NATS; the gateway is retrying.",
      },
    };
  });
  app.get("/metrics", async (_req, reply) => {
    reply.type("text/plain; version=0.0.4; charset=utf-8");
    return ctx.metrics.render();
  });
  app.setNotFoundHandler((_req, reply) => {
    reply.code(404).send({
      error: {
        code: GatewayErrorCodes.NOT_FOUND,
        message: "the admin listener serves /healthz, /readyz and /metrics.",
      },
    });
  });
  return app;
}
