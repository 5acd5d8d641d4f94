import assert from "node:assert/strict";
import type { JetStreamManager } from "@nats-io/jetstream";
import { waitFor } from "../src/index.js";

/**
 * Creates stream T (`t.>`, three replicas) on a freshly started cluster. Right after start a
 * peer may not be placeable yet ("no suitable peers"): retry until it is, for up to 20 s.
 */
export async function createReplicatedStream(jsm: JetStreamManager): Promise<void> {
  const created = await waitFor(
    () =>
      jsm.streams.add({ name: "T", subjects: ["t.>"], num_replicas: 3 }).then(
        () => true,
        () => false,
      ),
    20_000,
    250,
  );
  assert.ok(created, "stream T could not be created");
}
