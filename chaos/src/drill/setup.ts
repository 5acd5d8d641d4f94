import { getCatalog } from "@jetkit/contracts";
import type { JetStreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";

/** The consumer SDK's idempotency store (R3, created here so that it is replicated). */
export const IDEMPOTENCY_BUCKET = "jetkit_chaos_idempotency";
/** The stream behind the idempotency bucket (a store outage takes its leader away). */
export const IDEMPOTENCY_STREAM = `KV_${IDEMPOTENCY_BUCKET}`;
/** KV bucket of the workload's partitioned consumer group (the `partitioned` consumer mode). */
export const GROUP_BUCKET = "jetkit_chaos_group";
/** Partitions of the workload's partitioned consumer group. */
export const GROUP_PARTITIONS = 16;

/** Retries a cluster API call: right after start (or on a busy machine) the meta leader may still be settling. */
async function retry<T>(what: string, fn: () => Promise<T>, attempts = 8): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (
        i >= attempts ||
        !/timeout|no responders|not enabled|leader|unavailable|peer|placement/i.test((err as Error).message)
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
 * are left as they are) and the idempotency bucket. The durable consumer is created by
 * the consumer SDK when the workload consumer starts.
 */
export async function provision(jsm: JetStreamManager, opts: { replicas: number }): Promise<void> {
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
  await retry(`creating KV bucket ${IDEMPOTENCY_BUCKET}`, () =>
    new Kvm(jsm.jetstream()).create(IDEMPOTENCY_BUCKET, {
      replicas: opts.replicas,
      history: 1,
      ttl: 3_600_000,
    }),
  );
  await retry(`creating KV bucket ${GROUP_BUCKET}`, () =>
    new Kvm(jsm.jetstream()).create(GROUP_BUCKET, { replicas: opts.replicas, history: 1 }),
  );
}
