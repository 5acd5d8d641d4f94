import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { after, describe, test } from "node:test";
import { freePort, isServerMissing, LauncherError, startCluster, startServer } from "../src/index.js";

/** Resolves true when a TCP connection to the port is accepted. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: "127.0.0.1", port });
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
}

describe("single server", () => {
  test("starts on free loopback ports with JetStream, restarts on the same port, cleans up", async () => {
    const server = await startServer();
    const { client } = server.ports;
    assert.ok(client > 0 && server.url === `nats://127.0.0.1:${client}`);
    const jsz = (await (await fetch(`${server.monitorUrl}/jsz`)).json()) as {
      config?: { store_dir?: string };
    };
    assert.ok(
      jsz.config?.store_dir?.startsWith(server.dir),
      "JetStream store lives in the server's temp dir",
    );
    await server.restart();
    assert.equal(server.ports.client, client, "a restart keeps the client port so clients can reconnect");
    assert.ok(await accepts(client));
    await server.dispose();
    assert.equal(await accepts(client), false, "the port is closed after dispose");
    assert.equal(existsSync(server.dir), false, "the temp dir is removed");
  });

  test("kill -9 and pause are real: the process is gone / stops answering", async () => {
    const server = await startServer();
    after(() => server.dispose());
    server.pause();
    assert.equal(await server.healthy(), false, "a paused server answers nothing");
    server.resume();
    await server.waitHealthy(5000);
    await server.kill();
    assert.equal(server.running, false);
    assert.equal(await accepts(server.ports.client), false);
  });
});

describe("without a nats-server binary", () => {
  test("refuses with JK_NATS_SERVER_MISSING, and says how to install one", async () => {
    const before = process.env.JETKIT_NATS_SERVER;
    process.env.JETKIT_NATS_SERVER = "/nonexistent/nats-server";
    try {
      const err = await startServer().then(
        () => assert.fail("started without a binary"),
        (e: unknown) => e,
      );
      assert.ok(err instanceof LauncherError);
      assert.equal(err.code, "JK_NATS_SERVER_MISSING");
      assert.ok(isServerMissing(new Error("wrapped", { cause: err })));
      assert.match(err.message, /\/nonexistent\/nats-server.*JETKIT_NATS_SERVER/s);
    } finally {
      if (before === undefined) delete process.env.JETKIT_NATS_SERVER;
      else process.env.JETKIT_NATS_SERVER = before;
    }
  });
});

describe("3-node cluster", () => {
  test("elects a meta leader; a killed node rejoins on the same ports after restart", async () => {
    const cluster = await startCluster({ size: 3 });
    after(() => cluster.dispose());
    assert.equal(cluster.urls.length, 3);
    const leader = await cluster.metaLeader();
    assert.ok(leader && ["n1", "n2", "n3"].includes(leader), `meta leader ${leader}`);
    const victim = cluster.node(leader);
    const port = victim.ports.client;
    await victim.kill();
    assert.equal(await accepts(port), false);
    await victim.start();
    assert.equal(victim.ports.client, port);
    await cluster.waitReady();
    assert.ok(await cluster.metaLeader());
  });
});

describe("freePort", () => {
  test("reserves ports outside the kernel's ephemeral range, so a port-0 listener cannot take them", async (t) => {
    let low: number;
    try {
      low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    } catch {
      t.skip("no /proc/sys/net/ipv4/ip_local_port_range (not Linux)");
      return;
    }
    const ports = [await freePort(), await freePort(), await freePort()];
    for (const port of ports) assert.ok(port < low, `${port} is below the ephemeral range (from ${low})`);
    // and each is really free: a listener can bind it
    for (const port of ports) {
      const srv = createServer();
      await new Promise<void>((resolve, reject) => {
        srv.once("error", reject);
        srv.listen(port, "127.0.0.1", () => resolve());
      });
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    }
  });
});
