import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { initPki, issueClientCert } from "@jetkit/gateway";
import { type NatsServer, startServer } from "@jetkit/testing";
import { connect } from "@nats-io/transport-node";
import { parse, stringify } from "yaml";
import { ok } from "./process.js";

const main = new URL("../src/main.js", import.meta.url).pathname;

const POLICY = `version: 1
roles:
  reader:
    subscribe: [order.>]
bindings:
  - principal: "CN=bob,OU=ops,O=jetkit"
    roles: [reader]
`;

describe("jetkit gateway callout-config: the printed config runs nats-server with the gateway's callout", () => {
  const dir = mkdtempSync(join(tmpdir(), "jetkit-callout-config-"));
  let direct: NatsServer;
  let backing: NatsServer;
  let gateway: ChildProcess | undefined;
  let stdout = "";
  const cert = (name: string) => ({
    caFile: join(dir, "pki/ca.crt"),
    certFile: join(dir, `pki/clients/${name}.crt`),
    keyFile: join(dir, `pki/clients/${name}.key`),
  });

  before(async () => {
    const pki = await initPki(join(dir, "pki"));
    await issueClientCert(pki.dir, { name: "gateway", dn: { O: "jetkit", CN: "gateway" } });
    await issueClientCert(pki.dir, { name: "bob", dn: { O: "jetkit", OU: "ops", CN: "bob" } });
    await issueClientCert(pki.dir, { name: "nobody", dn: { O: "jetkit", CN: "nobody" } });
    const r = await ok(process.execPath, [
      main,
      "gateway",
      "callout-config",
      "--tls-cert",
      pki.serverCert,
      "--tls-key",
      pki.serverKey,
      "--tls-ca",
      pki.caCert,
      "--client-cert",
      cert("gateway").certFile,
      "--client-key",
      cert("gateway").keyFile,
      "--server-out",
      join(dir, "auth.conf"),
      "--gateway-out",
      join(dir, "callout.yaml"),
    ]);
    stdout = r.stdout;
    direct = await startServer({ config: readFileSync(join(dir, "auth.conf"), "utf8") });
    backing = await startServer({});
    // gateway.yaml: the generated authCallout section, only its server URL set to this test's port
    const section = parse(readFileSync(join(dir, "callout.yaml"), "utf8")) as {
      authCallout: { nats: { servers: string } };
    };
    section.authCallout.nats.servers = direct.url;
    writeFileSync(join(dir, "policy.yaml"), POLICY);
    writeFileSync(
      join(dir, "gateway.yaml"),
      stringify({
        listen: { host: "127.0.0.1", port: 0 },
        admin: false,
        tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.caCert },
        policy: { file: "policy.yaml" },
        nats: { servers: backing.url },
        ...section,
      }),
    );
    const child = spawn(process.execPath, [main, "gateway", "start", "-f", join(dir, "gateway.yaml")], {
      env: { ...process.env, NO_COLOR: "1", JETKIT_LOG_LEVEL: "warn" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    gateway = child;
    let err = "";
    await new Promise<void>((resolve, reject) => {
      child.stderr!.on("data", (c: Buffer) => {
        err += c.toString();
        if (err.includes("gateway listening")) resolve();
      });
      child.once("exit", (code) => reject(new Error(`gateway start exited ${code}: ${err}`)));
    });
  });

  after(async () => {
    if (gateway && gateway.exitCode === null) {
      const exited = new Promise((resolve) => gateway!.once("exit", resolve));
      gateway.kill("SIGINT");
      await exited;
    }
    await direct?.stop();
    await backing?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("prints the key names and keeps the seeds in the 0600 gateway section", () => {
    assert.match(stdout, /^# issuer A[A-Z2-7]{55}$/m);
    assert.match(stdout, /^# xkey {3}X[A-Z2-7]{55}$/m);
    assert.doesNotMatch(stdout, /SA[A-Z2-7]{56}|SX[A-Z2-7]{56}/, "no seed on stdout when written to files");
    assert.equal(statSync(join(dir, "callout.yaml")).mode & 0o777, 0o600);
    const server = readFileSync(join(dir, "auth.conf"), "utf8");
    assert.match(server, /auth_callout \{[^}]*xkey: X/s, "the requests are encrypted");
  });

  test("a client certificate with a role connects with its policy's permissions; one without a role is refused", async () => {
    const nc = await connect({ servers: direct.url, tls: cert("bob") });
    try {
      const violations: string[] = [];
      let denied!: () => void;
      const publishDenied = new Promise<void>((resolve) => {
        denied = resolve;
      });
      void (async () => {
        for await (const s of nc.status()) {
          if (s.type !== "error") continue;
          violations.push(String(s.error));
          if (/Permissions Violation for Publish to "order/i.test(String(s.error))) denied();
        }
      })();
      nc.subscribe("order.fulfillment.completed");
      await nc.flush();
      assert.deepEqual(violations, [], "the policy's subscribe is granted");
      // the policy grants bob no publish: nats-server refuses it
      nc.publish("order.fulfillment.completed", "x");
      await publishDenied;
    } finally {
      await nc.close();
    }
    await assert.rejects(
      connect({ servers: direct.url, tls: cert("nobody"), reconnect: false }),
      /authorization/i,
    );
  });
});
