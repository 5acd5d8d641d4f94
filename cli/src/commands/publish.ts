import { fromJson, type JsonValue, toBinary } from "@bufbuild/protobuf";
import { JetkitError } from "@jetkit/contracts";
import { createProducer } from "@jetkit/producers";
import { pino } from "pino";
import { type CommandDef, ExitCode, type RunContext } from "../command.js";
import { CONTRACTS_OPTION, catalogFor } from "../contracts-source.js";
import { serversOf } from "../nats.js";

const publish: CommandDef = {
  path: ["publish"],
  summary:
    "Publish one event (or, with --atomic, an atomic batch), given as protobuf JSON, validated by its contract before anything is sent",
  description:
    "The subject names the event's contract; the JSON is decoded strictly (unknown fields and wrong types are refused with the field's name), then checked against the contract's rules and published with the producer SDK (CloudEvents headers, message id, retries).",
  args: [
    {
      name: "subject",
      description: "an event subject of the contracts, e.g. order.fulfillment.completed",
      required: true,
    },
  ],
  options: [
    CONTRACTS_OPTION,
    {
      name: "data",
      type: "string",
      short: "d",
      value: "JSON",
      description: "The event as protobuf JSON ('-' reads stdin)",
    },
    {
      name: "msg-id",
      type: "string",
      value: "ID",
      description: "Message id (ce-id, Nats-Msg-Id); a retry with the same id is stored once",
    },
    { name: "correlation-id", type: "string", value: "ID", description: "Correlation id of the flow" },
    {
      name: "ttl",
      type: "string",
      value: "DURATION",
      description:
        "Remove the event from the stream after this long, delivered or not (30s, 10m, 2h, 1d; the stream needs allow_msg_ttl)",
    },
    {
      name: "delay",
      type: "string",
      value: "DURATION",
      description:
        "Deliver the event this long from now instead of at once (a message schedule; the stream needs allow_msg_schedules)",
    },
    {
      name: "deliver-at",
      type: "string",
      value: "TIME",
      description: "Deliver the event at this ISO 8601 time (2026-12-24T18:00:00Z) instead of at once",
    },
    {
      name: "atomic",
      type: "boolean",
      description:
        "--data is a JSON array of events, published as one atomic batch: all stored or none (the stream needs allow_atomic); --msg-id ID names them ID-1, ID-2, ...",
    },
    {
      name: "source",
      type: "string",
      value: "NAME",
      description: "Producer name for ce-source (default jetkit-cli)",
    },
  ],
  examples: [
    {
      command: `jetkit publish inventory.stock.depleted --data '{"sku":"SKU-1","warehouseId":"wh-1","depletedAt":"2026-11-21T10:00:00Z"}'`,
      description: "prints stream, seq, duplicate, msgId",
    },
    {
      command: "jetkit publish order.fulfillment.completed --data - < event.json --msg-id order-42-done",
      description: "from a file, idempotently",
    },
    {
      command: "jetkit publish customer.checkout.initiated --data - < checkout.json --delay 30m",
      description: "delivered to consumers in 30 minutes (CUSTOMER allows message schedules)",
    },
    {
      command:
        "jetkit publish inventory.stock.reserved --atomic --data - < reservations.json --msg-id checkout-7",
      description: "a JSON array as one atomic batch",
    },
  ],
  async run(ctx) {
    const subject = ctx.args[0]!;
    const catalog = catalogFor(ctx);
    const spec = catalog.bySubject(subject);
    let text = ctx.opts.data;
    if (text === "-") text = await readStdin();
    if (typeof text !== "string" || text.trim() === "") {
      throw new JetkitError(
        "JK_CLI_USAGE",
        `give the event as JSON with --data '{...}' (fields of ${spec.type}; see 'jetkit events').`,
      );
    }
    let json: JsonValue;
    try {
      json = JSON.parse(text) as JsonValue;
    } catch (err) {
      throw new JetkitError("JK_CLI_USAGE", `--data is not valid JSON: ${(err as Error).message}`);
    }
    const atomic = ctx.opts.atomic === true;
    if (atomic && !Array.isArray(json)) {
      throw new JetkitError("JK_CLI_USAGE", `with --atomic, --data is a JSON array of ${spec.type} events.`);
    }
    const encode = (value: JsonValue, at: string): Uint8Array => {
      try {
        return toBinary(spec.schema, fromJson(spec.schema, value, { registry: catalog.registry }));
      } catch (err) {
        throw new JetkitError(
          "JK_CONTRACT_UNDECODABLE",
          `the JSON${at} is not a valid ${spec.type}: ${(err as Error).message}`,
          { cause: err },
        );
      }
    };
    const payloads = atomic
      ? (json as JsonValue[]).map((v, i) => encode(v, ` at [${i}]`))
      : [encode(json, "")];
    const payload = payloads[0]!;
    const timing = timingOf(ctx);
    const producer = await createProducer({
      servers: serversOf(ctx),
      name: typeof ctx.opts.source === "string" ? ctx.opts.source : "jetkit-cli",
      catalog,
      logger: pino({ level: "error" }, pino.destination(2)),
      retry: { deadlineMs: 10_000 },
    });
    try {
      if (atomic) {
        const msgId = typeof ctx.opts["msg-id"] === "string" ? ctx.opts["msg-id"] : undefined;
        const correlationId =
          typeof ctx.opts["correlation-id"] === "string" ? ctx.opts["correlation-id"] : undefined;
        const ack = await producer.publishAtomicEncoded(
          payloads.map((p, i) => ({
            subject,
            payload: p,
            ...(msgId ? { msgId: `${msgId}-${i + 1}` } : {}),
            ...(correlationId ? { correlationId } : {}),
          })),
        );
        ctx.stdout.write(
          ctx.json
            ? `${JSON.stringify(ack)}\n`
            : `${ack.duplicate ? ctx.color.yellow("duplicate") : ctx.color.green("stored")} ${ack.count} events atomically ${subject} -> ${ack.stream}#${ack.firstSeq}..${ack.lastSeq}\n`,
        );
        return ExitCode.OK;
      }
      const ack = await producer.publishEncoded({
        subject,
        payload,
        ...(typeof ctx.opts["msg-id"] === "string" ? { msgId: ctx.opts["msg-id"] } : {}),
        ...(typeof ctx.opts["correlation-id"] === "string"
          ? { correlationId: ctx.opts["correlation-id"] }
          : {}),
        ...timing,
      });
      ctx.stdout.write(
        ctx.json
          ? `${JSON.stringify(ack)}\n`
          : `${ack.duplicate ? ctx.color.yellow("duplicate") : ctx.color.green("stored")} ${ack.subject} -> ${ack.stream}#${ack.seq} msg-id ${ack.msgId}${timing.deliverAt ? ` (scheduled for ${timing.deliverAt.toISOString()})` : ""}${timing.ttlMs ? ` (expires after ${timing.ttlMs / 1000} s)` : ""}\n`,
      );
      return ExitCode.OK;
    } finally {
      await producer.close();
    }
  },
};

