import { AckPolicy, type ConsumerInfo } from "@nats-io/jetstream";
import { RequestError } from "@nats-io/nats-core";
import type { FastifyInstance } from "fastify";
import { GatewayErrorCodes, gatewayError } from "../errors.js";
import type { Identity } from "../identity.js";
import { isFiltered } from "../policy/evaluate.js";
import { openAckToken, principalTag, signAckToken } from "./ack-token.js";
import type { GatewayContext } from "./context.js";
import { type EventJson, eventJson } from "./event-json.js";
import { admit, authorise, checkSubject } from "./guard.js";
import { streamOfPattern } from "./stream.js";

const NAME = /^[A-Za-z0-9_-]{1,32}$/;

const ACK_PAYLOADS = new Map([
  ["ack", "+ACK"],
  ["nak", "-NAK"],
  ["term", "+TERM"],
]);

function durableName(id: Identity, name: string): string {
  if (!NAME.test(name)) {
    throw gatewayError(
      GatewayErrorCodes.BAD_REQUEST,
      "consumer names are 1-32 letters, digits, '_' or '-'.",
      {
        field: "name",
      },
    );
  }
  // Namespaced per principal: one client can never read or ack through another's consumer.
  return `gw_${principalTag(id.principal)}_${name}`;
}

async function findConsumer(ctx: GatewayContext, durable: string): Promise<ConsumerInfo> {
  for (const s of ctx.catalog.streams) {
    try {
      return await ctx.jsm.consumers.info(s.name, durable);
    } catch {
      // not in this stream
    }
  }
  throw gatewayError(
    GatewayErrorCodes.NOT_FOUND,
    'no such consumer: create it first with PUT /v1/consumers/{name} and a body {"pattern": "..."}.',
    { field: "name" },
  );
}

function intParam(v: string | undefined, name: string, def: number, min: number, max: number): number {
  if (v === undefined) return def;
  if (!/^\d{1,9}$/.test(v) || Number(v) < min || Number(v) > max) {
    throw gatewayError(GatewayErrorCodes.BAD_REQUEST, `${name} must be an integer from ${min} to ${max}.`, {
      field: name,
    });
  }
  return Number(v);
}

/**
 * The durable pull API for at-least-once HTTP consumers:
 * - `PUT /v1/consumers/:name` `{ "pattern": "order.>", "ack_wait_ms"?: 30000, "max_deliver"?: -1 }` creates it;
 * - `POST /v1/consumers/:name/fetch?batch=N&wait_ms=M` returns up to N messages with ack tokens;
 * - `POST /v1/acks/:token` (`?action=ack|nak|term`, default ack) settles one delivery;
 * - `DELETE /v1/consumers/:name` removes it.
 */
