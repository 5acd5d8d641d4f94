import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import type { Agent } from "node:https";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { isJetkitError } from "@jetkit/contracts";
import { jetstreamManager } from "@nats-io/jetstream";
import { loadGatewayConfig } from "../src/config.js";
import { type Gateway, type GatewayConfig, startGateway } from "../src/gateway.js";
import type { SharedRateLimiter } from "../src/rate-limit.js";
import {
  clientAgent,
  completedJson,
  https,
  makePki,
  natsWithStreams,
  silent,
  type TestPki,
  tempDir,
  writePolicy,
} from "./helpers.js";

// a burst of 10 and almost no refill (one token per 100 s): over the test every admitted request
// spent one of the burst's tokens, so the bound is exact whatever the machine's speed
const LIMITS = { ratePerSecond: 0.01, rateBurst: 10 };

describe("rate limits shared by two gateway replicas on one NATS", () => {
  let dir: { dir: string; remove: () => Promise<void> };
  let pki: TestPki;
  let nats: Awaited<ReturnType<typeof natsWithStreams>>;
  let policyFile: string;
  const gateways: Gateway[] = [];
  const agents: Agent[] = [];

  before(async () => {
    dir = await tempDir("rate");
    pki = await makePki(join(dir.dir, "pki"));
    nats = await natsWithStreams();
    policyFile = await writePolicy(dir.dir);
  });

  after(async () => {
    for (const a of agents) a.destroy();
    for (const g of gateways) await g.close();
    await nats?.nc.close();
    await nats?.server.stop();
    await dir?.remove();
  });

  async function replicas(extra: Partial<GatewayConfig>): Promise<[Gateway, Gateway]> {
    const one = () =>
      startGateway({
        listen: { port: 0 },
        admin: false,
        tls: { cert: pki.paths.serverCert, key: pki.paths.serverKey, ca: pki.paths.caCert, watch: false },
        policy: { file: policyFile, watch: false },
        nats: { servers: nats.server.url },
        limits: LIMITS,
        logger: silent,
        ...extra,
      });
    const pair: [Gateway, Gateway] = [await one(), await one()];
    gateways.push(...pair);
    return pair;
  }

  /** `n` publishes by the same principal, all at once, alternating between the replicas. */
  async function burst(pair: [Gateway, Gateway], n: number): Promise<{ ok: number; limited: number }> {
    const a = [clientAgent(pki.paths.caCert, pki.checkout), clientAgent(pki.paths.caCert, pki.checkout)];
    agents.push(...a);
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        https(pair[i % 2]!.url, a[i % 2]!, {
          method: "POST",
          path: "/v1/events/order.fulfillment.completed",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(completedJson()),
        }),
      ),
    );
    let ok = 0;
    let limited = 0;
    for (const r of results) {
      if (r.status === 201) ok++;
      else {
        assert.equal(r.status, 429, r.body);
        assert.equal(r.json().error.code, "JK_GATEWAY_RATE_LIMITED");
        assert.ok(Number(r.headers["retry-after"]) >= 1, "Retry-After is set");
        limited++;
      }
    }
    return { ok, limited };
  }

  test("without sharing, each replica admits the whole burst: 2 x the limit", async () => {
    const { ok } = await burst(await replicas({}), 30);
    assert.equal(ok, 2 * LIMITS.rateBurst);
  });

  test("shared, one token per lease: the principal's total across both replicas is the limit exactly", async () => {
    const pair = await replicas({ sharedRateLimit: { bucket: "rate-exact", leaseTokens: 1 } });
    const { ok, limited } = await burst(pair, 30);
    assert.equal(ok, LIMITS.rateBurst);
    assert.equal(limited, 30 - LIMITS.rateBurst);
    // both replicas admitted some: the bucket is shared, not one replica taking all
    const per = pair.map((g) => (g.rateLimiter as SharedRateLimiter).stats);
    assert.ok(per.every((s) => s.leases > 0));
    assert.equal(
      per.reduce((n, s) => n + s.fallbacks, 0),
      0,
    );
  });

  test("shared, leases of 4 tokens spent locally: at most the limit, requests decided from leased tokens without a round trip", async () => {
    const pair = await replicas({ sharedRateLimit: { bucket: "rate-lease", leaseTokens: 4 } });
    const { ok } = await burst(pair, 30);
    assert.ok(ok <= LIMITS.rateBurst, `admitted ${ok}, limit ${LIMITS.rateBurst}`);
    // unspent leased tokens are lost, at most leaseTokens - 1 per replica
    assert.ok(ok >= LIMITS.rateBurst - 2 * 3, `admitted ${ok}`);
    const per = pair.map((g) => (g.rateLimiter as SharedRateLimiter).stats);
    const local = per.reduce((n, s) => n + s.local, 0);
    assert.ok(local > 0, "some requests were decided from leased tokens");
  });

  test("the KV bucket gone: requests are limited per replica, traffic does not stop", async () => {
    const pair = await replicas({ sharedRateLimit: { bucket: "rate-gone", leaseTokens: 1 } });
    await (await jetstreamManager(nats.nc)).streams.delete("KV_rate-gone");
    const { ok } = await burst(pair, 30);
    assert.equal(ok, 2 * LIMITS.rateBurst, "each replica's own bucket decides");
    const per = pair.map((g) => (g.rateLimiter as SharedRateLimiter).stats);
    assert.ok(per.every((st) => st.fallbacks > 0));
  });
});

describe("sharedRateLimit in the gateway config file", () => {
  test("true or a mapping is read; a bad lease is JK_GATEWAY_CONFIG naming the key", async () => {
    const dir = await tempDir("rate-config");
    try {
      const base =
        "tls: { cert: s.crt, key: s.key, ca: ca.crt }\npolicy: { file: p.yaml }\nnats: { servers: nats://127.0.0.1:4222 }\n";
      const write = (extra: string) => {
        const f = join(dir.dir, "gateway.yaml");
        writeFileSync(f, base + extra);
        return f;
      };
      assert.deepEqual(loadGatewayConfig(write("sharedRateLimit: true\n")).sharedRateLimit, {});
      assert.deepEqual(
        loadGatewayConfig(write("sharedRateLimit: { bucket: gw-rate, leaseTokens: 5 }\n")).sharedRateLimit,
        { bucket: "gw-rate", leaseTokens: 5 },
      );
      for (const [bad, key] of [
        ["sharedRateLimit: { leaseTokens: 0 }", "sharedRateLimit.leaseTokens"],
        ["sharedRateLimit: { bucket: 'a b' }", "sharedRateLimit.bucket"],
        ["sharedRateLimit: { shard: 1 }", "sharedRateLimit.shard"],
        ["sharedRateLimit: yes-please", "sharedRateLimit must be"],
      ] as const) {
        assert.throws(
          () => loadGatewayConfig(write(`${bad}\n`)),
          (err: unknown) => isJetkitError(err, "JK_GATEWAY_CONFIG") && (err as Error).message.includes(key),
          bad,
        );
      }
    } finally {
      await dir.remove();
    }
  });
});
