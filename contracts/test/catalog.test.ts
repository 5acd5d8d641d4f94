import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { OrderFulfillmentCompleted } from "../gen/ts/shop/order/v1/events.js";
import {
  ContractValidator,
  getCatalog,
  inspectImage,
  isJetkitError,
  type JetkitError,
  loadCatalog,
  subjectMatches,
  subjectsOverlap,
} from "../src/index.js";

const repo = new URL("../../../", import.meta.url).pathname;
const buf = join(repo, "node_modules/.bin/buf");

/** Builds an image of jetkit's options proto plus `proto` (and `extra` files) with real buf. */
function imageOf(proto: string, extra: Record<string, string> = {}): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), "jetkit-catalog-"));
  try {
    mkdirSync(join(dir, "jetkit/v1"), { recursive: true });
    mkdirSync(join(dir, "acme/v1"), { recursive: true });
    copyFileSync(join(repo, "contracts/proto/jetkit/v1/options.proto"), join(dir, "jetkit/v1/options.proto"));
    writeFileSync(join(dir, "acme/v1/events.proto"), proto);
    for (const [name, text] of Object.entries(extra)) {
      mkdirSync(join(dir, name, ".."), { recursive: true });
      writeFileSync(join(dir, name), text);
    }
    writeFileSync(join(dir, "buf.yaml"), "version: v2\n");
    const out = join(dir, "image.binpb");
    execFileSync(buf, ["build", "--exclude-imports", "--as-file-descriptor-set", "-o", out], { cwd: dir });
    return readFileSync(out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const header = (stream = 'name: "ACME" subjects: ["acme.>"]') =>
  `syntax = "proto3";\npackage acme.v1;\nimport "jetkit/v1/options.proto";\noption (jetkit.v1.stream) = { ${stream} };\n`;

describe("catalog", () => {
  test("maps every subject to one message type and stream, both ways", () => {
    const catalog = getCatalog();
    const spec = catalog.bySubject("order.fulfillment.completed");
    assert.equal(spec.type, OrderFulfillmentCompleted.$type);
    assert.equal(spec.stream, "ORDER");
    assert.equal(spec.partitionKey, "order_id");
    assert.equal(catalog.byType(spec.type), spec);
    assert.equal(catalog.streamFor("order.fulfillment.completed")?.name, "ORDER");
    assert.ok(catalog.bySubject("customer.checkout.initiated"));
    assert.ok(catalog.events.length >= 6 && new Set(catalog.events.map((e) => e.stream)).size >= 4);
  });

  test("unknown subjects and types get coded errors that list what exists", () => {
    const catalog = getCatalog();
    assert.throws(
      () => catalog.bySubject("order.fulfilment.completed"),
      (err: unknown) => {
        assert.ok(isJetkitError(err, "JK_CONTRACT_UNKNOWN_SUBJECT"));
        assert.match((err as JetkitError).message, /order\.fulfillment\.completed/);
        return true;
      },
    );
    assert.throws(
      () => catalog.byType("shop.common.v1.Money"),
      (err: unknown) => isJetkitError(err, "JK_CONTRACT_UNKNOWN_TYPE"),
    );
  });

  test("refuses bad subjects, duplicates, events outside their stream and bad partition keys", () => {
    const image = imageOf(
      `${header()}
message A { option (jetkit.v1.event) = { subject: "acme.thing.happened" partition_key: "count" }; int32 count = 1; }
message B { option (jetkit.v1.event) = { subject: "acme.thing.happened" }; }
message C { option (jetkit.v1.event) = { subject: "acme.*.happened" }; }
message D { option (jetkit.v1.event) = { subject: "Acme.Thing.Happened" }; }
message E { option (jetkit.v1.event) = { subject: "other.thing.happened" }; }
message F { option (jetkit.v1.event) = { subject: "acme.thing" }; }
`,
    );
    const { problems } = inspectImage(image);
    const rules = problems.map((p) => `${p.rule} ${p.message}`);
    const expect = (rule: string, text: string) =>
      assert.ok(
        rules.some((r) => r.startsWith(rule) && r.includes(text)),
        `expected ${rule} about ${text} in:\n${rules.join("\n")}`,
      );
    expect("EVENT_PARTITION_KEY", "count");
    expect("EVENT_SUBJECT_UNIQUE", "acme.thing.happened");
    expect("EVENT_SUBJECT_FORM", "wildcard");
    expect("EVENT_SUBJECT_FORM", "Acme.Thing.Happened");
    expect("EVENT_IN_STREAM", "other.thing.happened");
    expect("EVENT_SUBJECT_FORM", '"acme.thing"');
    assert.ok(problems.every((p) => p.file.startsWith("acme/v1/events.proto") && p.fix.length > 0));
    assert.throws(
      () => loadCatalog(image),
      (err: unknown) => isJetkitError(err, "JK_CATALOG_INVALID"),
    );
  });

  test("refuses two streams whose subjects overlap (JetStream would refuse them too)", () => {
    const other =
      'syntax = "proto3";\npackage billing.v1;\nimport "jetkit/v1/options.proto";\n' +
      'option (jetkit.v1.stream) = { name: "BILLING" subjects: ["acme.billing.>"] };\n';
    const image = imageOf(
      `${header()}\nmessage A { option (jetkit.v1.event) = { subject: "acme.a.b" }; }\n`,
      {
        "billing/v1/events.proto": other,
      },
    );
    const { problems } = inspectImage(image);
    assert.deepEqual(
      problems.map((p) => p.rule),
      ["STREAM_OVERLAP"],
    );
    assert.match(problems[0]!.message, /acme\.billing\.>.*acme\.>|acme\.>.*acme\.billing\.>/);
    assert.ok(
      subjectsOverlap("a.*", "*.b") && !subjectsOverlap("a.b", "a.b.c") && subjectsOverlap("a.>", "a.b.c"),
    );
    assert.ok(!subjectsOverlap("acme.>", "order.>"));
  });

  test("NATS wildcard matching", () => {
    assert.ok(subjectMatches("order.>", "order.fulfillment.completed"));
    assert.ok(!subjectMatches("order.>", "order"));
    assert.ok(subjectMatches("order.*.completed", "order.fulfillment.completed"));
    assert.ok(!subjectMatches("order.*", "order.fulfillment.completed"));
  });
});

describe("validation at the edge", () => {
  test("names every broken field and rule", () => {
    const catalog = getCatalog();
    const spec = catalog.byType(OrderFulfillmentCompleted.$type);
    const bytes = OrderFulfillmentCompleted.encode({
      orderId: "not-a-uuid",
      checkoutId: "0b3a4c1e-5f6d-4e7a-8b9c-0d1e2f3a4b5c",
      shipments: [{ shipmentId: "s1", carrier: 0, trackingNumber: "T1", skus: ["A"] }],
      completedAt: new Date(),
    }).finish();
    assert.throws(
      () => new ContractValidator(catalog).check(spec, bytes),
      (err: unknown) => {
        assert.ok(isJetkitError(err, "JK_CONTRACT_VIOLATION"));
        const violations = (err as JetkitError).details.violations as { field: string; rule: string }[];
        assert.deepEqual(
          violations.map((v) => `${v.field} ${v.rule}`),
          ["order_id string.uuid", "shipments[0].carrier enum.not_in"],
        );
        assert.match((err as JetkitError).message, /order_id/);
        return true;
      },
    );
  });

  test("undecodable bytes are refused with a coded error", () => {
    const catalog = getCatalog();
    const spec = catalog.bySubject("order.fulfillment.completed");
    assert.throws(
      () => new ContractValidator(catalog).check(spec, Uint8Array.of(0x0a, 0xff)),
      (err: unknown) => isJetkitError(err, "JK_CONTRACT_UNDECODABLE"),
    );
    assert.throws(() => fromBinary(spec.schema, Uint8Array.of(0x0a, 0xff)));
  });
});
