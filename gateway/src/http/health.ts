import type { FastifyInstance } from "fastify";
import { GatewayErrorCodes, gatewayError } from "../errors.js";
import type { GatewayContext } from "./context.js";

/** `GET /healthz` (the process answers), `GET /readyz` (NATS connected), `GET /metrics` (Prometheus), `GET /v1/whoami`. */
export function healthRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async () => {
    if (!ctx.natsReady()) {
      throw gatewayError(GatewayErrorCodes.UNAVAILABLE, "not connected to NATS; the gateway is retrying.");
    }
    return { status: "ready" };
  });
  // Who the gateway thinks the caller is: the first thing to check when a request is denied.
  app.get("/v1/whoami", async (req) => {
    const id = ctx.authenticate(req);
    return { principal: id.principal, kind: id.kind, serial: id.serial };
  });
  app.get("/metrics", async (_req, reply) => {
    reply.type("text/plain; version=0.0.4; charset=utf-8");
    return ctx.metrics.render();
  });
}
