import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import {
  checkEventHeaders,
  EventHeaders,
  eventHeaders,
  getCatalog,
  isJetkitError,
  percentDecode,
  readEvent,
  uuidv7,
} from "@jetkit/contracts";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { AckPolicy, DeliverPolicy, type JsMsg } from "@nats-io/jetstream";
import { headers, type MsgHdrs } from "@nats-io/nats-core";
import { MsgHdrsImpl } from "@nats-io/nats-core/internal";
import { contentMode, parseHeaderBlock, ReceivedHeaders, receivedHeaders } from "../src/received-headers.js";
import { completed, type Env, startEnv } from "./support.js";

const NAMES = Object.values(EventHeaders);

/**
 * What the binding says a reader gets, from nats-core's decoding of the block: the first value
 * of the first name that matches case-insensitively (nats-core keeps names as sent, in the
 * order first seen), `ce-*` values percent-decoded (kept as sent when they do not decode);
 * "" when absent.
 */
function viaNatsCore(h: MsgHdrs | undefined): string[] {
  return NAMES.map((n) => {
    if (!h) return "";
    for (const [k, vs] of h) {
      if (k.toLowerCase() !== n.toLowerCase() || vs[0] === undefined) continue;
      if (!n.startsWith("ce-")) return vs[0];
      try {
        return percentDecode(vs[0]);
      } catch {
        return vs[0];
      }
    }
    return "";
  });
}

