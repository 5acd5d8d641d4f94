import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { leftovers, probeNetns } from "../src/cluster/netns.js";
import { startFault, unsupportedReason } from "../src/drill/faults.js";
import type { FaultSpec } from "../src/drill/spec.js";
import { type ChaosTarget, createRng, openTarget, waitFor } from "../src/index.js";
import { createReplicatedStream } from "./support.js";

const support = await probeNetns();
const skipNs = support.namespaces ? false : `network namespaces unavailable: ${support.reason}`;

/** A TCP connect from inside `from`'s namespace to `host:port`: "open", "refused" or "timeout". */
async function reach(target: ChaosTarget, from: string, host: string, port: number): Promise<string> {
  const script = `const s=require("net").connect(${port},${JSON.stringify(host)});s.setTimeout(1500);s.on("connect",()=>{console.log("open");process.exit(0)});s.on("timeout",()=>{console.log("timeout");process.exit(0)});s.on("error",(e)=>{console.log(e.code==="ECONNREFUSED"?"refused":e.code);process.exit(0)})`;
  return (await target.netns?.exec(from, process.execPath, ["-e", script]))?.trim() ?? "";
}

const spec = (s: Partial<FaultSpec>): FaultSpec => ({
  name: "f",
  action: "partition",
  atMs: 0,
  forMs: 1000,
  ...s,
});

describe("network faults where the process cannot build namespaces", () => {
  it("a proxies target reports netem as skipped with the reason, never as passed", async () => {
    const target = await openTarget({ seed: "netns-skip", network: "proxies" });
    try {
      const reason = unsupportedReason(spec({ action: "netem", nodes: ["n1"], delayMs: 100 }), target);
      assert.match(reason ?? "", /netem needs the nodes in network namespaces/);
      assert.equal(target.network.mode, "proxies");
      // A partition still runs, at the proxy layer, and says so.
      assert.equal(unsupportedReason(spec({ nodes: ["n1"] }), target), undefined);
    } finally {
      await target.dispose();
    }
  });
});

describe("cluster in network namespaces (root on Linux)", { skip: skipNs }, () => {
  let target: ChaosTarget;
  let nc: NatsConnection;
  let runId = "";
  before(async () => {
    target = await openTarget({ seed: "netns-test", network: "auto" });
    runId = target.netns?.runId ?? "";
    nc = await connect({ servers: target.clientUrls, ignoreClusterUpdates: true, maxReconnectAttempts: -1 });
    const jsm = await jetstreamManager(nc);
    await createReplicatedStream(jsm);
  });
  after(async () => {
    await nc?.close();
    await target?.dispose();
    // Nothing of the run is left: no namespace, no veth, no bridge.
    assert.deepEqual(await leftovers(runId), []);
  });

  it("runs every node in its own namespace, reached only through the forwarders and proxies", async () => {
    assert.equal(target.network.mode, "namespaces");
    assert.equal(target.netns?.namespaces.length, 4);
    assert.equal((await leftovers(runId)).length, 4 + 3, "4 namespaces and 3 root-side client links");
    assert.deepEqual(await target.healthyNodes(), ["n1", "n2", "n3"]);
    // The new stream elects its leader first: retry until it answers.
    const stored = await waitFor(
      () =>
        jetstream(nc)
          .publish("t.x", "a", { timeout: 2000 })
          .then(
            (ack) => ack.stream === "T",
            () => false,
          ),
      20_000,
      250,
    );
    assert.ok(stored, "the cluster in namespaces does not store a message");
  });

  it("a partition drops the minority's cluster traffic, the majority commits, healing restores it", async () => {
    const net = target.netns;
    assert.ok(net);
    const n2 = net.node("n2").clusterAddr;
    const n3 = net.node("n3").clusterAddr;
    assert.equal(await reach(target, "n1", n2, 6222), "open");
    const started = await startFault(spec({ nodes: ["n1"], isolateClients: false }), {
      target,
      rng: createRng(1),
      signal: new AbortController().signal,
    } as unknown as Parameters<typeof startFault>[1]);
    assert.match(started.detail, /network partition between \{n1\} and \{n2, n3\} \(network namespaces/);
    try {
      assert.equal(await reach(target, "n1", n2, 6222), "timeout", "the minority still reaches the majority");
      assert.equal(await reach(target, "n2", n3, 6222), "open", "the majority lost its own link");
      const inMinority = await connect({ servers: target.node("n1").url, ignoreClusterUpdates: true });
      try {
        await assert.rejects(jetstream(inMinority).publish("t.x", "b", { timeout: 1500 }));
      } finally {
        await inMinority.close();
      }
      const inMajority = await connect({ servers: target.node("n2").url, ignoreClusterUpdates: true });
      try {
        const ok = await waitFor(
          () =>
            jetstream(inMajority)
              .publish("t.x", "c", { timeout: 1500 })
              .then(
                () => true,
                () => false,
              ),
          20_000,
          200,
        );
        assert.ok(ok, "the majority could not commit during the partition");
      } finally {
        await inMajority.close();
      }
    } finally {
      await started.rollback();
    }
    assert.equal(await reach(target, "n1", n2, 6222), "open", "not healed");
  });

  it("netem works where the kernel has sch_netem, and is reported skipped with the reason where not", async () => {
    const netem = spec({ action: "netem", nodes: ["n2"], delayMs: 100 });
    const reason = unsupportedReason(netem, target);
    if (!support.netem) {
      assert.match(reason ?? "", /sch_netem/);
      return;
    }
    assert.equal(reason, undefined);
    const started = await startFault(netem, {
      target,
      rng: createRng(1),
      signal: new AbortController().signal,
    } as unknown as Parameters<typeof startFault>[1]);
    await started.rollback();
  });
});
