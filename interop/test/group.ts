// What the cross-language group tests share: the group's shape, the handlers' effect log, the
// group's records as any client reads them, publishing rounds, and the once-in-order check.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import type { Producer } from "@jetkit/producers";
import type { Env } from "./env.js";
import { orderFlow } from "./events.js";

export const SUBJECT = "order.fulfillment.completed";
export const PARTITIONS = 8;
export const LEASE_MS = 2000;

/** One line of the shared effect file: which member ran which event. */
export interface Effect {
  by: string;
  id: string;
  key: string;
  seq: number;
}

export function effects(file: string): Effect[] {
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Effect);
}

/** The value of a key of the group bucket (read from its stream, as any client could). */
export async function record<T>(env: Env, key: string): Promise<T | undefined> {
  try {
    const m = await env.jsm.streams.getMessage("KV_jetkit-groups", {
      last_by_subj: `$KV.jetkit-groups.${key}`,
    });
    return m && m.data.length > 0 ? m.json<T>() : undefined;
  } catch {
    return undefined; // no such key (yet)
  }
}

/** Owner instance of each partition, from the group's records. */
export async function owners(env: Env, durable: string): Promise<string[]> {
  const out: string[] = [];
  for (let p = 0; p < PARTITIONS; p++) {
    out.push((await record<{ owner: string }>(env, `${durable}.ORDER.p.${p}`))?.owner ?? "");
  }
  return out;
}

const base = orderFlow().find((e) => e.type === OrderFulfillmentCompleted)!
  .event as OrderFulfillmentCompleted;

/** Publishes `perKey` rounds over `keys`, recording each event's stream sequence per key. */
export async function publishRounds(
  producer: Producer,
  keys: string[],
  perKey: number,
  published: Map<string, number[]>,
  onEach?: (n: number) => void,
): Promise<void> {
  let n = 0;
  for (let i = 0; i < perKey; i++) {
    for (const key of keys) {
      const ack = await producer.publish(OrderFulfillmentCompleted, { ...base, orderId: key });
      published.set(key, [...(published.get(key) ?? []), ack.seq]);
      onEach?.(++n);
    }
  }
}

/**
 * Every published event handled exactly once and each key's events in stream order (the file's
 * order is the order the handlers ran in).
 */
export function assertOnceInOrder(log: Effect[], published: Map<string, number[]>): void {
  const seen = new Map<number, Effect>();
  for (const e of log) {
    const prev = seen.get(e.seq);
    assert.ok(!prev, `seq ${e.seq} handled twice (by ${prev?.by} and ${e.by})`);
    seen.set(e.seq, e);
  }
  let total = 0;
  for (const [key, seqs] of published) {
    total += seqs.length;
    const ran = log.filter((e) => e.key === key).map((e) => e.seq);
    assert.deepEqual(ran, seqs, `key ${key}: handled in this order, published in that one`);
  }
  assert.equal(log.length, total);
}
