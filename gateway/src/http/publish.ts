import { fromJson, type Message, toBinary } from "@bufbuild/protobuf";
import { type EventSpec, findJetkitError, isJetkitError } from "@jetkit/contracts";
import type { FastifyInstance } from "fastify";
import { GatewayErrorCodes, gatewayError } from "../errors.js";
import { idempotencyScope } from "./ack-token.js";
import type { GatewayContext } from "./context.js";
import { admit, authorise, checkSubject, tokenHeader } from "./guard.js";

/** The proto field a protobuf-es JSON error names (`cannot decode field x.y.Z.order_id from JSON`). */
function fieldOfJsonError(spec: EventSpec, message: string): string | undefined {
  const field = /field ([\w.]+)/.exec(message)?.[1];
  if (field) return field.startsWith(`${spec.type}.`) ? field.slice(spec.type.length + 1) : field;
  return /key "([^"]+)" is unknown/.exec(message)?.[1];
}

function decodeBody(ctx: GatewayContext, spec: EventSpec, body: unknown, binary: boolean): Message {
  if (binary) {
    try {
      return ctx.catalog.decode(spec, body as Buffer);
    } catch (err) {
      throw gatewayError(
        GatewayErrorCodes.BAD_BODY,
        `the body is not a binary ${spec.type}: ${findJetkitError(err)?.message ?? (err as Error).message}`,
        {},
        err,
      );
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(String(body ?? ""));
  } catch (err) {
    throw gatewayError(
      GatewayErrorCodes.BAD_BODY,
      `the body is not valid JSON (${(err as Error).message}); send the event as protobuf JSON.`,
      {},
      err,
    );
  }
  try {
    return fromJson(spec.schema, json as never, { registry: ctx.catalog.registry });
  } catch (err) {
    const field = fieldOfJsonError(spec, (err as Error).message);
    throw gatewayError(
      GatewayErrorCodes.BAD_BODY,
      `the body is not a ${spec.type} in protobuf JSON: ${(err as Error).message}. Use the proto JSON names and types (see the contract in ${spec.file}).`,
      field ? { field } : {},
      err,
    );
  }
}

/** `POST /v1/events/:subject`: validate by contract, authorise, publish with the producer SDK. */
export function publishRoute(app: FastifyInstance, ctx: GatewayContext): void {
  app.post<{ Params: { subject: string } }>("/v1/events/:subject", async (req, reply) => {
    const id = admit(ctx, req, reply);
    const { subject } = req.params;
    checkSubject(ctx, subject, "publish");
    const spec = ctx.catalog.findBySubject(subject);
    if (!spec) {
      throw gatewayError(
        GatewayErrorCodes.UNKNOWN_SUBJECT,
        `no event of the catalog is published on "${subject}". Known subjects: ${ctx.catalog.events.map((e) => e.subject).join(", ")}.`,
        { field: "subject" },
      );
    }
    authorise(ctx, req, id, "publish", subject);
    const key = tokenHeader(req, "idempotency-key");
    // Scoped to the principal: another client's key can neither suppress this event as a
    // duplicate nor reveal the other event's sequence.
    const msgId = key ? `${idempotencyScope(id.principal)}.${key}` : undefined;
    const correlationId = tokenHeader(req, "x-correlation-id");
    const causationId = tokenHeader(req, "x-causation-id");
    const type = String(req.headers["content-type"] ?? "");
    const message = decodeBody(ctx, spec, req.body, /protobuf/.test(type));
    const violations = ctx.validator.violations(spec.schema, message);
    if (violations.length > 0) {
      const first = violations[0]!;
      throw gatewayError(
        GatewayErrorCodes.CONTRACT_VIOLATION,
        `${spec.type} breaks its contract: ${violations.map((v) => `${v.field || "(message)"}: ${v.message} [${v.rule}]`).join("; ")}. Fix the field(s); the rules are in ${spec.file}.`,
        { field: first.field, rule: first.rule, violations },
      );
    }
    let ack: Awaited<ReturnType<GatewayContext["publisher"]["publishEncoded"]>>;
    try {
      ack = await ctx.publisher.publishEncoded({
        subject,
        payload: toBinary(spec.schema, message),
        ...(msgId ? { msgId } : {}),
        ...(correlationId ? { correlationId } : {}),
        ...(causationId ? { causationId } : {}),
      });
    } catch (err) {
      if (isJetkitError(err, "JK_PRODUCER_PAYLOAD_TOO_LARGE")) {
        throw gatewayError(GatewayErrorCodes.BODY_TOO_LARGE, findJetkitError(err)!.message, {}, err);
      }
      throw gatewayError(
        GatewayErrorCodes.UNAVAILABLE,
        `the event could not be published: ${findJetkitError(err)?.message ?? (err as Error).message}. Retry with the same Idempotency-Key; it will not be duplicated.`,
        {},
        err,
      );
    }
    ctx.metrics.published(subject);
    req.log.info(
      {
        principal: id.principal,
        subject,
        stream: ack.stream,
        seq: ack.seq,
        msg_id: ack.msgId,
        duplicate: ack.duplicate,
      },
      "published",
    );
    reply.code(ack.duplicate ? 200 : 201);
    return { stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate, msgId: ack.msgId };
  });
}
