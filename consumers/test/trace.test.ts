import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { CustomerCheckoutInitiated } from "@jetkit/contracts/gen/shop/customer/v1/events";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { createProducer, type PublishAck } from "@jetkit/producers";
import { context, propagation, SpanKind, type TextMapPropagator, trace } from "@opentelemetry/api";
import { AsyncHooksContextManager } from "@opentelemetry/context-async-hooks";
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from "@opentelemetry/core";
import { B3Propagator } from "@opentelemetry/propagator-b3";
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { type Consumer, createConsumer } from "../src/index.js";
import { checkout, completed, type Env, publishRaw, silent, startEnv, until } from "./support.js";

/** Registers `p` as the app's global propagator (undefined: none, the API's no-op). */
function usePropagator(p: TextMapPropagator | undefined): void {
  propagation.disable();
  if (p) assert.ok(propagation.setGlobalPropagator(p));
}

/** The rows of the span attribute table between the markers of a README: name -> [fact, producer, consumer]. */
function attributeTable(readme: URL): Map<string, [string, string, string]> {
  const text = readFileSync(readme, "utf8");
  const start = text.indexOf("<!-- span-attributes -->");
  const end = text.indexOf("<!-- /span-attributes -->");
  assert.ok(start >= 0 && end > start, `${readme.pathname} has the span attribute table`);
  const rows = new Map<string, [string, string, string]>();
  for (const line of text.slice(start, end).split("\n")) {
    const cells = line.split("|").map((c) => c.trim());
    const name = /^`([a-z_.]+)`$/.exec(cells[1] ?? "")?.[1];
    if (name) rows.set(name, [cells[2]!, cells[3]!, cells[4]!]);
  }
  return rows;
}

