import { getCatalog } from "@jetkit/contracts";
import { AckPolicy, DeliverPolicy, type JetStreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { WORKLOAD_STREAM, WORKLOAD_SUBJECT } from "../workload/events.js";

export const IDEMPOTENCY_BUCKET = "jetkit_chaos_idempotency";

/** Retries a cluster API call: right after start (or on a busy machine) the meta leader may still be settling. */
async function retry<T>(what: string, fn: () => Promise<T>, attempts = 4): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (
        i >= attempts ||
        !/timeout|no responders|not enabled|leader|unavailable/i.test((err as Error).message)
      ) {
        throw new Error(`${what}: ${(err as Error).message}`, { cause: err });
      }
      await new Promise((r) => setTimeout(r, 500 * i));
    }
  }
}

const RETENTION = { limits: "limits", interest: "interest", workqueue: "workqueue" } as const;

/**
 * Creates the domain streams from the contracts catalog with `replicas` copies (existing streams
 * are left as they are), the idempotency bucket and the drill's durable consumer.
 */
export async function provision(
  jsm: JetStreamManager,
  opts: { replicas: number; durable: string; ackWaitMs: number; maxDeliver: number; maxAckPending: number },
): Promise<void> {
  const catalog = getCatalog();
  for (const s of catalog.streams) {
    const exists = await jsm.streams.info(s.name).then(
      () => true,
      () => false,
    );
    if (exists) continue;
    await retry(`creating stream ${s.name}`, () =>
      jsm.streams.add({
        name: s.name,
        subjects: [...s.subjects],
        retention: RETENTION[s.retention] as never,
        storage: s.storage as never,
        num_replicas: opts.replicas,
        max_age: s.maxAgeMs * 1_000_000,
        duplicate_window: (s.duplicateWindowMs || 120_000) * 1_000_000,
        max_bytes: s.maxBytes || -1,
        max_msg_size: s.maxMsgSize || -1,
        discard: s.discard as never,
      }),
    );
  }
  await retry("creating the idempotency bucket", () =>
    new Kvm(jsm.jetstream()).create(IDEMPOTENCY_BUCKET, {
      replicas: opts.replicas,
      history: 1,
      ttl: 3_600_000,
    }),
  );
  await retry("creating the drill consumer", () =>
    jsm.consumers.add(WORKLOAD_STREAM, {
      durable_name: opts.durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.New,
      filter_subject: WORKLOAD_SUBJECT,
      ack_wait: opts.ackWaitMs * 1_000_000,
      max_deliver: opts.maxDeliver,
      max_ack_pending: opts.maxAckPending,
    }),
  );
}
