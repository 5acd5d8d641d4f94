import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { eventHeaders, headerValue, isJetkitError, readEventHeaders, uuidv7 } from "../src/index.js";

describe("wire headers", () => {
  const base = {
    id: "id-1",
    type: "shop.order.v1.OrderFulfillmentCompleted",
    source: "/jetkit/t",
    time: new Date(0),
  };

  test("a free-text value cannot inject a header line", () => {
    const h = new Map(eventHeaders({ ...base, correlationId: "abc\r\nNats-Msg-Id: evil" }));
    assert.equal(h.get("ce-correlationid"), "abc Nats-Msg-Id: evil");
    assert.equal(h.get("Nats-Msg-Id"), "id-1");
    assert.equal(headerValue("x".repeat(5000)).length, 1024);
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
