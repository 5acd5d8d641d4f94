import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { createProducer } from "@jetkit/producers";
import { context, propagation, SpanKind, trace } from "@opentelemetry/api";
import { AsyncHooksContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { createConsumer } from "../src/index.js";
import { completed, type Env, silent, startEnv, until } from "./support.js";

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
});
