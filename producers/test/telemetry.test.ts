import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { getCatalog } from "@jetkit/contracts";
import { InventoryStockReserved } from "@jetkit/contracts/gen/shop/inventory/v1/events";
import { applyStreams } from "@jetkit/contracts/streams";
import type { NatsServer } from "@jetkit/testing";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { context, metrics, propagation, SpanKind, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  CompositePropagator,
  TraceState,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
} from "@opentelemetry/core";
import { B3Propagator } from "@opentelemetry/propagator-b3";
import { DataPointType, MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { createProducer, type Producer } from "../src/index.js";
import {
  fulfillmentCompleted,
  OrderFulfillmentCompleted,
  reservation,
  serverWithStreams,
  silent,
  storedMessages,
} from "./support.js";

/** A reader the test collects from on demand. */
class TestReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

describe("telemetry", () => {
  let server: NatsServer;
  let admin: NatsConnection;
  let producer: Producer;
  const spans = new InMemorySpanExporter();
  const reader = new TestReader();

  before(async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }),
    );
    metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
    ({ server, admin } = await serverWithStreams());
    producer = await createProducer({ servers: server.url, name: "traced", logger: silent });
  });
  after(async () => {
    await producer?.close();
    await admin?.close();
    await server?.dispose();
    trace.disable();
    metrics.disable();
    propagation.disable();
    context.disable();
  });

  it("stores the publish span's context in traceparent/tracestate, as a child of the caller's span", async () => {
    const tracer = trace.getTracer("test");
    const parent = tracer.startSpan("handle checkout");
    // A vendor entry on the caller's trace state must travel too.
    const withState = trace.setSpanContext(context.active(), {
      ...parent.spanContext(),
      traceState: new TraceState("shop=blue"),
    });
    const ack = await context.with(withState, () =>
      producer.publish(OrderFulfillmentCompleted, fulfillmentCompleted(), { correlationId: "corr-7" }),
    );
    parent.end();

    const send = spans.getFinishedSpans().find((s) => s.name === "send order.fulfillment.completed");
    assert.ok(send, "a send span was recorded");
    assert.equal(send.kind, SpanKind.PRODUCER);
    assert.equal(send.parentSpanContext?.spanId, parent.spanContext().spanId);
    assert.equal(send.attributes["messaging.system"], "nats");
    assert.equal(send.attributes["messaging.destination.name"], "order.fulfillment.completed");
    assert.equal(send.attributes["messaging.operation.type"], "send");
    assert.equal(send.attributes["messaging.message.id"], ack.msgId);
    assert.equal(send.attributes["messaging.message.conversation_id"], "corr-7");
    assert.ok((send.attributes["messaging.message.body.size"] as number) > 0);
    assert.equal(send.attributes["jetkit.stream.sequence"], ack.seq);
    assert.equal(send.attributes["jetkit.stream.name"], "ORDER");

    const stored = (await storedMessages(admin, "ORDER")).find((m) => m.seq === ack.seq)!;
    const { traceId, spanId } = send.spanContext();
    assert.equal(stored.header.get("traceparent"), `00-${traceId}-${spanId}-01`);
    assert.equal(stored.header.get("tracestate"), "shop=blue");
  });

  it("records a failed publish on its span and in the failure counter; exports latency, in-flight and breaker state", async () => {
    const bad = fulfillmentCompleted();
    bad.shipments = [];
    await assert.rejects(producer.publish(OrderFulfillmentCompleted, bad));
    // validation fails before a span starts: nothing is sent, nothing to trace
    assert.equal(spans.getFinishedSpans().filter((s) => s.name.startsWith("send")).length, 1);

    await producer
      .publish(OrderFulfillmentCompleted, fulfillmentCompleted(), { expect: { lastSequence: 999 } })
      .catch(() => {});
    const failed = spans
      .getFinishedSpans()
      .filter((s) => s.name.startsWith("send"))
      .at(-1)!;
    assert.equal(failed.status.code, 2 /* ERROR */);
    assert.equal(failed.attributes["error.type"], "JK_PRODUCER_EXPECTATION_FAILED");

    const { resourceMetrics } = await reader.collect();
    const all = resourceMetrics.scopeMetrics
      .filter((s) => s.scope.name === "@jetkit/producers")
      .flatMap((s) => s.metrics);
    const byName = (n: string) => all.find((m) => m.descriptor.name === n);
    const duration = byName("messaging.client.operation.duration");
    assert.equal(duration?.dataPointType, DataPointType.HISTOGRAM);
    const ok = duration!.dataPoints.find((p) => p.attributes["error.type"] === undefined)!;
    assert.equal((ok.value as { count: number }).count, 1);
    const failures = byName("jetkit.producer.failures")!;
    assert.deepEqual(failures.dataPoints.map((p) => [p.attributes["error.type"], p.value]).sort(), [
      ["JK_CONTRACT_VIOLATION", 1],
      ["JK_PRODUCER_EXPECTATION_FAILED", 1],
    ]);
    assert.equal(byName("jetkit.producer.in_flight")?.dataPoints[0]?.value, 0);
    assert.equal(byName("jetkit.producer.breaker.state")?.dataPoints[0]?.value, 0);
    assert.equal(byName("messaging.client.sent.messages")?.dataPoints[0]?.value, 1);
  });
  it("writes the W3C traceparent of WIRE.md even when the app installed no global propagator", async () => {
    propagation.disable(); // back to the API's no-op propagator
    try {
      const ack = await producer.publish(OrderFulfillmentCompleted, fulfillmentCompleted());
      const send = spans.getFinishedSpans().find((s) => s.attributes["messaging.message.id"] === ack.msgId);
      assert.ok(send, "a send span was recorded");
      const stored = (await storedMessages(admin, "ORDER")).find((m) => m.seq === ack.seq)!;
      const { traceId, spanId } = send.spanContext();
      assert.equal(stored.header.get("traceparent"), `00-${traceId}-${spanId}-01`);
      assert.equal(stored.header.get("tracestate"), "", "no trace state without one on the caller");
      assert.deepEqual(
        stored.header.keys().filter((k) => !/^(ce-|nats-)/i.test(k)),
        ["traceparent"],
        "nothing but W3C from the API's no-op propagator",
      );
    } finally {
      propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    }
  });

  it("writes what the app's registered propagator injects (baggage, B3) beside the W3C headers", async () => {
    propagation.disable();
    propagation.setGlobalPropagator(
      new CompositePropagator({
        propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator(), new B3Propagator()],
      }),
    );
    try {
      const bag = propagation.createBaggage({ tenant: { value: "acme corp" }, plan: { value: "gold" } });
      const ack = await context.with(propagation.setBaggage(context.active(), bag), () =>
        producer.publish(OrderFulfillmentCompleted, fulfillmentCompleted()),
      );
      const send = spans.getFinishedSpans().find((s) => s.attributes["messaging.message.id"] === ack.msgId);
      assert.ok(send, "a send span was recorded");
      const { traceId, spanId } = send.spanContext();
      const stored = (await storedMessages(admin, "ORDER")).find((m) => m.seq === ack.seq)!;
      // W3CBaggagePropagator percent-encodes values; B3 single-header: trace-span-sampled
      assert.equal(stored.header.get("baggage"), "tenant=acme%20corp,plan=gold");
      assert.equal(stored.header.get("b3"), `${traceId}-${spanId}-1`);
      assert.deepEqual(stored.header.values("traceparent"), [`00-${traceId}-${spanId}-01`], "written once");
      assert.equal(stored.header.get("ce-traceparent"), `00-${traceId}-${spanId}-01`);

      // a caller's header of the same name replaces the propagator's
      const own = await context.with(propagation.setBaggage(context.active(), bag), () =>
        producer.publishEncoded({
          type: "shop.order.v1.OrderFulfillmentCompleted",
          payload: OrderFulfillmentCompleted.encode(fulfillmentCompleted()).finish(),
          headers: { Baggage: "x=1" },
        }),
      );
      const mine = (await storedMessages(admin, "ORDER")).find((m) => m.seq === own.seq)!;
      assert.deepEqual(mine.header.values("baggage", "insensitive"), ["x=1"]);
    } finally {
      propagation.disable();
      propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    }
  });

  it("traces a fast-ingest publishMany as one span, the parent of every event, and counts its events as sent", async () => {
    await applyStreams(await jetstreamManager(admin), getCatalog()); // INVENTORY with allow_batched
    const acks = await producer.publishMany(InventoryStockReserved, [
      reservation(),
      reservation(),
      reservation(),
    ]);
    assert.ok(acks.every((a) => a.batch !== undefined));
    const span = spans
      .getFinishedSpans()
      .find((s) => s.attributes["messaging.batch.message_count"] !== undefined);
    assert.ok(span, "a batch span was recorded");
    assert.equal(span.name, "send inventory.stock.reserved");
    assert.equal(span.attributes["messaging.batch.message_count"], 3);
    const { traceId, spanId } = span.spanContext();
    const stored = await storedMessages(admin, "INVENTORY");
    assert.deepEqual(
      stored.map((m) => m.header.get("traceparent")),
      acks.map(() => `00-${traceId}-${spanId}-01`),
    );
    const { resourceMetrics } = await reader.collect();
    const sent = resourceMetrics.scopeMetrics
      .flatMap((s) => s.metrics)
      .find((m) => m.descriptor.name === "messaging.client.sent.messages")!
      .dataPoints.find((p) => p.attributes["messaging.destination.name"] === "inventory.stock.reserved");
    assert.equal(sent?.value, 3);
  });
});
