// Live interop with a third-party CloudEvents client: the CloudEvents Go SDK (sdk-go v2.16.2,
// from the Go module proxy, pinned by interop/sdk-go/go.sum) and its NATS JetStream binding,
// both directions, binary and structured mode (contracts/WIRE.md §4).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { createConsumer, type HandlerContext } from "@jetkit/consumers";
import { percentDecode } from "@jetkit/contracts";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { createProducer } from "@jetkit/producers";
import { SpanKind, trace } from "@opentelemetry/api";
import { type Env, eventually, silent, startEnv } from "./env.js";
import { orderFlow } from "./events.js";
import { ROOT, runExample } from "./polyglot.js";
import { installTracing } from "./tracing.js";

const spans = installTracing();
const run = promisify(execFile);
const SUBJECT = "order.fulfillment.completed";

async function buildSdkGo(): Promise<string> {
  const out = join(process.env.JETKIT_TOOLS ?? join(homedir(), ".cache/jetkit/tools"), "interop-bin");
  await mkdir(out, { recursive: true });
  await run("go", ["build", "-mod=readonly", "-o", join(out, "sdkgo"), "."], {
    cwd: join(ROOT, "interop/sdk-go"),
    timeout: 600_000,
  });
  return join(out, "sdkgo");
}

function completedEvent(): OrderFulfillmentCompleted {
  return orderFlow().find((e) => e.type === OrderFulfillmentCompleted)!.event as OrderFulfillmentCompleted;
}

