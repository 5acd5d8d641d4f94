import { fromJson, type Message, toBinary } from "@bufbuild/protobuf";
import { type EventSpec, findJetkitError, isJetkitError, partitionKeyOf } from "@jetkit/contracts";
import {
  type Context,
  createTraceState,
  ROOT_CONTEXT,
  type SpanContext,
  TraceFlags,
  trace,
} from "@opentelemetry/api";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { GatewayErrorCodes, gatewayError } from "../errors.js";
import type { Identity } from "../identity.js";
import { idempotencyScope } from "./ack-token.js";
import { type CloudEventRequest, isCloudEventRequest, readCloudEvent } from "./cloudevent.js";
import type { GatewayContext } from "./context.js";
import { admit, authorise, checkSubject, tokenHeader } from "./guard.js";

/** The proto field a protobuf-es JSON error names (`cannot decode field x.y.Z.order_id from JSON`). */
function fieldOfJsonError(spec: EventSpec, message: string): string | undefined {
  const field = /field ([\w.]+)/.exec(message)?.[1];
  if (field) return field.startsWith(`${spec.type}.`) ? field.slice(spec.type.length + 1) : field;
  return /key "([^"]+)" is unknown/.exec(message)?.[1];
}

function decodeBody(ctx: GatewayContext, spec: EventSpec, body: unknown, binary: boolean): Message {
  if (binary) return decodeBinary(ctx, spec, body as Buffer);
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
  return decodeJson(ctx, spec, json);
}

function decodeBinary(ctx: GatewayContext, spec: EventSpec, bytes: Uint8Array): Message {
  try {
    return ctx.catalog.decode(spec, bytes);
  } catch (err) {
    throw gatewayError(
      GatewayErrorCodes.BAD_BODY,
      `the body is not a binary ${spec.type}: ${findJetkitError(err)?.message ?? (err as Error).message}`,
      {},
      err,
    );
  }
}