describe("received headers: one-pass reading agrees with nats-core", () => {
  let env: Env;
  before(async () => {
    env = await startEnv();
  });
  after(async () => {
    await env?.dispose();
  });

  it("reads the headers of delivered messages as msg.headers.get does", async () => {
    const spec = getCatalog().byType(OrderFulfillmentCompleted.$type);
    const payload = OrderFulfillmentCompleted.encode(completed()).finish();
    const id = uuidv7();
    // A new Nats-Msg-Id per message, or the stream's duplicate window drops them.
    const full = () =>
      eventHeaders({
        id,
        type: spec.type,
        source: "/jetkit/test",
        time: new Date(),
        partitionKey: "Zürich ☃ order",
        correlationId: uuidv7(),
        causationId: uuidv7(),
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        tracestate: "vendor=a:b,other=c",
        msgId: `replay:7:${uuidv7()}`,
      });
    const sets: [string, string][][] = [
      full(),
      [...full(), [EventHeaders.REPLAY_OF, "DLQ:7"]],
      // Repeated and differently cased names: the first value of any case.
      [...full(), [EventHeaders.ID, "second-id"], ["CE-TYPE", "shop.Other"], ["Ce-Id", "cased"]],
      [
        ["CE-ID", "upper-first"],
        [EventHeaders.ID, "lower-second"],
        ["Ce-PartitionKey", "Zo%C3%AB%20100%25"],
        [EventHeaders.MSG_ID, uuidv7()],
      ],
      [
        [EventHeaders.ID, "only-an-id"],
        [EventHeaders.MSG_ID, uuidv7()],
      ],
    ];
    const first = (await env.jsm.streams.info("ORDER")).state.last_seq + 1;
    for (const set of sets) {
      const h = headers();
      for (const [k, v] of set) h.append(k, v);
      await env.js.publish(spec.subject, payload, { headers: h });
    }
    await env.js.publish(spec.subject, payload); // no headers at all
    await env.jsm.consumers.add("ORDER", {
      durable_name: "headers-check",
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: first,
    });
    const c = await env.js.consumers.get("ORDER", "headers-check");
    const msgs: JsMsg[] = [];
    for await (const m of await c.fetch({ max_messages: sets.length + 1, expires: 5000 })) msgs.push(m);
    assert.equal(msgs.length, sets.length + 1);
    for (const m of msgs) {
      const fast = receivedHeaders(m);
      assert.deepEqual(
        NAMES.map((n) => fast.get(n) ?? ""),
        viaNatsCore(m.headers),
      );
    }
    assert.equal(receivedHeaders(msgs[0]!).get(EventHeaders.PARTITION_KEY), "Zürich ☃ order");
    assert.equal(receivedHeaders(msgs[2]!).get(EventHeaders.ID), id);
    assert.equal(receivedHeaders(msgs[4]!).get(EventHeaders.TYPE), undefined);
    assert.equal(receivedHeaders(msgs[3]!).id, "upper-first", "names match in any case, the first wins");
    assert.equal(receivedHeaders(msgs[3]!).partitionKey, "Zoë 100%", "ce- values are percent-decoded");
    assert.equal(receivedHeaders(msgs[5]!).get(EventHeaders.ID), undefined);
  });

  it("leaves blocks nats-core reads differently or refuses to nats-core", () => {
    const block = (s: string) => new TextEncoder().encode(s);
    const parse = (s: string) => {
      const b = block(s);
      return parseHeaderBlock(b, b.length);
    };
    // Read in one pass, as nats-core does: trimmed values, lines without a colon ignored, empty names.
    const ok = "NATS/1.0\r\nce-id:   abc  \r\nno colon here\r\n: empty name\r\nce-type:x:y\r\n\r\n";
    const mine = parse(ok);
    assert.ok(mine);
    const theirs = MsgHdrsImpl.decode(block(ok));
    assert.deepEqual(
      NAMES.map((n) => mine.get(n) ?? ""),
      viaNatsCore(theirs),
    );
    assert.equal(mine.get(EventHeaders.TYPE), "x:y");
    // Status lines, names nats-core refuses, lone CR/LF: not read here.
    assert.equal(parse("NATS/1.0 503\r\n\r\n"), undefined);
    assert.equal(parse("NATS/1.0\r\nce id: x\r\n\r\n"), undefined);
    assert.throws(() => MsgHdrsImpl.decode(block("NATS/1.0\r\nce id: x\r\n\r\n")));
    assert.equal(parse("NATS/1.0\r\nce-id: a\nb\r\n\r\n"), undefined);
    assert.equal(parse("NATS/1.0\r\nce-id: a\rb\r\n\r\n"), undefined);
    assert.equal(parse("NATS/1.0\r\nnamé: x\r\n\r\n"), undefined);
  });

  it("reads generated blocks, ASCII or not, well-formed or not, as nats-core does or leaves them to it", () => {
    // A seeded generator (mulberry32): the same blocks on every run.
    let seed = 0x5eed;
    const rand = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const names = [...NAMES, "CE-ID", "ce-idx", "ce-i", "x", "", "ce id", "ce\tid", "namé", "ce:id"];
    const pads = ["", " ", "  ", "\t", "\v", "\f", "\u00a0", " \t "];
    const values = [
      "abc",
      "",
      "a b",
      "x:y",
      "Zürich ☃",
      "\u00a0v\u00a0",
      "a\rb",
      "a\nb",
      "\ufeffz",
      "ab\u0080",
    ];
    const lines = () => {
      const r = rand();
      if (r < 0.05) return "no colon here";
      if (r < 0.08) return "";
      return `${pick(names)}:${pick(pads)}${pick(values)}${pick(pads)}`;
    };
    const firsts = ["NATS/1.0", "NATS/1.0", "NATS/1.0", "NATS/1.0 503", "NATS/1.1", "\ufeffNATS/1.0"];
    let readHere = 0;
    let asciiRead = 0;
    for (let n = 0; n < 3000; n++) {
      const text = [pick(firsts), ...Array.from({ length: Math.floor(rand() * 8) }, lines)].join("\r\n");
      const block = new TextEncoder().encode(`${text}${rand() < 0.8 ? "\r\n\r\n" : ""}`);
      const mine = parseHeaderBlock(block, block.length);
      if (!mine) continue;
      readHere++;
      if (block.every((b) => b < 0x80)) asciiRead++;
      let theirs: MsgHdrs;
      try {
        theirs = MsgHdrsImpl.decode(block);
      } catch (err) {
        assert.fail(`read a block nats-core refuses (${String(err)}): ${JSON.stringify(text)}`);
      }
      assert.deepEqual(
        NAMES.map((name) => mine.get(name) ?? ""),
        viaNatsCore(theirs),
        JSON.stringify(text),
      );
    }
    // Most generated blocks are read here, in both passes: the comparison is not vacuous.
    assert.ok(readHere > 500 && asciiRead > 200, `read ${readHere} blocks here, ${asciiRead} ASCII`);
  });

  it("reads every received message of the golden vectors as the wire contract says", () => {
    const golden = JSON.parse(
      readFileSync(new URL("../../../contracts/vectors/golden.json", import.meta.url), "utf8"),
    ) as {
      vectors: { name: string; payload_hex: string }[];
      received: {
        name: string;
        headers: [string, string][];
        payload_of?: string;
        body?: string;
        error?: string;
      }[];
    };
    assert.ok(golden.received.length >= 10);
    for (const r of golden.received) {
      const body =
        r.body !== undefined
          ? Buffer.from(r.body, "utf8")
          : Buffer.from(golden.vectors.find((v) => v.name === r.payload_of)!.payload_hex, "hex");
      const block = new TextEncoder().encode(
        r.headers.length === 0
          ? ""
          : `NATS/1.0\r\n${r.headers.map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n`,
      );
      const h = contentMode(parseHeaderBlock(block, block.length) ?? new ReceivedHeaders(), body);
      if (r.error) {
        assert.throws(
          () => checkEventHeaders(h),
          (err: unknown) => isJetkitError(err, r.error) || assert.fail(`${r.name}: ${String(err)}`),
        );
        continue;
      }
      const expected = readEvent(r.headers, body);
      assert.deepEqual(checkEventHeaders(h), expected.headers, r.name);
      assert.equal(
        Buffer.from(h.body ?? body).toString("hex"),
        Buffer.from(expected.data).toString("hex"),
        r.name,
      );
    }
  });
});
