import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createProducer, type PublishAck } from "@jetkit/producers";
import { trace } from "@opentelemetry/api";
import { type Env, headerList, silent, startEnv } from "./env.js";
import { codecs, orderFlow } from "./events.js";
import { type Binaries, buildExamples, fromHex, type HeaderList, runExample } from "./polyglot.js";
import { installTracing } from "./tracing.js";

const spans = installTracing();

describe("TypeScript producer -> Go and Rust consumers", () => {
  let env: Env;
  let bins: Binaries;
  const sent = new Map<string, { type: string; event: unknown; ack: PublishAck }>();
  let traceId = "";

  before(async () => {
    bins = await buildExamples();
    env = await startEnv();
    const producer = await createProducer({
      servers: env.server.url,
      name: "interop-checkout",
      logger: silent,
    });
    try {
      await trace.getTracer("interop").startActiveSpan("checkout flow", async (flow) => {
        traceId = flow.spanContext().traceId;
        for (const { type, event } of orderFlow()) {
          const ack = await producer.publish(type, event);
          sent.set(ack.msgId, { type: type.$type, event, ack });
        }
        flow.end();
      });
    } finally {
      await producer.close();
    }
  });
  after(async () => {
    await env?.dispose();
  });

  for (const lang of ["go", "rust"] as const) {
    it(`${lang} consumer decodes every event equal to what was sent, with the WIRE.md headers and the trace continued`, async () => {
      const bin = lang === "go" ? bins.goConsumer : bins.rustConsumer;
      const lines = await runExample(bin, [
        ...["--server", env.server.url, "--stream", "ORDER", "--durable", `${lang}-audit`],
        ...["--count", String(sent.size), "--timeout", lang === "go" ? "30s" : "30"],
      ]);
      assert.equal(lines.length, sent.size);
      const producerSpans = spans.getFinishedSpans().filter((s) => s.name.startsWith("send "));
      for (const line of lines) {
        assert.equal(
          line.dead_letter,
          undefined,
          `${lang} dead-lettered a valid event: ${String(line.reason)}`,
        );
        const mine = sent.get(line.id as string);
        assert.ok(mine, `${lang} reported an event TypeScript did not send: ${String(line.id)}`);
        assert.equal(line.type, mine.type);
        assert.equal(line.subject, mine.ack.subject);
        assert.equal(line.stream, "ORDER");
        // Decoded in Go/Rust and re-encoded: the same event, field for field.
        assert.deepEqual(codecs[mine.type]!.decode(fromHex(line.payload_hex)), mine.event);

        // Every header as stored, in WIRE.md order, exactly.
        const stored = await env.jsm.streams.getMessage("ORDER", { seq: mine.ack.seq });
        assert.ok(stored);
        assert.deepEqual(line.headers as HeaderList, headerList(stored.header));
        const h = new Map(line.headers as HeaderList);
        assert.equal(h.get("ce-specversion"), "1.0");
        assert.equal(h.get("ce-type"), mine.type);
        assert.equal(h.get("Nats-Msg-Id"), h.get("ce-id"));
        assert.equal(line.correlation_id, h.get("ce-correlationid"));

        // Trace context: the consumer saw the producer's span and continued the same trace.
        const producerSpan = producerSpans.find(
          (s) => line.traceparent === `00-${traceId}-${s.spanContext().spanId}-01`,
        );
        assert.ok(producerSpan, `traceparent ${String(line.traceparent)} is not a TypeScript publish span`);
        assert.equal(line.trace_id, traceId);
        const [version, childTrace, childSpan, flags] = String(line.child_traceparent).split("-");
        assert.deepEqual([version, childTrace, flags], ["00", traceId, "01"]);
        assert.match(childSpan ?? "", /^[0-9a-f]{16}$/);
        assert.notEqual(childSpan, producerSpan.spanContext().spanId);
      }
      assert.deepEqual(new Set(lines.map((l) => l.id)), new Set(sent.keys()), `${lang} missed an event`);
    });
  }
});
