import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { eventHeaders } from "@jetkit/contracts";
import { MsgHdrsImpl } from "@nats-io/nats-core";
import { toMsgHdrs } from "../src/headers.js";

/** What nats.js itself would send for these headers, appended one by one. */
function natsEncoding(list: [string, string][]): Uint8Array {
  const h = new MsgHdrsImpl();
  for (const [k, v] of list) h.append(k, v);
  return h.encode();
}

describe("event header block", () => {
  const list = eventHeaders({
    id: "0190c8e2-1d2a-7bbb-8ccc-000000000001",
    type: "shop.order.v1.OrderFulfillmentCompleted",
    source: "/jetkit/fulfillment",
    time: "2026-11-22T10:00:00.000Z",
    partitionKey: "Zürich-42 ✓",
    correlationId: "corr-1",
    traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
  });

  it("is byte for byte what nats.js encodes, percent-encoded and raw non-ASCII values included", () => {
    const withRaw: [string, string][] = [...list, ["X-Note", "Zürich ✓"]];
    const h = toMsgHdrs(withRaw);
    assert.deepEqual(Buffer.from(h.encode()), Buffer.from(natsEncoding(withRaw)));
    assert.equal(h.wireBytes, Buffer.byteLength(new TextDecoder().decode(natsEncoding(withRaw))));
    assert.equal(h.get("ce-partitionkey"), "Z%C3%BCrich-42%20%E2%9C%93", "CloudEvents binding §3.1.3.2");
  });

  it("re-encodes after an expectation header is set on it", () => {
    const h = toMsgHdrs(list);
    const before = h.wireBytes;
    h.set("Nats-Expected-Last-Sequence", "41");
    const text = new TextDecoder().decode(h.encode());
    assert.match(text, /\r\nNats-Expected-Last-Sequence: 41\r\n\r\n$/);
    assert.equal(h.wireBytes, before + "Nats-Expected-Last-Sequence: 41\r\n".length);
  });
});
