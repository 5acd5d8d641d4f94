import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { type ChaosTarget, openTarget, waitFor } from "../src/index.js";
import { createReplicatedStream } from "./support.js";

/** Process and partition faults on a real 3-node cluster: each takes effect and is fully rolled back. */
describe("cluster faults", () => {
  let target: ChaosTarget;
  let nc: NatsConnection;
  before(async () => {
    target = await openTarget({ seed: "faults-test" });
    nc = await connect({
      servers: target.clientUrls,
      ignoreClusterUpdates: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 100,
    });
    const jsm = await jetstreamManager(nc);
    await createReplicatedStream(jsm);
  });
  after(async () => {
    await nc?.close();
    await target?.dispose();
  });

  it("a killed node is gone, and back after restart", async () => {
    const n = target.node("n2");
    const pid = n.pid ?? 0;
    await n.kill();
    assert.equal(n.running, false);
    assert.throws(() => process.kill(pid, 0), /ESRCH/);
    assert.equal(await n.healthy(), false);
    await n.start();
    assert.ok(await waitFor(() => n.healthy(), 20_000));
  });

  it("a paused node answers nothing until resumed", async () => {
    const n = target.node("n3");
    n.pause();
    assert.equal(await n.healthy(), false);
    n.resume();
    assert.ok(await waitFor(() => n.healthy(), 10_000));
  });

  it("a partition cuts the minority's routes: it cannot commit, the majority can; healing restores it", async () => {
    const minority = "n1";
    const cut = target.routeLinks.filter((l) => l.from === minority || l.to === minority);
    const ids = cut.map(
      (l) => [l.proxy, l.proxy.addToxic({ type: "timeout", attributes: { timeout: 0 } })] as const,
    );
    const direct = async (name: string) =>
      connect({ servers: target.node(name).url, ignoreClusterUpdates: true, maxReconnectAttempts: 0 });
    const inMinority = await direct(minority);
    const inMajority = await direct("n2");
    try {
      await assert.rejects(jetstream(inMinority).publish("t.x", "a", { timeout: 1500 }));
      // The majority re-elects if it has to and commits.
      const ok = await waitFor(
        () =>
          jetstream(inMajority)
            .publish("t.x", "b", { timeout: 1500 })
            .then(
              () => true,
              () => false,
            ),
        20_000,
        200,
      );
      assert.ok(ok, "majority could not commit during the partition");
    } finally {
      for (const [p, id] of ids) p.removeToxic(id);
    }
    assert.ok(
      await waitFor(
        () =>
          jetstream(inMinority)
            .publish("t.x", "c", { timeout: 1500 })
            .then(
              () => true,
              () => false,
            ),
        30_000,
        250,
      ),
      "minority did not rejoin after healing",
    );
    for (const p of target.proxies) assert.equal(p.toxics.length, 0);
    await inMinority.close();
    await inMajority.close();
  });

  it("client-link latency slows a request through the proxy and goes away when removed", async () => {
    const proxies = [...target.clientProxies.values()];
    const t0 = performance.now();
    await nc.flush();
    const base = performance.now() - t0;
    const ids = proxies.map(
      (p) => [p, p.addToxic({ type: "latency", attributes: { latency: 200, jitter: 50 } })] as const,
    );
    const t1 = performance.now();
    await nc.flush();
    const slow = performance.now() - t1;
    for (const [p, id] of ids) p.removeToxic(id);
    const t2 = performance.now();
    await nc.flush();
    const after = performance.now() - t2;
    assert.ok(slow >= 300, `round trip with latency ${slow} ms (base ${base} ms)`);
    assert.ok(after < 150, `round trip after removal ${after} ms`);
  });
});
