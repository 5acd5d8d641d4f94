import type { StreamSpec } from "@jetkit/contracts";
import { type ConsumerMessages, DeliverPolicy } from "@nats-io/jetstream";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { GatewayErrorCodes, gatewayError } from "../errors.js";
import { isFiltered } from "../policy/evaluate.js";
import { patternCovers } from "../policy/patterns.js";
import type { GatewayContext } from "./context.js";
import { eventJson } from "./event-json.js";
import { admit, authorise, checkSubject } from "./guard.js";

/** The stream whose subjects capture every subject of `pattern`; 404 when none does. */
export function streamOfPattern(ctx: GatewayContext, pattern: string): StreamSpec {
  const s = ctx.catalog.streams.find((st) => st.subjects.some((p) => patternCovers(p, pattern)));
  if (!s) {
    throw gatewayError(
      GatewayErrorCodes.UNKNOWN_SUBJECT,
      `no stream of the catalog captures all of "${pattern}"; subscribe within one domain (streams: ${ctx.catalog.streams.map((x) => `${x.name} ${x.subjects.join(" ")}`).join(", ")}).`,
      { field: "pattern" },
    );
  }
  return s;
}

/** Where to resume: `from_seq` (inclusive) wins over `Last-Event-ID` (the last seen, exclusive). */
function startSeq(req: FastifyRequest<{ Querystring: { from_seq?: string } }>): number | undefined {
  const q = req.query.from_seq;
  if (q !== undefined) {
    if (!/^[1-9]\d{0,15}$/.test(q)) {
      throw gatewayError(GatewayErrorCodes.BAD_REQUEST, "from_seq must be a positive integer.", {
        field: "from_seq",
      });
    }
    return Number(q);
  }
  const last = req.headers["last-event-id"];
  if (last === undefined) return undefined;
  if (Array.isArray(last) || !/^\d{1,16}$/.test(last)) {
    throw gatewayError(
      GatewayErrorCodes.BAD_HEADER,
      "Last-Event-ID must be the sequence of the last event seen.",
      {
        field: "last-event-id",
      },
    );
  }
  return Number(last) + 1;
}

const HEARTBEAT_MS = 15_000;

/**
 * `GET /v1/events/:pattern/stream`: Server-Sent Events of the stored events matching `pattern`,
 * from `from_seq` / after `Last-Event-ID` (or only new ones). Each event's SSE `id` is its stream
 * sequence, so a reconnecting EventSource resumes without gaps. Backed by an ordered consumer,
 * which re-creates itself on gaps or server restarts.
 */
export function streamRoute(app: FastifyInstance, ctx: GatewayContext): void {
  app.get<{ Params: { pattern: string }; Querystring: { from_seq?: string } }>(
    "/v1/events/:pattern/stream",
    async (req, reply) => {
      const id = await admit(ctx, req, reply);
      const { pattern } = req.params;
      checkSubject(ctx, pattern, "subscribe");
      const stream = streamOfPattern(ctx, pattern);
      const decision = authorise(ctx, req, id, "subscribe", pattern);
      const from = startSeq(req);
      let messages: ConsumerMessages;
      try {
        const consumer = await ctx.js.consumers.get(stream.name, {
          filter_subjects: [pattern],
          ...(from === undefined
            ? { deliver_policy: DeliverPolicy.New }
            : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from }),
        });
        messages = await consumer.consume({ max_messages: 256 });
      } catch (err) {
        throw gatewayError(
          GatewayErrorCodes.UNAVAILABLE,
          `cannot read stream ${stream.name}: ${(err as Error).message}. Retry later.`,
          {},
          err,
        );
      }
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        "x-request-id": String(req.id),
      });
      raw.write(`: subscribed to ${pattern} on ${stream.name}\n\n`);
      const log = req.log.child({ principal: id.principal, pattern, stream: stream.name });
      log.info({ from_seq: from }, "sse subscription opened");
      const heartbeat = setInterval(() => raw.write(": keep-alive\n\n"), HEARTBEAT_MS);
      let closed = false;
      const close = () => {
        if (closed) return;
        closed = true;
        clearInterval(heartbeat);
        void messages.close();
      };
      raw.on("close", close);
      try {
        for await (const m of messages) {
          if (closed) break;
          if (isFiltered(decision, m.subject)) continue;
          const json = eventJson(ctx.catalog, m);
          const ok = raw.write(`id: ${m.seq}\nevent: ${m.subject}\ndata: ${JSON.stringify(json)}\n\n`);
          if (!ok && !closed) {
            await new Promise<void>((r) => {
              raw.once("drain", r);
              raw.once("close", r);
            });
          }
        }
      } catch (err) {
        log.warn({ err }, "sse subscription ended by an error");
      } finally {
        close();
        raw.end();
        log.info("sse subscription closed");
      }
    },
  );
}
