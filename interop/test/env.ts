import { getCatalog } from "@jetkit/contracts";
import { applyStreams } from "@jetkit/contracts/streams";
import { type NatsServer, startServer } from "@jetkit/testing";
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { MsgHdrs, NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { pino } from "pino";
import type { HeaderList } from "./polyglot.js";

export const silent = pino({ level: "silent" });

export interface Env {
  server: NatsServer;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  dispose(): Promise<void>;
}

/** A nats-server with every stream of the contracts (DLQ included), provisioned from the catalog. */
export async function startEnv(): Promise<Env> {
  const server = await startServer();
  const nc = await connect({ servers: server.url });
  const jsm = await jetstreamManager(nc);
  await applyStreams(jsm, getCatalog());
  return {
    server,
    nc,
    js: jetstream(nc),
    jsm,
    async dispose() {
      await nc.close().catch(() => {});
      await server.dispose();
    },
  };
}

/** The headers of a stored message in the order nats.js received them. */
export function headerList(h: MsgHdrs | undefined): HeaderList {
  const out: HeaderList = [];
  if (!h) return out;
  for (const [k, vs] of h) for (const v of vs) out.push([k, v]);
  return out;
}

/** Polls `check` until it returns a value, or fails after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
