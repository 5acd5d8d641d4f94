import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  eventHeaders,
  headerLookup,
  headerValue,
  isJetkitError,
  percentDecode,
  percentEncode,
  readEventHeaders,
  uuidv7,
} from "../src/index.js";

describe("wire headers", () => {
  const base = {
    id: "id-1",
    type: "shop.order.v1.OrderFulfillmentCompleted",
    source: "/jetkit/t",
    time: new Date(0),
  };

  test("a free-text value cannot inject a header line", () => {
    const h = new Map(eventHeaders({ ...base, correlationId: "abc\r\nNats-Msg-Id: evil" }));
    assert.equal(h.get("ce-correlationid"), "abc%20Nats-Msg-Id:%20evil");
    assert.equal(h.get("Nats-Msg-Id"), "id-1");
    assert.equal(headerValue("x".repeat(5000)).length, 1024);
  });

  test("values are percent-encoded per the NATS binding and decode back exactly", () => {
    assert.equal(headerValue("Euro € 😀"), "Euro%20%E2%82%AC%20%F0%9F%98%80", "the binding's own example");
    const key = 'Zoë 100% "x"';
    const h = eventHeaders({ ...base, partitionKey: key });
    const pk = new Map(h).get("ce-partitionkey")!;
    assert.equal(pk, "Zo%C3%AB%20100%25%20%22x%22");
    assert.equal(readEventHeaders(headerLookup(h)).partitionKey, key);
    assert.equal(headerValue("plain-id_1.2:3/4"), "plain-id_1.2:3/4", "nothing to escape: as is");
  });

  test("a cut never splits an escape or a surrogate pair and stays printable ASCII", () => {
    for (const unit of ["x", "ü", "€", "😀", "a b"]) {
      for (let n = 300; n < 1100; n += 37) {
        const v = headerValue(unit.repeat(n));
        assert.ok(v.length <= 1024, `${unit} x ${n}: ${v.length}`);
        assert.match(v, /^[\x21-\x7e]*$/);
        const text = percentDecode(v);
        if (v.endsWith("%E2%80%A6") && percentEncode(unit.repeat(n), 1 << 20).length > 1024) {
          assert.ok(unit.repeat(n).startsWith(text.slice(0, -1)), `${unit} x ${n} decodes to a prefix`);
        } else assert.equal(text, unit.repeat(n));
      }
    }
  });

  test("header names match case-insensitively and media types too", () => {
    const h = eventHeaders(base).map(([k, v]): [string, string] => [k.toUpperCase(), v]);
    h.push(["CE-DATACONTENTTYPE", "Application/Protobuf"]);
    const read = readEventHeaders(headerLookup(h));
    assert.equal(read.id, "id-1");
    const json = eventHeaders(base).map(([k, v]): [string, string] => [
      k,
      k === "ce-datacontenttype" ? "application/json" : v,
    ]);
    assert.throws(() => readEventHeaders(headerLookup(json)), /ce-datacontenttype is "application\/json"/);
  });

  test("the trace goes out twice: W3C headers and the tracing extension's ce- attributes", () => {
    const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const h = new Map(eventHeaders({ ...base, traceparent: tp, tracestate: "a=1, b=2" }));
    assert.equal(h.get("traceparent"), tp);
    assert.equal(h.get("ce-traceparent"), tp);
    assert.equal(h.get("tracestate"), "a=1, b=2");
    assert.equal(h.get("ce-tracestate"), "a=1,%20b=2");
  });

  test("readEventHeaders names the missing or wrong header", () => {
    const h = new Map(eventHeaders(base));
    h.delete("ce-type");
    assert.throws(
      () => readEventHeaders((k) => h.get(k)),
      (err: unknown) => {
        assert.ok(isJetkitError(err, "JK_WIRE_HEADERS"));
        assert.match(String(err), /ce-type/);
        return true;
      },
    );
    const v2 = new Map(eventHeaders(base));
    v2.set("ce-specversion", "0.3");
    assert.throws(() => readEventHeaders((k) => v2.get(k)), /ce-specversion/);
  });

  test("generated ids are UUIDv7 and sort by creation", () => {
    const ids = Array.from({ length: 2000 }, () => uuidv7());
    assert.match(ids[0]!, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.deepEqual([...ids].sort(), ids);
    assert.equal(new Set(ids).size, ids.length);
  });
});