describe("CloudEvents sdk-go v2 <-> jetkit over NATS JetStream", () => {
  let env: Env;
  let sdkgo: string;
  before(async () => {
    sdkgo = await buildSdkGo();
    env = await startEnv();
  });
  after(async () => {
    await env?.dispose();
  });

  it("sdk-go reads every attribute and extension of a jetkit event, the trace included", async () => {
    const event = completedEvent();
    const producer = await createProducer({
      servers: env.server.url,
      name: "interop-fulfillment",
      logger: silent,
    });
    const correlationId = 'flow Zoë 100% "x"';
    let ack: Awaited<ReturnType<typeof producer.publish>>;
    let publishSpan = { traceId: "", spanId: "" };
    try {
      ack = await trace.getTracer("interop").startActiveSpan("flow", async (flow) => {
        const a = await producer.publish(OrderFulfillmentCompleted, event, {
          correlationId,
          causationId: "019a8f2f-0000-7000-8000-000000000002",
        });
        flow.end();
        return a;
      });
      const send = spans.getFinishedSpans().find((s) => s.kind === SpanKind.PRODUCER)!;
      publishSpan = send.spanContext();
    } finally {
      await producer.close();
    }
    const [got] = await runExample(sdkgo, [
      "receive",
      ...["-url", env.server.url, "-stream", "ORDER", "-subject", SUBJECT, "-count", "1"],
    ]);
    assert.ok(got);
    assert.equal(got.id, ack.msgId);
    assert.equal(got.specversion, "1.0");
    assert.equal(got.type, OrderFulfillmentCompleted.$type);
    assert.equal(got.source, "/jetkit/interop-fulfillment");
    assert.equal(got.datacontenttype, "application/protobuf");
    assert.ok(Math.abs(Date.parse(got.time as string) - Date.now()) < 60_000, `time ${String(got.time)}`);
    assert.deepEqual(OrderFulfillmentCompleted.decode(Buffer.from(got.data_hex as string, "hex")), event);
    const ext = got.extensions as Record<string, string>;
    assert.equal(ext.partitionkey, event.orderId);
    assert.equal(ext.causationid, "019a8f2f-0000-7000-8000-000000000002");
    // sdk-go v2.16 does not implement binding §3.1.3.2 yet: it hands over the encoded value,
    // which one round of percent-decoding (what the binding asks of it) turns back into the text.
    assert.equal(ext.correlationid, "flow%20Zo%C3%AB%20100%25%20%22x%22");
    assert.equal(percentDecode(ext.correlationid!), correlationId);
    assert.equal(
      ext.traceparent,
      `00-${publishSpan.traceId}-${publishSpan.spanId}-01`,
      "the publish span, via ce-traceparent",
    );
    assert.deepEqual(Object.keys(ext).sort(), [
      "causationid",
      "correlationid",
      "partitionkey",
      "traceparent",
    ]);
  });

  it("sdk-go reads a jetkit event written in structured mode (contentMode: structured), the trace included", async () => {
    const event = completedEvent();
    const producer = await createProducer({
      servers: env.server.url,
      name: "interop-structured",
      logger: silent,
      contentMode: "structured",
    });
    let ack: Awaited<ReturnType<typeof producer.publish>>;
    try {
      ack = await trace
        .getTracer("interop")
        .startActiveSpan("flow", async (flow) =>
          producer
            .publish(OrderFulfillmentCompleted, event, { correlationId: 'flow Zoë 100% "x"' })
            .finally(() => flow.end()),
        );
    } finally {
      await producer.close();
    }
    const send = spans.getFinishedSpans().find((s) => s.attributes["messaging.message.id"] === ack.msgId)!;
    // sdk-go reads the stream from its start: every event stored so far, this one last
    const stored = (await env.jsm.streams.info("ORDER")).state.messages;
    const all = await runExample(sdkgo, [
      "receive",
      ...["-url", env.server.url, "-stream", "ORDER", "-subject", SUBJECT, "-count", String(stored)],
    ]);
    const got = all.find((e) => e.id === ack.msgId);
    assert.ok(got, `sdk-go received the structured event among ${all.length}`);
    assert.equal(got.type, OrderFulfillmentCompleted.$type);
    assert.equal(got.source, "/jetkit/interop-structured");
    assert.equal(got.datacontenttype, "application/protobuf");
    assert.deepEqual(OrderFulfillmentCompleted.decode(Buffer.from(got.data_hex as string, "hex")), event);
    const { traceId, spanId } = send.spanContext();
    assert.deepEqual(got.extensions, {
      partitionkey: event.orderId,
      // structured mode: JSON strings, no percent-encoding for sdk-go to leave undone
      correlationid: 'flow Zoë 100% "x"',
      traceparent: `00-${traceId}-${spanId}-01`,
    });
  });

  for (const mode of ["binary", "structured"] as const) {
    it(`jetkit reads sdk-go's ${mode}-mode events with every attribute and extension, and continues their trace`, async () => {
      const event = completedEvent();
      const handled: { event: OrderFulfillmentCompleted; ctx: HandlerContext }[] = [];
      const consumer = await createConsumer({
        servers: env.server.url,
        durable: `from-sdk-go-${mode}`,
        events: [OrderFulfillmentCompleted],
        logger: silent,
      });
      consumer.on(OrderFulfillmentCompleted, (e, ctx) => {
        if (ctx.eventId === `sdk-${mode}-1`) handled.push({ event: e, ctx });
      });
      await consumer.start();
      const traceId =
        mode === "binary" ? "0af7651916cd43dd8448eb211c80319c" : "4bf92f3577b34da6a3ce929d0e0e4736";
      const parentSpan = "b9c7c989f97918e1";
      try {
        await runExample(sdkgo, [
          "send",
          ...["-url", env.server.url, "-stream", "ORDER", "-subject", SUBJECT, "-mode", mode],
          ...["-type", OrderFulfillmentCompleted.$type, "-id", `sdk-${mode}-1`],
          ...["-data", Buffer.from(OrderFulfillmentCompleted.encode(event).finish()).toString("hex")],
          ...[
            "-ext",
            `partitionkey=${event.orderId}`,
            "-ext",
            "correlationid=flow-1",
            "-ext",
            "causationid=ev-0",
          ],
          ...["-ext", `traceparent=00-${traceId}-${parentSpan}-01`],
        ]);
        await eventually(`the ${mode} event handled`, () => (handled.length > 0 ? true : undefined));
      } finally {
        await consumer.stop({ timeoutMs: 5_000 });
      }
      const [{ event: got, ctx }] = handled as [(typeof handled)[0]];
      assert.deepEqual(got, event);
      assert.equal(ctx.headers.source, "/sdk-go/interop");
      assert.equal(ctx.headers.time, "2026-11-22T14:05:30.5Z");
      assert.equal(ctx.partitionKey, event.orderId);
      assert.equal(ctx.correlationId, "flow-1");
      assert.equal(ctx.causationId, "ev-0");
      assert.equal(ctx.msgId, `sdk-${mode}-1`, "no Nats-Msg-Id from sdk-go: the event id");
      const process = spans
        .getFinishedSpans()
        .find((s) => s.kind === SpanKind.CONSUMER && s.spanContext().traceId === traceId);
      assert.ok(process, "the process span continues the trace of sdk-go's traceparent extension");
      const parent = (process as unknown as { parentSpanContext?: { spanId: string } }).parentSpanContext;
      assert.equal(parent?.spanId, parentSpan);
    });
  }
});