function decodeJson(ctx: GatewayContext, spec: EventSpec, json: unknown): Message {
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

/** One event to publish, read from either request format. */
interface Publish {
  spec: EventSpec;
  message: Message;
  msgId: string | undefined;
  correlationId: string | undefined;
  causationId: string | undefined;
  time?: Date | undefined;
  /** The trace the publish span continues (a CloudEvent's tracing extension); else the active context. */
  parent?: Context | undefined;
}

/** Checks the event against its contract and publishes it with the producer SDK; the reply body. */
async function publish(
  ctx: GatewayContext,
  req: FastifyRequest,
  reply: FastifyReply,
  principal: string,
  p: Publish,
) {
  const { spec, message } = p;
  const subject = spec.subject;
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
    // the partition key from the decoded message, so the producer need not decode the payload again
    const key = spec.partitionKey ? partitionKeyOf(spec, message) : undefined;
    ack = await ctx.publisher.publishEncoded({
      subject,
      payload: toBinary(spec.schema, message),
      ...(key !== undefined ? { key } : {}),
      ...(p.msgId ? { msgId: p.msgId } : {}),
      ...(p.correlationId ? { correlationId: p.correlationId } : {}),
      ...(p.causationId ? { causationId: p.causationId } : {}),
      ...(p.time ? { time: p.time } : {}),
      ...(p.parent ? { parentContext: p.parent } : {}),
    });
  } catch (err) {
    if (isJetkitError(err, "JK_PRODUCER_PAYLOAD_TOO_LARGE")) {
      throw gatewayError(GatewayErrorCodes.BODY_TOO_LARGE, findJetkitError(err)!.message, {}, err);
    }
    throw gatewayError(
      GatewayErrorCodes.UNAVAILABLE,
      `the event could not be published: ${findJetkitError(err)?.message ?? (err as Error).message}. Retry with the same Idempotency-Key (or CloudEvent id); it will not be duplicated.`,
      {},
      err,
    );
  }
  ctx.metrics.published(subject);
  req.log.info(
    {
      principal,
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
}

/** The message id of an idempotency key: scoped to the principal, so another client's key can neither suppress this event as a duplicate nor reveal the other event's sequence. */
function scopedMsgId(principal: string, key: string | undefined): string | undefined {
  return key ? `${idempotencyScope(principal)}.${key}` : undefined;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The context of a checked W3C traceparent (undefined when absent or all-zero). */
function remoteParent(traceparent: string | undefined, tracestate: string | undefined): Context | undefined {
  const m = traceparent ? TRACEPARENT.exec(traceparent) : null;
  if (!m || /^0+$/.test(m[1]!) || /^0+$/.test(m[2]!)) return undefined;
  const sc: SpanContext = {
    traceId: m[1]!,
    spanId: m[2]!,
    traceFlags: Number.parseInt(m[3]!, 16) & TraceFlags.SAMPLED,
    isRemote: true,
  };
  if (tracestate) sc.traceState = createTraceState(tracestate);
  return trace.setSpanContext(ROOT_CONTEXT, sc);
}

function badAttribute(attribute: string, message: string): Error {
  return gatewayError(GatewayErrorCodes.BAD_CLOUDEVENT, `CloudEvent attribute ${attribute}: ${message}`, {
    field: attribute,
  });
}

/** A header that must agree with the CloudEvent attribute of the same fact, when both are sent. */
function agreeing(req: FastifyRequest, header: string, attribute: string, value: string | undefined) {
  const sent = tokenHeader(req, header);
  if (sent !== undefined && value !== undefined && sent !== value) {
    throw gatewayError(
      GatewayErrorCodes.BAD_HEADER,
      `header ${header} is "${sent}" but the CloudEvent's ${attribute} is "${value}"; send one of them, or the same value.`,
      { field: header },
    );
  }
  return value ?? sent;
}

/**
 * A CloudEvent (HTTP binding): its `type` names the catalog event, whose contract gives the
 * subject (a path subject must be that one); then the same RBAC, idempotency and contract
 * rules as a protobuf-JSON publish, the CloudEvent `id` being the idempotency key.
 */
function publishCloudEvent(
  ctx: GatewayContext,
  req: FastifyRequest,
  reply: FastifyReply,
  id: Identity,
  pathSpec: EventSpec | undefined,
) {
  // With a path subject the decision comes first, as for every publish; without one, the
  // event's type says which subject to decide on.
  if (pathSpec) authorise(ctx, req, id, "publish", pathSpec.subject);
  const ce: CloudEventRequest = readCloudEvent(req);
  const spec = ctx.catalog.findByType(ce.type);
  if (!spec) {
    throw badAttribute(
      "type",
      `"${ce.type}" is not an event type of the contracts. Known types: ${ctx.catalog.events.map((e) => e.type).join(", ")}.`,
    );
  }
  if (pathSpec && spec !== pathSpec) {
    throw badAttribute(
      "type",
      `${ce.type} is published on ${spec.subject}, not on ${pathSpec.subject} (the path). Post it to /v1/events/${spec.subject} or /v1/events.`,
    );
  }
  if (!pathSpec) authorise(ctx, req, id, "publish", spec.subject);
  const key = agreeing(req, "idempotency-key", "id", ce.id);
  const correlationId = agreeing(req, "x-correlation-id", "correlationid", ce.correlationId);
  const causationId = agreeing(req, "x-causation-id", "causationid", ce.causationId);
  const message =
    ce.data.kind === "binary" ? decodeBinary(ctx, spec, ce.data.bytes) : decodeJson(ctx, spec, ce.data.value);
  if (ce.partitionKey !== undefined) {
    const own = partitionKeyOf(spec, message);
    if (ce.partitionKey !== own) {
      throw badAttribute(
        "partitionkey",
        own === undefined
          ? `${spec.type} has no partition key; leave partitionkey out.`
          : `is "${ce.partitionKey}" but the event's ${spec.partitionKey} is "${own}": the partition key is the contract's. Leave partitionkey out or send that value.`,
      );
    }
  }
  return publish(ctx, req, reply, id.principal, {
    spec,
    message,
    msgId: scopedMsgId(id.principal, key),
    correlationId,
    causationId,
    time: ce.time,
    parent: remoteParent(ce.traceparent, ce.tracestate),
  });
}

/**
 * `POST /v1/events/:subject`: validate by contract, authorise, publish with the producer SDK.
 * The body is protobuf JSON or binary, or a CloudEvent in the HTTP binding (binary or
 * structured mode). `POST /v1/events` takes CloudEvents only: their type gives the subject.
 */
export function publishRoute(app: FastifyInstance, ctx: GatewayContext): void {
  app.post<{ Params: { subject: string } }>("/v1/events/:subject", async (req, reply) => {
    const id = await admit(ctx, req, reply);
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
    if (isCloudEventRequest(req)) return publishCloudEvent(ctx, req, reply, id, spec);
    authorise(ctx, req, id, "publish", subject);
    const type = String(req.headers["content-type"] ?? "");
    return publish(ctx, req, reply, id.principal, {
      spec,
      msgId: scopedMsgId(id.principal, tokenHeader(req, "idempotency-key")),
      correlationId: tokenHeader(req, "x-correlation-id"),
      causationId: tokenHeader(req, "x-causation-id"),
      message: decodeBody(ctx, spec, req.body, /protobuf/.test(type)),
    });
  });
  app.post("/v1/events", async (req, reply) => {
    const id = await admit(ctx, req, reply);
    if (!isCloudEventRequest(req)) {
      throw badAttribute(
        "specversion",
        "POST /v1/events takes a CloudEvent (binary mode: ce-specversion and the other ce- headers; structured mode: content-type application/cloudevents+json). Post protobuf JSON to /v1/events/{subject}.",
      );
    }
    return publishCloudEvent(ctx, req, reply, id, undefined);
  });
}
