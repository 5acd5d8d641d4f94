// Quickstart: a dev PKI, a policy, the gateway, and one event published over mTLS.
import { readFileSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:https";
import { join } from "node:path";
import { pino } from "pino";
import { initPki, issueClientCert, startGateway } from "../src/index.js";

export async function quickstart(dir: string, natsUrl: string): Promise<{ status: number; body: string }> {
  // 1. CA, server certificate (127.0.0.1, localhost), CRL, and a client certificate (an X.509-SVID).
  const pki = await initPki(join(dir, "pki"));
  const client = await issueClientCert(pki.dir, {
    name: "fulfillment",
    spiffeId: "spiffe://jetkit.dev/fulfillment",
  });

  // 2. Who may do what.
  const policyFile = join(dir, "policy.yaml");
  writeFileSync(
    policyFile,
    `roles:
  fulfillment:
    publish: [order.fulfillment.*]
    subscribe: [order.>]
bindings:
  - principal: spiffe://jetkit.dev/fulfillment
    roles: [fulfillment]
`,
  );

  // 3. The gateway.
  const gateway = await startGateway({
    listen: { host: "127.0.0.1", port: 0 },
    admin: { host: "127.0.0.1", port: 0 }, // plain HTTP: /healthz, /readyz, /metrics
    tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.caCert, crl: pki.crl },
    policy: { file: policyFile },
    nats: { servers: natsUrl },
    logger: pino({ level: "warn" }),
  });

  // 4. A client publishes an event as protobuf JSON with its certificate.
  try {
    const agent = new Agent({
      ca: readFileSync(pki.caCert),
      cert: readFileSync(client.cert),
      key: readFileSync(client.key),
    });
    const event = {
      orderId: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
      checkoutId: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c",
      shipments: [{ shipmentId: "s1", carrier: "CARRIER_DHL", trackingNumber: "T1", skus: ["sku-1"] }],
      completedAt: new Date().toISOString(),
    };
    return await new Promise((resolve, reject) => {
      const req = request(
        `${gateway.url}/v1/events/order.fulfillment.completed`,
        {
          method: "POST",
          agent,
          headers: { "content-type": "application/json", "idempotency-key": "order-1-done" },
        },
        (res) => {
          let body = "";
          res.on("data", (c) => {
            body += c;
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on("error", reject);
      req.end(JSON.stringify(event));
    });
  } finally {
    await gateway.close();
  }
}