describe("consumer: traces and metrics", () => {
  let env: Env;
  const spans = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  before(async () => {
    env = await startEnv();
    context.setGlobalContextManager(new AsyncHooksContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    trace.setGlobalTracerProvider(provider);
  });
  after(async () => {
    trace.disable();
    propagation.disable();
    context.disable();
    await env.dispose();
  });

  it("continues the producer's trace in a CONSUMER process span and counts acks", async () => {
    const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({
      exporter: metricExporter,
      exportIntervalMillis: 60_000,
    });
    const meterProvider = new MeterProvider({ readers: [reader] });
    const producer = await createProducer({ servers: env.server.url, name: "trace-test", logger: silent });
    const consumer = await createConsumer({
      connection: env.nc,
      durable: "traced",
      events: [OrderFulfillmentCompleted],
      deliverPolicy: "new",
      logger: silent,
      meterProvider,
    });
    let handlerTraceId: string | undefined;
    consumer.on(OrderFulfillmentCompleted, () => {
      handlerTraceId = trace.getActiveSpan()?.spanContext().traceId;
    });
    await consumer.start();
    try {
      await producer.publish(OrderFulfillmentCompleted, completed());
      await until(() => handlerTraceId !== undefined, 5000, "handled");
      await until(
        () => spans.getFinishedSpans().some((s) => s.kind === SpanKind.CONSUMER),
        5000,
        "consumer span",
      );
      const finished = spans.getFinishedSpans();
      const send = finished.find((s) => s.kind === SpanKind.PRODUCER);
      const process = finished.find((s) => s.kind === SpanKind.CONSUMER);
      assert.ok(send && process, `spans: ${finished.map((s) => `${s.name}/${s.kind}`).join(", ")}`);
      assert.equal(process.name, "process order.fulfillment.completed");
      assert.equal(process.spanContext().traceId, send.spanContext().traceId, "one trace");
      assert.equal(
        process.parentSpanContext?.spanId,
        send.spanContext().spanId,
        "child of the producer span",
      );
      assert.equal(handlerTraceId, send.spanContext().traceId, "handler runs inside the span");
      assert.equal(process.attributes["messaging.system"], "nats");
      assert.equal(process.attributes["messaging.operation.type"], "process");
      assert.equal(process.attributes["messaging.consumer.group.name"], "traced");

      await reader.forceFlush();
      const names = metricExporter
        .getMetrics()
        .flatMap((rm) => rm.scopeMetrics.flatMap((sm) => sm.metrics.map((m) => m.descriptor.name)));
      assert.ok(names.includes("messaging.process.duration"), names.join(", "));
      assert.ok(names.includes("jetkit.consumer.acks"), names.join(", "));
    } finally {
      await consumer.stop({ timeoutMs: 500 });
      await producer.close();
      await meterProvider.shutdown();
    }
  });

  /** A consumer of OrderFulfillmentCompleted whose handler reports its active span and baggage. */
  async function tracedConsumer(durable: string, then?: () => Promise<unknown>) {
    const seen: { traceId: string | undefined; tenant: string | undefined }[] = [];
    const consumer: Consumer = await createConsumer({
      connection: env.nc,
      durable,
      events: [OrderFulfillmentCompleted],
      deliverPolicy: "new",
      logger: silent,
    });
    consumer.on(OrderFulfillmentCompleted, async () => {
      seen.push({
        traceId: trace.getActiveSpan()?.spanContext().traceId,
        tenant: propagation.getActiveBaggage()?.getEntry("tenant")?.value,
      });
      await then?.();
    });
    await consumer.start();
    return { consumer, seen };
  }

  function processSpanOf(msgId: string): ReadableSpan | undefined {
    return spans
      .getFinishedSpans()
      .find((s) => s.kind === SpanKind.CONSUMER && s.attributes["messaging.message.id"] === msgId);
  }

  it("carries baggage and B3 through the app's registered propagator; the process span links to the send span", async () => {
    usePropagator(
      new CompositePropagator({
        propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator(), new B3Propagator()],
      }),
    );
    const producer = await createProducer({ servers: env.server.url, name: "baggage", logger: silent });
    // the handler publishes a follow-up event: the baggage it received travels on
    const followUps: PublishAck[] = [];
    const { consumer, seen } = await tracedConsumer("baggage", async () => {
      followUps.push(await producer.publish(CustomerCheckoutInitiated, checkout()));
    });
    try {
      const bag = propagation.createBaggage({ tenant: { value: "acme corp" } });
      const ack = await context.with(propagation.setBaggage(context.active(), bag), () =>
        producer.publish(OrderFulfillmentCompleted, completed()),
      );
      await until(() => processSpanOf(ack.msgId) !== undefined, 5000, "process span");
      const send = spans.getFinishedSpans().find((s) => s.attributes["messaging.message.id"] === ack.msgId)!;
      const process = processSpanOf(ack.msgId)!;
      assert.deepEqual(
        seen,
        [{ traceId: send.spanContext().traceId, tenant: "acme corp" }],
        "the handler sees the baggage",
      );
      assert.equal(process.parentSpanContext?.spanId, send.spanContext().spanId, "child of the send span");
      assert.deepEqual(
        process.links.map((l) => [l.context.traceId, l.context.spanId]),
        [[send.spanContext().traceId, send.spanContext().spanId]],
        "linked to the creation context",
      );
      await until(() => followUps.length > 0, 5000, "the follow-up event");
      const next = await env.jsm.streams.getMessage("CUSTOMER", { seq: followUps[0]!.seq });
      assert.equal(next?.header.get("baggage"), "tenant=acme%20corp", "the follow-up carries the baggage on");
      assert.equal(
        next?.header.get("traceparent").split("-")[1],
        send.spanContext().traceId,
        "in the same trace",
      );
    } finally {
      await consumer.stop({ timeoutMs: 500 });
      await producer.close();
      usePropagator(new W3CTraceContextPropagator());
    }
  });

  it("continues a B3-only producer's trace with a B3 propagator registered, and W3C without one", async () => {
    const { consumer } = await tracedConsumer("b3");
    try {
      // another tracer's event: a b3 header, no traceparent
      const traceId = "5af7183fb1d4cf5f5af7183fb1d4cf5f";
      const spanId = "6f3e2a4c6b1d8a90";
      usePropagator(new B3Propagator());
      const b3 = await publishRaw(env.js, OrderFulfillmentCompleted, completed(), {
        headers: { B3: `${traceId}-${spanId}-1` },
      });
      await until(() => processSpanOf(b3.id) !== undefined, 5000, "process span of the B3 event");
      const fromB3 = processSpanOf(b3.id)!;
      assert.equal(fromB3.spanContext().traceId, traceId, "the B3 trace continues");
      assert.equal(fromB3.parentSpanContext?.spanId, spanId);
      assert.equal(fromB3.links[0]?.context.spanId, spanId);

      // none registered: the W3C headers of WIRE.md still continue the trace
      usePropagator(undefined);
      const w3c = await publishRaw(env.js, OrderFulfillmentCompleted, completed(), {
        traceparent: `00-${traceId}-${spanId}-01`,
      });
      await until(() => processSpanOf(w3c.id) !== undefined, 5000, "process span of the W3C event");
      assert.equal(processSpanOf(w3c.id)!.spanContext().traceId, traceId);
      assert.equal(processSpanOf(w3c.id)!.parentSpanContext?.spanId, spanId);
    } finally {
      await consumer.stop({ timeoutMs: 500 });
      usePropagator(new W3CTraceContextPropagator());
    }
  });

  it("names each fact the same in the producer's send span and the consumer's process span, as both READMEs' table says", async () => {
    const table = attributeTable(new URL("../../README.md", import.meta.url));
    assert.deepEqual(
      [...attributeTable(new URL("../../../producers/README.md", import.meta.url))],
      [...table],
      "the producers and consumers READMEs have the same table",
    );
    const producer = await createProducer({
      servers: env.server.url,
      name: "names-producer",
      logger: silent,
    });
    const { consumer } = await tracedConsumer("names");
    try {
      const ack = await producer.publish(OrderFulfillmentCompleted, completed(), { correlationId: "corr-9" });
      await until(() => processSpanOf(ack.msgId) !== undefined, 5000, "process span");
      const send = spans.getFinishedSpans().find((s) => s.attributes["messaging.message.id"] === ack.msgId)!;
      const process = processSpanOf(ack.msgId)!;
      // the same value under two names would be one fact named twice
      for (const [name, value] of Object.entries(send.attributes)) {
        for (const [other, v] of Object.entries(process.attributes)) {
          if (v === value && other !== name && typeof value === "string") {
            assert.fail(`${value} is ${name} in the producer and ${other} in the consumer`);
          }
        }
      }
      for (const [name, [fact, onSend, onProcess]] of table) {
        if (onSend === "yes") assert.ok(name in send.attributes, `send span has ${name} (${fact})`);
        if (onProcess === "yes") assert.ok(name in process.attributes, `process span has ${name} (${fact})`);
        if (onSend === "yes" && onProcess === "yes" && !name.startsWith("messaging.operation.")) {
          assert.equal(process.attributes[name], send.attributes[name], `${name}: same value on both sides`);
        }
      }
      for (const name of [...Object.keys(send.attributes), ...Object.keys(process.attributes)]) {
        assert.ok(table.has(name), `${name} is in the README table`);
      }
      assert.equal(send.attributes["jetkit.stream.sequence"], ack.seq);
      assert.equal(process.attributes["messaging.message.conversation_id"], "corr-9");
    } finally {
      await consumer.stop({ timeoutMs: 500 });
      await producer.close();
    }
  });

  it("handles a producer's structured-mode event (contentMode: structured) with its ids, key and trace", async () => {
    const producer = await createProducer({
      servers: env.server.url,
      name: "structured",
      logger: silent,
      contentMode: "structured",
    });
    const got: { orderId: string; msgId: string; key: string | undefined; corr: string | undefined }[] = [];
    const consumer = await createConsumer({
      connection: env.nc,
      durable: "structured",
      events: [OrderFulfillmentCompleted],
      deliverPolicy: "new",
      logger: silent,
    });
    consumer.on(OrderFulfillmentCompleted, (e, ctx) => {
      got.push({ orderId: e.orderId, msgId: ctx.msgId, key: ctx.partitionKey, corr: ctx.correlationId });
    });
    await consumer.start();
    try {
      const event = completed();
      const ack = await producer.publish(OrderFulfillmentCompleted, event, {
        correlationId: "flow Zoë 100%",
      });
      await until(() => processSpanOf(ack.msgId) !== undefined, 5000, "process span");
      assert.deepEqual(got, [
        { orderId: event.orderId, msgId: ack.msgId, key: event.orderId, corr: "flow Zoë 100%" },
      ]);
      const send = spans.getFinishedSpans().find((s) => s.attributes["messaging.message.id"] === ack.msgId)!;
      assert.equal(processSpanOf(ack.msgId)!.parentSpanContext?.spanId, send.spanContext().spanId);
    } finally {
      await consumer.stop({ timeoutMs: 500 });
      await producer.close();
    }
  });
});
