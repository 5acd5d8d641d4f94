import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createConsumer, type HandlerContext } from "@jetkit/consumers";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { type Env, eventually, headerList, silent, startEnv } from "./env.js";
import { type Binaries, buildExamples, fromHex, runExample } from "./polyglot.js";

describe("Go and Rust producers -> TypeScript consumer SDK", () => {
  let env: Env;
  let bins: Binaries;
  let goLines: Record<string, unknown>[];
  let rustLines: Record<string, unknown>[];
  const handled = new Map<string, { event: OrderFulfillmentCompleted; ctx: HandlerContext }>();

  before(async () => {
    bins = await buildExamples();
    env = await startEnv();
    const consumer = await createConsumer({
      servers: env.server.url,
      durable: "ts-interop",
      events: [OrderFulfillmentCompleted],
      concurrency: 4,
      logger: silent,
    });
    consumer.on(OrderFulfillmentCompleted, (event, ctx) => {
      handled.set(ctx.eventId, { event, ctx });
    });
    await consumer.start();
    try {
      [goLines, rustLines] = await Promise.all([
        runExample(bins.goProducer, ["-server", env.server.url, "-count", "3", "-malformed"]),
        runExample(bins.rustProducer, ["--server", env.server.url, "--count", "3"]),
      ]);
      await eventually("6 events handled", () => (handled.size >= 6 ? true : undefined));
      await eventually("a dead letter", async () =>
        (await env.jsm.streams.info("DLQ")).state.messages > 0 ? true : undefined,
      );
    } finally {
      await consumer.stop({ timeoutMs: 5_000 });
    }
  });
  after(async () => {
    await env?.dispose();
  });

  for (const lang of ["go", "rust"] as const) {
    it(`events from the ${lang} producer are decoded, validated and handled with their ids and trace`, () => {
      const lines = (lang === "go" ? goLines : rustLines).filter((l) => l.payload_hex !== undefined);
      assert.equal(lines.length, 3);
      for (const line of lines) {
        assert.equal(line.subject, "order.fulfillment.completed");
        assert.equal(line.stream, "ORDER");
        assert.equal(line.duplicate, false);
        assert.equal(line.msg_id, line.id);
        const got = handled.get(line.id as string);
        assert.ok(got, `the TypeScript consumer never handled ${lang} event ${String(line.id)}`);
        assert.deepEqual(got.event, OrderFulfillmentCompleted.decode(fromHex(line.payload_hex)));
        assert.equal(got.ctx.msgId, line.id);
        assert.equal(got.ctx.correlationId, line.id, "correlation id defaults to the first event's id");
        assert.equal(got.ctx.partitionKey, got.event.orderId, "ce-partitionkey is the contract's order_id");
        assert.equal(got.ctx.headers.source, `/jetkit/${lang}-fulfillment`);
        assert.match(got.ctx.headers.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        assert.match(got.ctx.headers.traceparent ?? "", /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
        assert.equal(got.ctx.delivery, 1);
      }
      // One trace per producer run: every event of the run continues the same trace.
      const traces = new Set(
        lines.map((l) => handled.get(l.id as string)?.ctx.headers.traceparent?.split("-")[1]),
      );
      assert.equal(traces.size, 1);
    });
  }

  it("a malformed message from Go lands in the DLQ with the reason", async () => {
    const bad = goLines.find((l) => l.payload_hex === undefined);
    assert.ok(bad, "the Go producer reported no malformed message");
    assert.equal(handled.has(bad.id as string), false, "a malformed message reached the handler");
    const dead = await env.jsm.streams.getMessage("DLQ", { last_by_subj: "dlq.order.fulfillment.completed" });
    assert.ok(dead);
    const h = new Map(headerList(dead.header));
    assert.equal(h.get("ce-id"), bad.id);
    assert.equal(h.get("ce-source"), "/jetkit/go-fulfillment");
    assert.equal(h.get("Jetkit-Dlq-Stream"), "ORDER");
    assert.equal(h.get("Jetkit-Dlq-Sequence"), String(bad.seq));
    assert.equal(h.get("Jetkit-Dlq-Subject"), "order.fulfillment.completed");
    assert.equal(h.get("Jetkit-Dlq-Consumer"), "ts-interop");
    assert.equal(h.get("Jetkit-Dlq-Failure-Class"), "undecodable");
    assert.ok((h.get("Jetkit-Dlq-Reason") ?? "").length > 0, "the dead letter says why");
    assert.equal(h.get("Nats-Msg-Id"), `dlq:ORDER:${String(bad.seq)}:ts-interop`);
    assert.deepEqual([...dead.data], [0xff, 0xff, 0xff], "the payload is kept unchanged");
  });
});
