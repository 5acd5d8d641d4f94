import { JetkitError } from "@jetkit/contracts";
import { AckPolicy, type ConsumerConfig, DeliverPolicy, type JetStreamManager } from "@nats-io/jetstream";
import { nanos } from "@nats-io/nats-core";
import { ConsumerErrorCodes } from "./errors.js";
import type { ResolvedOptions } from "./options.js";

/** The durable pull consumer of one stream, as the options describe it. */
export function durableConfig(o: ResolvedOptions, filterSubjects: string[]): Partial<ConsumerConfig> {
  return {
    durable_name: o.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: o.deliverPolicy === "new" ? DeliverPolicy.New : DeliverPolicy.All,
    ack_wait: nanos(o.ackWaitMs),
    max_deliver: o.maxDeliver,
    max_ack_pending: o.maxAckPending,
    // One filter goes in the create request's subject ($JS.API.CONSUMER.CREATE.<stream>.<durable>
    // .<filter>), where NATS permissions can bound it, so a user allowed one subject can create its
    // durable; a list is only accepted in the body of DURABLE.CREATE, which no permission bounds.
    ...(filterSubjects.length === 1
      ? { filter_subject: filterSubjects[0] }
      : { filter_subjects: filterSubjects }),
    description: "jetkit consumer",
  };
}

/**
 * Creates the durable, or updates it when it exists with another configuration, so every process
 * of a service can call this on start. Throws `JK_CONSUMER_CONNECT`.
 */
export async function ensureDurable(
  jsm: JetStreamManager,
  stream: string,
  config: Partial<ConsumerConfig>,
): Promise<void> {
  const name = config.durable_name ?? "";
  try {
    await jsm.consumers.add(stream, config);
    return;
  } catch (addErr) {
    // Creating is idempotent only for an identical configuration: otherwise update it in place.
    const exists = await jsm.consumers.info(stream, name).then(
      () => true,
      () => false,
    );
    if (!exists) throw durableError(stream, name, addErr);
    try {
      const { durable_name: _n, deliver_policy: _d, ack_policy: _a, ...updatable } = config;
      await jsm.consumers.update(stream, name, updatable);
    } catch (err) {
      throw durableError(stream, name, err);
    }
  }
}

function durableError(stream: string, durable: string, err: unknown): JetkitError {
  return new JetkitError(
    ConsumerErrorCodes.CONNECT,
    `could not create or update durable consumer ${durable} on stream ${stream}: ${(err as Error).message}. ${/permissions violation/i.test((err as Error).message) ? `This NATS user may not create it: grant $JS.API.CONSUMER.CREATE.${stream}.${durable}.<its subject> (the gateway's policy does, for the durables it lists).` : "Check the stream exists (provision the streams from the contracts) and the server is reachable."}`,
    { cause: err, details: { stream, durable } },
  );
}
