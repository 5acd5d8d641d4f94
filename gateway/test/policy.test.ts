import assert from "node:assert/strict";
import { mkdir, rename, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { getCatalog, isJetkitError } from "@jetkit/contracts";
import { explain, isFiltered } from "../src/policy/evaluate.js";
import { natsPermissions } from "../src/policy/nats-config.js";
import { natsMatches, patternCovers, principalMatches } from "../src/policy/patterns.js";
import { parsePolicy } from "../src/policy/policy.js";
import { PolicyStore } from "../src/policy/store.js";
import { eventually, POLICY, silent, tempDir, writePolicy } from "./helpers.js";

const catalog = getCatalog();
const policy = parsePolicy(POLICY, "policy.yaml");
const CHECKOUT = "spiffe://jetkit.dev/checkout";
const BOB = "CN=bob,OU=ops,O=jetkit";
const TEAM_A = "spiffe://jetkit.dev/team-a/reporting";

describe("policy evaluation", () => {
  const matrix: [string, "publish" | "subscribe", string, boolean, RegExp][] = [
    // publish: exact and wildcard role patterns, deny overrides, default deny
    [CHECKOUT, "publish", "customer.checkout.initiated", true, /role checkout-writer publish\[0\]/],
    [CHECKOUT, "publish", "customer.account.registered", true, /"customer\.account\.\*"/],
    [CHECKOUT, "publish", "order.fulfillment.started", true, /role fulfillment/],
    [CHECKOUT, "publish", "order.lifecycle.cancelled", false, /^deny\[0\]\.publish\[0\]/],
    [CHECKOUT, "publish", "payment.charge.authorized", false, /^default-deny$/],
    [CHECKOUT, "publish", "order.fulfillment.*", false, /^publish-concrete$/],
    [CHECKOUT, "publish", "order.fulfillment.nope", false, /^publish-catalog$/],
    [BOB, "publish", "order.fulfillment.started", false, /^default-deny$/],
    // subscribe: covering patterns, `*` vs `>`, deny overrides, partial deny filters
    [BOB, "subscribe", "order.>", true, /role order-reader/],
    [BOB, "subscribe", "order.fulfillment.*", true, /role order-reader/],
    [BOB, "subscribe", ">", false, /^default-deny$/],
    [BOB, "subscribe", "customer.>", false, /^default-deny$/],
    [TEAM_A, "subscribe", "order.lifecycle.cancelled", true, /via bindings\[2\]/],
    ["spiffe://jetkit.dev/team-a/x/y", "subscribe", "order.>", false, /^default-deny$/],
    [CHECKOUT, "subscribe", "order.fulfillment.completed", true, /role fulfillment/],
    [CHECKOUT, "subscribe", "order.*.completed", false, /^default-deny$/],
    [CHECKOUT, "subscribe", "customer.checkout.initiated", false, /^deny\[0\]\.subscribe\[0\]/],
    [CHECKOUT, "subscribe", "customer.checkout.>", false, /^deny\[0\]\.subscribe\[0\]/],
    [CHECKOUT, "subscribe", "customer.account.registered", true, /role checkout-writer subscribe\[0\]/],
    ["spiffe://jetkit.dev/nobody", "subscribe", "order.>", false, /^default-deny$/],
  ];
  for (const [principal, action, subject, allowed, rule] of matrix) {
    test(`${principal} ${action} ${subject} -> ${allowed ? "allow" : "deny"}`, () => {
      const d = explain(policy, principal, action, subject, { catalog });
      assert.equal(d.allowed, allowed, d.reason);
      assert.match(d.rule, rule);
    });
  }

  test("a deny that overlaps a subscription without covering it filters those events", () => {
    const d = explain(policy, CHECKOUT, "subscribe", "customer.>", { catalog });
    assert.equal(d.allowed, true);
    assert.deepEqual(d.filtered, ["customer.checkout.>"]);
  });

  test("nats-server's matching: an allow a.* admits a subscription to a.> and limits it to a.*; a deny a.* refuses it", () => {
    const d = explain(policy, CHECKOUT, "subscribe", "order.fulfillment.>", { catalog });
    assert.equal(d.allowed, true, d.reason);
    assert.equal(isFiltered(d, "order.fulfillment.completed"), false);
    assert.equal(isFiltered(d, "order.fulfillment.completed.extra"), true, "deeper subjects are withheld");
    const denying = parsePolicy(
      `${POLICY}  - principal: ${BOB}\n    subscribe: [order.lifecycle.*]\n`,
      "p.yaml",
    );
    assert.equal(explain(denying, BOB, "subscribe", "order.lifecycle.>").allowed, false);
    assert.equal(
      explain(denying, BOB, "subscribe", "order.>").allowed,
      true,
      "a deny that only overlaps filters",
    );
    assert.equal(natsMatches("a.*", "a.>"), true);
    assert.equal(natsMatches("a.*", "a.b.c"), false);
    assert.equal(natsMatches("a.b", "a.*"), false);
  });

  test("the NATS compiler adds the deny that keeps a.* from delivering a.b.c, and refuses what it cannot express", () => {
    const perms = natsPermissions(policy, { catalog });
    const checkout = perms.find((p) => p.user === CHECKOUT)!;
    assert.ok(checkout.subscribe.deny.includes("order.fulfillment.*.>"), JSON.stringify(checkout));
    const bad = parsePolicy(
      "roles:\n  r:\n    subscribe: [order.fulfillment.*, order.fulfillment.x.>]\nbindings:\n  - principal: p\n    roles: [r]\n",
      "p.yaml",
    );
    assert.throws(
      () => natsPermissions(bad, { catalog }),
      (err: unknown) =>
        isJetkitError(err, "JK_POLICY_NATS_MISMATCH") && /order\.fulfillment\.x\.>/.test(err.message),
    );
  });

  test("patterns and principal globs", () => {
    assert.equal(patternCovers("order.>", "order.a.b"), true);
    assert.equal(patternCovers("order.*", "order.>"), false);
    assert.equal(patternCovers("order.*.x", "order.*.x"), true);
    assert.equal(patternCovers(">", "order"), true);
    assert.equal(patternCovers("order.>", "order"), false);
    assert.equal(principalMatches("spiffe://d/team/*", "spiffe://d/team/a"), true);
    assert.equal(principalMatches("spiffe://d/team/*", "spiffe://d/team/a/b"), false);
    assert.equal(principalMatches("spiffe://d/**", "spiffe://d/team/a/b"), true);
    assert.equal(principalMatches("CN=*,O=jetkit", "CN=bob,O=jetkit"), true);
    assert.equal(principalMatches("CN=bob.x,O=j", "CN=bobax,O=j"), false, "dots are literal");
  });
});

describe("policy validation", () => {
  const invalid: [string, string, RegExp, number?][] = [
    ["roles: [1, 2", "unterminated", /not valid YAML/],
    [
      "roles:\n  r:\n    publish: [order..x]\n",
      "empty token",
      /roles\.r\.publish\[0\]: token "" of "order\.\.x"/,
      3,
    ],
    ["roles:\n  r:\n    publish: [order.>.x]\n", "> not last", /">" may only be the last token/, 3],
    [
      "roles:\n  r:\n    publish: [a]\nbindings:\n  - principal: x\n    roles: [r, nope]\n",
      "unknown role",
      /bindings\[0\]\.roles\[1\]: role "nope" is not defined/,
      6,
    ],
    ["roles: {}\nbindngs: []\n", "typo key", /unknown key "bindngs"/, 2],
    ["deny:\n  - principal: x\n", "empty deny", /needs publish and\/or subscribe/, 2],
    ["roles:\n  r:\n    publish: [a]\nbindings:\n  - roles: [r]\n", "no principal", /needs "principal"/, 5],
  ];
  for (const [text, what, message, line] of invalid) {
    test(`refuses ${what} with a message naming the problem${line ? " and line" : ""}`, () => {
      try {
        parsePolicy(text, "p.yaml");
        assert.fail("accepted an invalid policy");
      } catch (err) {
        assert.ok(isJetkitError(err, "JK_POLICY_INVALID"), String(err));
        assert.match(err.message, message);
        if (line) assert.equal(err.details.line, line, err.message);
      }
    });
  }
});

describe("policy reload", () => {
  let dir: { dir: string; remove: () => Promise<void> };
  let store: PolicyStore;
  let file: string;
  before(async () => {
    dir = await tempDir("policy");
    file = await writePolicy(dir.dir);
    store = new PolicyStore({ file, catalog, logger: silent, debounceMs: 50 });
  });
  after(async () => {
    store?.close();
    await dir?.remove();
  });

  test("a valid change is picked up from the file; an invalid one is refused and the old policy stays", async () => {
    assert.equal(store.decide(BOB, "subscribe", "payment.>").allowed, false);
    await writeFile(file, POLICY.replace("subscribe: [order.>]", "subscribe: [order.>, payment.>]"));
    await eventually(() => store.decide(BOB, "subscribe", "payment.>").allowed, 5000, "reload");
    const loads = store.loads;
    await writeFile(
      file,
      `${POLICY}\n  - principal: x\n    roles: [missing-role]\n`.replace("deny:", "deny_:"),
    );
    await eventually(() => store.lastError !== undefined, 5000, "invalid policy seen");
    assert.equal(store.lastError?.code, "JK_POLICY_INVALID");
    assert.equal(store.loads, loads);
    assert.equal(store.decide(BOB, "subscribe", "payment.>").allowed, true, "previous policy still in force");
  });

  test("a Kubernetes ConfigMap update (atomic ..data symlink swap) is picked up", async () => {
    // the layout kubelet writes: <dir>/..<ts>/policy.yaml, ..data -> ..<ts>, policy.yaml -> ..data/policy.yaml
    const k8s = join(dir.dir, "configmap");
    await mkdir(join(k8s, "..v1"), { recursive: true });
    await writeFile(join(k8s, "..v1", "policy.yaml"), POLICY);
    await symlink("..v1", join(k8s, "..data"));
    await symlink(join("..data", "policy.yaml"), join(k8s, "policy.yaml"));
    const mounted = new PolicyStore({
      file: join(k8s, "policy.yaml"),
      catalog,
      logger: silent,
      debounceMs: 50,
      pollMs: 0,
      sighup: false,
    });
    try {
      assert.equal(mounted.decide(BOB, "subscribe", "payment.>").allowed, false);
      await mkdir(join(k8s, "..v2"));
      await writeFile(
        join(k8s, "..v2", "policy.yaml"),
        POLICY.replace("subscribe: [order.>]", "subscribe: [order.>, payment.>]"),
      );
      await symlink("..v2", join(k8s, "..data_tmp"));
      await rename(join(k8s, "..data_tmp"), join(k8s, "..data"));
      await rm(join(k8s, "..v1"), { recursive: true });
      await eventually(
        () => mounted.decide(BOB, "subscribe", "payment.>").allowed,
        5000,
        "reload after ..data swap",
      );
    } finally {
      mounted.close();
    }
  });

  test("SIGHUP reloads", async () => {
    await writeFile(file, POLICY.replace("subscribe: [order.>]", "subscribe: [order.>, payment.>]"));
    const quiet = new PolicyStore({ file, catalog, logger: silent, watch: false });
    try {
      assert.equal(quiet.decide(BOB, "subscribe", "payment.>").allowed, true);
      await writeFile(file, POLICY);
      const loads = quiet.loads;
      process.kill(process.pid, "SIGHUP");
      await eventually(() => quiet.loads > loads, 5000, "SIGHUP reload");
      assert.equal(quiet.decide(BOB, "subscribe", "payment.>").allowed, false);
    } finally {
      quiet.close();
    }
  });
});