export function pullRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  app.put<{ Params: { name: string }; Body: unknown }>("/v1/consumers/:name", async (req, reply) => {
    const id = await admit(ctx, req, reply);
    const durable = durableName(id, req.params.name);
    let parsed: unknown;
    try {
      parsed = JSON.parse(String(req.body ?? ""));
    } catch {
      parsed = undefined;
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      throw gatewayError(
        GatewayErrorCodes.BAD_BODY,
        'the body must be a JSON object: send {"pattern": "<subject pattern>"}.',
      );
    }
    const body = parsed as { pattern?: unknown; ack_wait_ms?: unknown; max_deliver?: unknown };
    if (typeof body.pattern !== "string") {
      throw gatewayError(GatewayErrorCodes.BAD_BODY, "pattern must be a subject pattern string.", {
        field: "pattern",
      });
    }
    const pattern = body.pattern;
    checkSubject(ctx, pattern, "subscribe");
    const stream = streamOfPattern(ctx, pattern);
    const decision = authorise(ctx, req, id, "subscribe", pattern);
    if (decision.filtered && !ctx.dryRun) {
      // A durable delivers every event of its filter at least once; neither the gateway (without
      // terminating them) nor nats-server can hide part of them, so a partly denied pattern is refused.
      throw gatewayError(
        GatewayErrorCodes.FORBIDDEN,
        `${id.principal} may subscribe to "${pattern}" only without the events of ${decision.filtered.map((f) => `"${f}"`).join(", ")} (a deny rule), and a durable consumer cannot skip events. Create the consumer on a pattern that no deny overlaps.`,
        { action: "subscribe", subject: pattern, rule: decision.rule },
      );
    }
    const ackWait = typeof body.ack_wait_ms === "number" ? body.ack_wait_ms : 30_000;
    const maxDeliver = typeof body.max_deliver === "number" ? body.max_deliver : -1;
    try {
      await ctx.jsm.consumers.add(stream.name, {
        durable_name: durable,
        filter_subject: pattern,
        ack_policy: AckPolicy.Explicit,
        ack_wait: Math.max(1000, ackWait) * 1_000_000,
        max_deliver: maxDeliver,
      });
    } catch (err) {
      throw gatewayError(
        GatewayErrorCodes.BAD_REQUEST,
        `cannot create consumer: ${(err as Error).message}`,
        {},
        err,
      );
    }
    reply.code(201);
    return { name: req.params.name, stream: stream.name, pattern };
  });

  app.delete<{ Params: { name: string } }>("/v1/consumers/:name", async (req, reply) => {
    const id = await admit(ctx, req, reply);
    const info = await findConsumer(ctx, durableName(id, req.params.name));
    await ctx.jsm.consumers.delete(info.stream_name, info.name);
    reply.code(204);
  });

  app.post<{ Params: { name: string }; Querystring: { batch?: string; wait_ms?: string } }>(
    "/v1/consumers/:name/fetch",
    async (req, reply) => {
      const id = await admit(ctx, req, reply);
      const batch = intParam(req.query.batch, "batch", 10, 1, ctx.limits.maxBatch);
      const waitMs = intParam(req.query.wait_ms, "wait_ms", 1000, 1000, ctx.limits.maxWaitMs);
      const info = await findConsumer(ctx, durableName(id, req.params.name));
      const pattern = info.config.filter_subject ?? ">";
      // The policy may have changed since the consumer was created: decide again on every fetch.
      const decision = authorise(ctx, req, id, "subscribe", pattern);
      const consumer = await ctx.js.consumers.get(info.stream_name, info.name);
      const iter = await consumer.fetch({ max_messages: batch, expires: waitMs });
      const messages: (EventJson & { token: string; delivery: number })[] = [];
      for await (const m of iter) {
        if (isFiltered(decision, m.subject)) {
          m.term();
          continue;
        }
        messages.push({
          ...eventJson(ctx.catalog, m),
          delivery: m.info.deliveryCount,
          token: signAckToken(ctx.ackSecret, id.principal, (m as unknown as { reply: string }).reply),
        });
      }
      return { messages };
    },
  );

  app.post<{ Params: { token: string }; Querystring: { action?: string | string[] } }>(
    "/v1/acks/:token",
    async (req, reply) => {
      const id = await admit(ctx, req, reply);
      const replySubject = openAckToken(ctx.ackSecret, id.principal, req.params.token);
      const action = req.query.action ?? "ack";
      // A Map, not an object literal: `?action=constructor` must not find Object.prototype's.
      const payload = typeof action === "string" ? ACK_PAYLOADS.get(action) : undefined;
      if (!payload) {
        throw gatewayError(GatewayErrorCodes.BAD_REQUEST, "action must be ack, nak or term.", {
          field: "action",
        });
      }
      try {
        // A request (not a plain publish) so the server confirms the ack was recorded.
        await ctx.nc.request(replySubject, payload, { timeout: 5000 });
      } catch (err) {
        if (err instanceof RequestError && err.isNoResponders()) {
          // Nothing listens on the delivery's ack subject: its consumer was deleted.
          throw gatewayError(
            GatewayErrorCodes.DELIVERY_GONE,
            "the consumer of this delivery no longer exists, so it cannot be settled; do not retry. Create the consumer again (PUT /v1/consumers/{name}) and fetch.",
            {},
            err,
          );
        }
        throw gatewayError(
          GatewayErrorCodes.UNAVAILABLE,
          `the ${action} was not confirmed: ${(err as Error).message}. Retry; acks are idempotent.`,
          {},
          err,
        );
      }
      return { action };
    },
  );
}