/** `30s`, `10m`, `2h`, `1d`, `500ms` in ms; JK_CLI_USAGE naming the flag when malformed. */
function durationMs(flag: string, value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(value.trim());
  if (!m) {
    throw new JetkitError(
      "JK_CLI_USAGE",
      `--${flag} "${value}" is not a duration: a number and a unit, e.g. 30s, 10m, 2h, 1d (or 500ms).`,
    );
  }
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
    m[2] as "ms" | "s" | "m" | "h" | "d"
  ];
  return Number(m[1]) * unit;
}

/** The TTL and delivery time the flags ask for (the producer SDK checks them against the stream). */
function timingOf(ctx: RunContext): { ttlMs?: number; deliverAt?: Date } {
  const o = ctx.opts;
  const out: { ttlMs?: number; deliverAt?: Date } = {};
  if (typeof o.ttl === "string") out.ttlMs = durationMs("ttl", o.ttl);
  if (typeof o.delay === "string" && typeof o["deliver-at"] === "string")
    throw new JetkitError("JK_CLI_USAGE", "--delay and --deliver-at both say when to deliver: pass one.");
  if (typeof o.delay === "string") out.deliverAt = new Date(Date.now() + durationMs("delay", o.delay));
  if (typeof o["deliver-at"] === "string") {
    const at = new Date(o["deliver-at"]);
    if (Number.isNaN(at.getTime()) || !/^\d{4}-\d\d-\d\dT/.test(o["deliver-at"]))
      throw new JetkitError(
        "JK_CLI_USAGE",
        `--deliver-at "${o["deliver-at"]}" is not an ISO 8601 time, e.g. 2026-12-24T18:00:00Z.`,
      );
    out.deliverAt = at;
  }
  if (o.atomic === true && (out.ttlMs !== undefined || out.deliverAt !== undefined))
    throw new JetkitError(
      "JK_CLI_USAGE",
      "--ttl, --delay and --deliver-at apply to one event, not to --atomic batches.",
    );
  return out;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export const publishCommands = [publish];
