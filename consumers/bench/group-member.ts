/**
 * One member process of the consume benchmark's `group2p` mode (started by `consume.ts` with
 * `fork`, never by hand): joins the partitioned consumer group named in its arguments, tells the
 * parent it is ready, starts on the parent's `start`, reports how many events its handler saw
 * (coalesced, at most once per turn of the event loop) and stops on the parent's `stop`.
 *
 *   argv: <server url> <durable> <idempotency: 1|0> <concurrency> <batch>
 */
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { connect } from "@nats-io/transport-node";
import { pino } from "pino";
import { createConsumer } from "../src/index.js";

const [url, durable, idempotency, concurrency, batch] = process.argv.slice(2);
if (!url || !durable || !process.send)
  throw new Error("group-member is started by consume.ts (group2p mode)");
const send = process.send.bind(process);

const nc = await connect({ servers: url, noAsyncTraces: true });
const consumer = await createConsumer({
  connection: nc,
  durable,
  events: [OrderFulfillmentCompleted],
  concurrency: Number(concurrency),
  batch: Number(batch),
  group: { partitions: 16, bucket: `bench-${durable}` },
  idempotency: idempotency === "1" ? { bucket: `bench-${durable}-idem` } : false,
  deadLetter: { advisories: false },
  logger: pino({ level: "silent" }),
});
let unreported = 0;
let scheduled = false;
consumer.on(OrderFulfillmentCompleted, () => {
  unreported++;
  if (scheduled) return;
  scheduled = true;
  setImmediate(() => {
    scheduled = false;
    send({ handled: unreported });
    unreported = 0;
  });
});

process.on("message", (m: { cmd: "start" | "stop" }) => {
  if (m.cmd === "start") {
    void consumer.start();
  } else {
    void (async () => {
      await consumer.stop({ timeoutMs: 2000 });
      await nc.drain();
      process.exit(0);
    })();
  }
});
send({ ready: true });
