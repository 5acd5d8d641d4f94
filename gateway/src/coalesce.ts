import type { EncodedEvent, Producer, PublishAck } from "@jetkit/producers";

/**
 * Holds publishes until the end of the event loop's current I/O phase (`setImmediate`) and then
 * hands them to the producer together, so the NATS client writes the events and audit records of
 * every request read in that phase with one socket write instead of one per publish. Adds no
 * timer: the publishes leave as soon as the requests read with them have run.
 */
export function coalescingPublisher(
  producer: Pick<Producer, "publishEncoded">,
): Pick<Producer, "publishEncoded"> {
  let queue: (() => void)[] = [];
  const flush = () => {
    const q = queue;
    queue = [];
    for (const start of q) start();
  };
  return {
    publishEncoded(input: EncodedEvent): Promise<PublishAck> {
      return new Promise<PublishAck>((resolve, reject) => {
        if (queue.length === 0) setImmediate(flush);
        queue.push(() => {
          producer.publishEncoded(input).then(resolve, reject);
        });
      });
    },
  };
}
