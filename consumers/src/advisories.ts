import type { JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import type { Logger } from "pino";
import type { DeadLetter } from "./dead-letter.js";

/** Body of a `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES` advisory (the fields used here). */
interface MaxDeliveriesAdvisory {
  stream: string;
  consumer: string;
  stream_seq: number;
  deliveries: number;
}

/**
 * Watches the MAX_DELIVERIES advisories of `durable` on `stream`: the server sends one when a
 * message ran out of deliveries without an ack or term, which is what a crashed or stuck process
 * leaves behind. The message is fetched by stream sequence and handed to `deadLetter`; its dedup
 * id makes that safe when the SDK had dead-lettered it already. A queue group lets one process of
 * the durable handle each advisory.
 */
export function watchMaxDeliveries(
  nc: NatsConnection,
  jsm: JetStreamManager,
  stream: string,
  durable: string,
  deadLetter: (dl: Omit<DeadLetter, "consumer">) => Promise<void>,
  log: Logger,
): Subscription {
  return nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.${durable}`, {
    queue: `jetkit-dlq-${durable}`,
    callback: (err, msg) => {
      if (err) {
        log.warn({ err, stream }, "max deliveries advisory subscription failed");
        return;
      }
      void (async () => {
        const a = msg.json<MaxDeliveriesAdvisory>();
        const stored = await jsm.streams.getMessage(a.stream, { seq: a.stream_seq });
        if (!stored) {
          log.warn({ stream: a.stream, seq: a.stream_seq }, "message of a max deliveries advisory is gone");
          return;
        }
        const now = new Date();
        await deadLetter({
          stream: a.stream,
          seq: a.stream_seq,
          subject: stored.subject,
          deliveries: a.deliveries,
          failureClass: "max_deliveries",
          reason: `no ack or term after ${a.deliveries} deliveries (the consumer crashed, timed out or could not dead-letter it)`,
          firstFailure: now,
          lastFailure: now,
          headers: stored.header,
          data: stored.data,
        });
      })().catch((e: unknown) =>
        log.error({ err: e, stream }, "could not dead-letter a max deliveries message"),
      );
    },
  });
}
