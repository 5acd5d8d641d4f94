import assert from "node:assert/strict";
import { once } from "node:events";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { FaultProxy } from "../src/index.js";

/** An echo server on loopback. */
async function echoServer(): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => {
    s.on("error", () => {});
    s.pipe(s);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const addr = server.address();
  return { server, port: typeof addr === "object" && addr ? addr.port : 0 };
}

async function open(port: number): Promise<Socket> {
  const s = createConnection({ port, host: "127.0.0.1", noDelay: true });
  await once(s, "connect");
  return s;
}

/** Round trip of one message through the socket, ms; rejects when nothing comes back within `timeoutMs`. */
async function roundTrip(s: Socket, timeoutMs = 3000): Promise<number> {
  const start = performance.now();
  const payload = `ping-${Math.random()}`;
  const got = new Promise<void>((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error("no echo")), timeoutMs);
    const onData = (d: Buffer) => {
      buf += d.toString();
      if (buf.includes(payload)) {
        clearTimeout(timer);
        s.off("data", onData);
        resolve();
      }
    };
    s.on("data", onData);
    s.once("close", () => reject(new Error("closed")));
  });
  s.write(payload);
  await got;
  return performance.now() - start;
}

describe("FaultProxy", () => {
  let echo: { server: Server; port: number };
  let proxy: FaultProxy;
  before(async () => {
    echo = await echoServer();
    proxy = new FaultProxy({ name: "test", upstream: { host: "127.0.0.1", port: echo.port }, seed: "s1" });
    await proxy.listen();
  });
  after(async () => {
    await proxy.close();
    echo.server.close();
  });

  it("forwards bytes unchanged with no toxic", async () => {
    const s = await open(proxy.port);
    assert.ok((await roundTrip(s)) < 200);
    s.destroy();
  });

  it("adds latency with jitter per direction, and removing it restores the link", async () => {
    const s = await open(proxy.port);
    const id = proxy.addToxic({
      type: "latency",
      direction: "both",
      attributes: { latency: 100, jitter: 20 },
    });
    const slow: number[] = [];
    for (let i = 0; i < 5; i++) slow.push(await roundTrip(s));
    // Two directions, each 100 +/- 20 ms.
    for (const rt of slow) assert.ok(rt >= 155 && rt < 600, `round trip ${rt} ms`);
    proxy.removeToxic(id);
    assert.ok((await roundTrip(s)) < 100);
    const up = proxy.addToxic({ type: "latency", direction: "upstream", attributes: { latency: 150 } });
    const one = await roundTrip(s);
    assert.ok(one >= 145 && one < 450, `one-way ${one} ms`);
    proxy.removeToxic(up);
    assert.equal(proxy.toxics.length, 0);
    s.destroy();
  });

  it("blackholes traffic with timeout 0 and closes the connection when it lifts", async () => {
    const s = await open(proxy.port);
    const id = proxy.addToxic({ type: "timeout", attributes: { timeout: 0 } });
    await assert.rejects(roundTrip(s, 400), /no echo/);
    const closed = once(s, "close");
    proxy.removeToxic(id);
    await closed;
    const fresh = await open(proxy.port);
    assert.ok((await roundTrip(fresh)) < 200);
    fresh.destroy();
  });

  it("resets the peer (ECONNRESET) after the toxic's timeout", async () => {
    const s = await open(proxy.port);
    const id = proxy.addToxic({ type: "reset_peer", attributes: { timeout: 50 } });
    const [err] = (await once(s, "error")) as [NodeJS.ErrnoException];
    assert.equal(err.code, "ECONNRESET");
    proxy.removeToxic(id);
    const fresh = await open(proxy.port);
    assert.ok((await roundTrip(fresh)) < 200);
    fresh.destroy();
  });

  it("limits data: closes after the given bytes", async () => {
    const s = await open(proxy.port);
    const id = proxy.addToxic({ type: "limit_data", direction: "upstream", attributes: { bytes: 10 } });
    let got = "";
    s.on("data", (d: Buffer) => {
      got += d.toString();
    });
    const closed = once(s, "close");
    s.write("0123456789ABCDEF");
    await closed;
    assert.equal(got.length <= 10, true);
    proxy.removeToxic(id);
  });

  it("slices data into small chunks and throttles bandwidth", async () => {
    const s = await open(proxy.port);
    const slicer = proxy.addToxic({
      type: "slicer",
      direction: "downstream",
      attributes: { average_size: 4, size_variation: 1, delay: 1000 },
    });
    const chunks: number[] = [];
    s.on("data", (d: Buffer) => chunks.push(d.length));
    await roundTrip(s);
    assert.ok(chunks.length >= 3, `chunks ${chunks.join(",")}`);
    assert.ok(Math.max(...chunks) <= 5);
    proxy.removeToxic(slicer);
    s.removeAllListeners("data");
    const bw = proxy.addToxic({ type: "bandwidth", direction: "downstream", attributes: { rate: 10 } });
    const big = Buffer.alloc(5 * 1024, 97);
    const start = performance.now();
    let n = 0;
    const done = new Promise<void>((resolve) =>
      s.on("data", (d: Buffer) => {
        n += d.length;
        if (n >= big.length) resolve();
      }),
    );
    s.write(big);
    await done;
    // 5 KB at 10 KB/s: about half a second.
    assert.ok(performance.now() - start >= 400);
    proxy.removeToxic(bw);
    s.destroy();
  });

  it("applies toxicity per connection, deterministically from the seed", async () => {
    const pick = async (seed: string) => {
      const p = new FaultProxy({ name: "t", upstream: { host: "127.0.0.1", port: echo.port }, seed });
      await p.listen();
      p.addToxic({ type: "timeout", toxicity: 0.5, attributes: { timeout: 0 } });
      const hits: boolean[] = [];
      for (let i = 0; i < 8; i++) {
        const s = await open(p.port);
        hits.push(
          await roundTrip(s, 300).then(
            () => false,
            () => true,
          ),
        );
        s.destroy();
      }
      await p.close();
      return hits;
    };
    const a = await pick("seed-a");
    assert.deepEqual(await pick("seed-a"), a);
    assert.ok(a.includes(true) && a.includes(false), `hits ${a}`);
  });

  it("closes its listener: nothing listens on the port after close()", async () => {
    const p = new FaultProxy({ name: "c", upstream: { host: "127.0.0.1", port: echo.port } });
    const port = await p.listen();
    const s = await open(port);
    await p.close();
    await once(s, "close");
    await assert.rejects(open(port), /ECONNREFUSED/);
  });
});
