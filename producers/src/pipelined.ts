import { JetkitError } from "@jetkit/contracts";
import { ProducerErrorCodes } from "./errors.js";
import type { PublishAck, PublishOptions } from "./producer.js";

/**
 * publishEach one publish per event, pipelined: at most `window` unacknowledged, acks yielded in
 * order (one per chunk); `start` is the index of the first event `next` gives. If an event
 * fails, the ones in flight are awaited and it throws JK_PRODUCER_BATCH_FAILED with its index.
 */
export async function* pipelinedEach<T>(
  publish: (event: T, opts: PublishOptions) => Promise<PublishAck>,
  next: () => IteratorResult<T> | Promise<IteratorResult<T>>,
  window: number,
  options: ((event: T, index: number) => PublishOptions) | undefined,
  start: number,
): AsyncGenerator<PublishAck[], void, undefined> {
  type Settled = { ok: true; ack: PublishAck } | { ok: false; err: unknown };
  const queue: Promise<Settled>[] = [];
  let index = start;
  let acked = start;
  let exhausted = false;
  for (;;) {
    while (!exhausted && queue.length < window) {
      const r = await next();
      if (r.done) {
        exhausted = true;
        break;
      }
      const o = options?.(r.value, index) ?? {};
      queue.push(
        publish(r.value, o).then(
          (ack): Settled => ({ ok: true, ack }),
          (err: unknown): Settled => ({ ok: false, err }),
        ),
      );
      index++;
    }
    const head = queue.shift();
    if (!head) return;
    const settled = await head;
    if (!settled.ok) {
      await Promise.all(queue);
      const cause = settled.err;
      const code = cause instanceof JetkitError ? cause.code : "unknown";
      throw new JetkitError(
        ProducerErrorCodes.BATCH_FAILED,
        `event ${acked} of the batch failed (${code}): ${(cause as Error).message ?? String(cause)} Events before it were acknowledged; events after it that were already in flight may be stored too: rerun with the same msgIds to publish the rest without duplicates.`,
        { cause, details: { index: acked, acked, code } },
      );
    }
    acked++;
    yield [settled.ack];
  }
}
