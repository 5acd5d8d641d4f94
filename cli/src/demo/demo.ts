import { randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { createConsumer, listDeadLetters, replayDeadLetters } from "@jetkit/consumers";
import { runFulfillment, runNotifications } from "@jetkit/consumers/services";
import { eventHeaders, getCatalog, uuidv7 } from "@jetkit/contracts";
import { CustomerCheckoutInitiated } from "@jetkit/contracts/gen/shop/customer/v1/events";
import { CancellationReason, OrderLifecycleCancelled } from "@jetkit/contracts/gen/shop/order/v1/events";
import { applyStreams } from "@jetkit/contracts/streams";
import { initPki, issueClientCert, startGateway } from "@jetkit/gateway";
import { type NatsCluster, type NatsServer, startCluster, startServer } from "@jetkit/launcher";
import { createProducer } from "@jetkit/producers";
import { randomCheckout, runCheckout } from "@jetkit/producers/services";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers as natsHeaders } from "@nats-io/transport-node";
import { pino } from "pino";
import { type CommandDef, ExitCode, type RunContext } from "../command.js";
import { jetkitHome } from "../config.js";
import { postEvent } from "./gateway-client.js";
import { type BusSnapshot, rates, snapshot } from "./stats.js";
import { installDemoTracing } from "./tracing.js";

const DEMO_POLICY = `# Demo RBAC policy: the partner shop may publish checkouts; analytics may only read.
version: 1
roles:
  storefront:
    publish: [customer.checkout.initiated]
    subscribe: [order.fulfillment.>]
  reader:
    subscribe: [">"]
bindings:
  - principal: spiffe://jetkit.dev/partner-shop
    roles: [storefront]
  - principal: spiffe://jetkit.dev/analytics
    roles: [reader]
deny:
  - principal: spiffe://jetkit.dev/analytics
    subscribe: [customer.>]
    reason: analytics never sees customer data
`;

/** A line-oriented screen: step lines scroll, the live dashboard redraws below them on a TTY. */
class Screen {
  #dashboard: string[] = [];
  #drawn = 0;
  constructor(private readonly ctx: RunContext) {}
  #clear(): void {
    if (this.ctx.tty && this.#drawn > 0) this.ctx.stdout.write(`\u001b[${this.#drawn}A\u001b[0J`);
    this.#drawn = 0;
  }
  #draw(): void {
    if (!this.ctx.tty) return;
    this.ctx.stdout.write(`${this.#dashboard.join("\n")}\n`);
    this.#drawn = this.#dashboard.length;
  }
  line(text: string): void {
    this.#clear();
    this.ctx.stdout.write(`${text}\n`);
    this.#draw();
  }
  dashboard(lines: string[]): void {
    this.#clear();
    this.#dashboard = lines;
    this.#draw();
  }
  done(): void {
    this.#clear();
    this.#dashboard = [];
  }
}

interface StepRecord {
  kind: "step";
  step: string;
  ok: boolean;
  [k: string]: unknown;
}

async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (signal.aborted) throw new Error("interrupted");
    const v = await fn();
    if (v !== undefined) return v;
    await delay(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

const demo: CommandDef = {
  path: ["demo"],
  summary:
    "The whole platform on this machine: NATS, streams, gateway, services, live stats, and a guided tour",
  description:
    "Starts the pinned nats-server (a 3-node cluster with --cluster), provisions the contracts' streams, creates a dev PKI and starts the mTLS gateway with a demo policy, runs the example producers and consumers, and shows live events/s per subject, consumer lag, redeliveries and dead letters. It then walks through: an allowed and an RBAC-denied publish through the gateway, a poison message isolated in the DLQ, a failed event dead-lettered and replayed once its dependency is back, and (with --cluster) a broker killed while the flow recovers. Ctrl-C or the end stops everything it started.",
  options: [
    {
      name: "cluster",
      type: "boolean",
      description: "Run a 3-node JetStream cluster (R3 streams) and kill a broker during the tour",
    },
    {
      name: "duration",
      type: "string",
      value: "SECONDS",
      description: "Total run time (default 60; the tour runs first)",
    },
    { name: "rate", type: "string", value: "N", description: "Checkouts per second (default 20)" },
    {
      name: "short",
      type: "boolean",
      description: "Quick run for CI: short warm-up, stop right after the tour",
    },
  ],
  examples: [
    { command: "jetkit demo", description: "one node, about a minute" },
    {
      command: "jetkit demo --cluster --duration 120",
      description: "a 3-node cluster, with a broker killed mid-flow",
    },
    {
      command: "jetkit demo --short --json",
      description: "what CI runs: JSON lines for every step and stats",
    },
  ],
  exitCodes: [{ code: 1, meaning: "a step of the tour did not behave as promised" }],
  async run(ctx) {
    const cluster = ctx.opts.cluster === true;
    const short = ctx.opts.short === true;
    const rate = ctx.opts.rate ? Number(ctx.opts.rate) : 20;
    const duration = (ctx.opts.duration ? Number(ctx.opts.duration) : short ? 0 : 60) * 1000;
    const c = ctx.color;
    const screen = new Screen(ctx);
    const steps: StepRecord[] = [];
    const emit = (rec: Record<string, unknown>) => {
      if (ctx.json) ctx.stdout.write(`${JSON.stringify(rec)}\n`);
    };
    const say = (text: string) => (ctx.json ? undefined : screen.line(text));
    const explain = (text: string) => say(`\n${c.bold("▸")} ${text}`);
    const result = (rec: StepRecord, text: string) => {
      steps.push(rec);
      emit(rec);
      say(`  ${rec.ok ? c.green("✓") : c.red("✗")} ${text}`);
    };

    const home = join(jetkitHome(), "demo");
    await rm(home, { recursive: true, force: true });
    mkdirSync(home, { recursive: true });
    const logFile = join(home, "demo.log");
    const logger = pino({ level: "info" }, pino.destination({ dest: logFile, sync: true }));
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    ctx.signal.addEventListener("abort", onAbort, { once: true });
    const cleanups: { what: string; fn: () => Promise<unknown> }[] = [];
    let server: NatsServer | undefined;
    let natsCluster: NatsCluster | undefined;
    let ticker: NodeJS.Timeout | undefined;
    const started = Date.now();
    // Like any app using the SDKs: install an OpenTelemetry tracer provider (kept in memory here).
    const tracing = installDemoTracing();

    try {
      // 1. NATS
      explain(
        cluster
          ? "Starting a local 3-node JetStream cluster (the project's pinned nats-server)"
          : "Starting a local nats-server with JetStream (the project's pinned binary)",
      );
      if (cluster) natsCluster = await startCluster({ size: 3 });
      else server = await startServer();
      const servers = natsCluster ? natsCluster.urls : [server!.url];
      cleanups.push({
        what: "nats",
        fn: async () => (natsCluster ? natsCluster.dispose() : server!.dispose()),
      });
      const pids = (natsCluster ? natsCluster.nodes : [server!]).map((n) => n.pid);
      result({ kind: "step", step: "nats", ok: true, servers, pids }, `NATS up at ${servers.join(", ")}`);
      const nc = await connect({ servers, name: "jetkit-demo", maxReconnectAttempts: -1 });
      cleanups.push({ what: "demo connection", fn: () => nc.close() });
      const jsm = await jetstreamManager(nc);
      const js = jetstream(nc);

      // 2. Streams
      explain("Provisioning one stream per domain from the contracts (streams as code, idempotent)");
      const applied = await applyStreams(nc, getCatalog(), cluster ? { replicas: 3 } : {});
      const streamNames = applied.plan.entries.map((e) => e.name);
      result(
        { kind: "step", step: "streams", ok: true, streams: streamNames },
        `created ${streamNames.join(", ")}${cluster ? " (R3)" : ""}`,
      );

      // 3. PKI + gateway
      explain("Creating a dev PKI and starting the mTLS gateway (TLS 1.3, client certificates, RBAC, audit)");
      const pki = await initPki(join(home, "pki"));
      const shop = await issueClientCert(pki.dir, {
        name: "partner-shop",
        spiffeId: "spiffe://jetkit.dev/partner-shop",
      });
      const analytics = await issueClientCert(pki.dir, {
        name: "analytics",
        spiffeId: "spiffe://jetkit.dev/analytics",
      });
      const policyFile = join(home, "policy.yaml");
      writeFileSync(policyFile, DEMO_POLICY);
      const gateway = await startGateway({
        listen: { host: "127.0.0.1", port: 0 },
        admin: { port: 0 },
        tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.caCert, crl: pki.crl },
        policy: { file: policyFile },
        nats: { servers },
        logger: logger.child({ service: "gateway" }),
      });
      cleanups.push({ what: "gateway", fn: () => gateway.close() });
      result(
        { kind: "step", step: "gateway", ok: true, url: gateway.url },
        `gateway at ${gateway.url}, policy ${policyFile}`,
      );

      // 4. Services
      explain(
        `Starting the example services: checkout (${rate}/s) -> fulfillment -> notifications, and a refunds service`,
      );
      // The producer stops first, then the consumers drain before they stop.
      const producerStop = new AbortController();
      stop.signal.addEventListener("abort", () => producerStop.abort(), { once: true });
      let acked = 0;
      let failed = 0;
      const producing = runCheckout({
        servers,
        ratePerSec: rate,
        keys: 200,
        distribution: "zipf",
        durationMs: 24 * 3600_000,
        signal: producerStop.signal,
        logger: logger.child({ service: "checkout" }),
        onPublished: () => void acked++,
        onFailed: () => void failed++,
      });
      cleanups.push({ what: "checkout", fn: () => producing.catch(() => undefined) });
      const fulfillment = await runFulfillment({ servers, logger: logger.child({ service: "fulfillment" }) });
      cleanups.push({ what: "fulfillment", fn: () => fulfillment.stop() });
      const notifications = await runNotifications({
        servers,
        logger: logger.child({ service: "notifications" }),
      });
      cleanups.push({ what: "notifications", fn: () => notifications.stop() });
      let providerUp = false;
      const refunded: { orderId: string; replayOf: string | undefined }[] = [];
      const refunds = await createConsumer({
        servers,
        durable: "refunds",
        events: [OrderLifecycleCancelled],
        maxDeliver: 3,
        backoff: { initialMs: 200, maxMs: 800 },
        logger: logger.child({ service: "refunds" }),
      });
      refunds.on(OrderLifecycleCancelled, async (event, hctx) => {
        if (!providerUp) throw new Error("payment provider unavailable: connect ECONNREFUSED (demo outage)");
        refunded.push({ orderId: event.orderId, replayOf: hctx.replayOf });
      });
      await refunds.start();
      cleanups.push({ what: "refunds", fn: () => refunds.stop({ timeoutMs: 3000 }) });
      const orders = await createProducer({
        servers,
        name: "orders",
        logger: logger.child({ service: "orders" }),
      });
      cleanups.push({ what: "orders producer", fn: () => orders.close() });
      result({ kind: "step", step: "services", ok: true }, "services running; logs go to " + logFile);

      // Live dashboard
      const watched = streamNames.filter((s) => s !== "AUDIT");
      let prev: BusSnapshot = await snapshot(jsm, watched).catch(() => ({
        at: Date.now(),
        subjects: {},
        consumers: [],
        deadLetters: 0,
      }));
      let last: BusSnapshot = prev;
      let tick = 0;
      const render = async () => {
        const next = await snapshot(jsm, watched).catch(() => undefined);
        // A snapshot still in flight when the run ends must not redraw the dashboard.
        if (!next || ticker === undefined) return;
        const r = rates(prev, next);
        prev = next;
        last = next;
        tick++;
        const lag = next.consumers.map((k) => `${k.durable} ${k.pending + k.ackPending}`).join(", ");
        const redelivered = next.consumers.reduce((n, k) => n + k.redelivered, 0);
        emit({
          kind: "stats",
          elapsedMs: Date.now() - started,
          ratePerSubject: r,
          totals: next.subjects,
          lag: next.consumers,
          deadLetters: next.deadLetters,
          acked,
          failed,
        });
        if (ctx.json) return;
        const rows = Object.keys(next.subjects)
          .sort()
          .map(
            (s) =>
              `  ${s.padEnd(30)}${r[s]!.toFixed(1).padStart(7)}/s ${String(next.subjects[s]).padStart(8)} stored`,
          );
        const summary = `  lag: ${lag || "-"} | redeliveries ${redelivered} | dead letters ${next.deadLetters}`;
        if (ctx.tty)
          screen.dashboard([
            c.dim(
              `── live (${Math.round((Date.now() - started) / 1000)}s) ──────────────────────────────────────────`,
            ),
            ...rows,
            summary,
          ]);
        else if (tick % 5 === 1)
          screen.line(
            `[${Math.round((Date.now() - started) / 1000)}s] ${Object.keys(r)
              .sort()
              .map((s) => `${s} ${r[s]!.toFixed(1)}/s`)
              .join(", ")} |${summary}`,
          );
      };
      ticker = setInterval(() => void render(), 1000);
      await delay(short ? 2500 : 5000, undefined, { signal: stop.signal }).catch(() => undefined);

      // 5. Tour
      explain(
        "A partner shop publishes a checkout through the gateway with its client certificate (allowed by its role)",
      );
      const event = CustomerCheckoutInitiated.toJSON(randomCheckout(randomUUID()));
      const allowed = await postEvent(
        `${gateway.url}/v1/events/customer.checkout.initiated`,
        { cert: shop.cert, key: shop.key, ca: pki.caCert },
        event,
        { "idempotency-key": `demo-${uuidv7()}` },
      );
      result(
        {
          kind: "step",
          step: "gateway-allowed",
          ok: allowed.status === 201 && typeof allowed.body.seq === "number",
          status: allowed.status,
          response: allowed.body,
        },
        `HTTP ${allowed.status}: stored in ${String(allowed.body.stream)} at seq ${String(allowed.body.seq)}`,
      );

      explain(
        "Tracing: the SDKs carry W3C trace context in the headers, so one trace runs from the gateway through every service",
      );
      const allowedId = String(allowed.body.msgId ?? "");
      const traceOf = () =>
        tracing.spans().find((sp) => sp.messageId === allowedId && sp.name.startsWith("send "))?.traceId;
      const chain = await waitFor(
        "the checkout's trace to reach notifications",
        async () => {
          const id = traceOf();
          const spans = id ? tracing.spans().filter((sp) => sp.traceId === id) : [];
          return spans.some((sp) => sp.name === "process order.fulfillment.completed") ? spans : undefined;
        },
        20_000,
        stop.signal,
      ).catch(() => [] as ReturnType<typeof tracing.spans>);
      chain.sort((a, b) => a.start - b.start);
      const names = chain.map((sp) => sp.name);
      result(
        {
          kind: "step",
          step: "trace",
          ok:
            names.includes("process customer.checkout.initiated") &&
            names.includes("process order.fulfillment.completed"),
          traceId: chain[0]?.traceId,
          spans: names,
        },
        chain.length ? `trace ${chain[0]!.traceId}: ${names.join(" -> ")}` : "no trace found",
      );
      tracing.clear();

      explain(
        "Analytics tries to publish the same event: its role may only read, so RBAC denies it (default deny) and nothing is stored",
      );
      const denied = await postEvent(
        `${gateway.url}/v1/events/customer.checkout.initiated`,
        { cert: analytics.cert, key: analytics.key, ca: pki.caCert },
        event,
      );
      const deniedCode = (denied.body.error as { code?: string } | undefined)?.code;
      result(
        {
          kind: "step",
          step: "gateway-denied",
          ok: denied.status === 403,
          status: denied.status,
          code: deniedCode,
        },
        `HTTP ${denied.status} ${deniedCode ?? ""}: ${(denied.body.error as { message?: string } | undefined)?.message ?? ""}`,
      );

      explain(
        "A poison message (bytes that are not an OrderFulfillmentCompleted) arrives: notifications dead-letters it at once, the flow goes on",
      );
      const poisonId = uuidv7();
      const h = natsHeaders();
      for (const [k, v] of eventHeaders({
        id: poisonId,
        type: "shop.order.v1.OrderFulfillmentCompleted",
        source: "/jetkit/demo-poison",
        time: new Date(),
      }))
        h.set(k, v);
      await js.publish("order.fulfillment.completed", Uint8Array.of(0x0a, 0xff, 0xff, 0x01), {
        headers: h,
        msgID: poisonId,
      });
      const poison = await waitFor(
        "the poison message in the DLQ",
        async () =>
          (await listDeadLetters({ connection: nc, subject: "order.fulfillment.completed" })).find(
            (d) => d.eventId === poisonId,
          ),
        20_000,
        stop.signal,
      );
      result(
        {
          kind: "step",
          step: "poison-dead-lettered",
          ok: poison.failureClass === "undecodable",
          dlqSeq: poison.seq,
          failureClass: poison.failureClass,
        },
        `DLQ#${poison.seq} ${poison.originalSubject} [${poison.failureClass}] by ${poison.consumer}: ${poison.reason}`,
      );

      explain(
        "An order is cancelled while the payment provider is down: refunds retries with growing delays, then dead-letters it with the last error",
      );
      const cancelled = await orders.publish(OrderLifecycleCancelled, {
        orderId: randomUUID(),
        reason: CancellationReason.CANCELLATION_REASON_CUSTOMER_REQUEST,
        note: "customer changed their mind",
        refund: { currencyCode: "EUR", units: 49, nanos: 990000000 },
        cancelledAt: new Date(),
      });
      const failedRefund = await waitFor(
        "the failed refund in the DLQ",
        async () =>
          (await listDeadLetters({ connection: nc, subject: "order.lifecycle.cancelled" })).find(
            (d) => d.eventId === cancelled.msgId,
          ),
        30_000,
        stop.signal,
      );
      result(
        {
          kind: "step",
          step: "refund-dead-lettered",
          ok: failedRefund.failureClass === "handler_exhausted",
          dlqSeq: failedRefund.seq,
          deliveries: failedRefund.deliveries,
        },
        `DLQ#${failedRefund.seq} [${failedRefund.failureClass}] after ${failedRefund.deliveries} deliveries: ${failedRefund.reason}`,
      );

      explain(
        "The provider is back: the operator replays the dead letter (jetkit dlq replay), and refunds handles it",
      );
      providerUp = true;
      const [replayed] = await replayDeadLetters({ connection: nc, seqs: [failedRefund.seq] });
      const handled = await waitFor(
        "the replayed refund",
        async () => refunded.find((r) => r.replayOf !== undefined),
        20_000,
        stop.signal,
      );
      result(
        {
          kind: "step",
          step: "dead-letter-replayed",
          ok: handled.replayOf === `DLQ:${failedRefund.seq}`,
          replayOf: handled.replayOf,
          seq: replayed?.seq,
        },
        `replayed to ${replayed?.subject} seq ${replayed?.seq}; refunds handled it (replay of ${handled.replayOf})`,
      );

      if (natsCluster) {
        explain(
          "A broker dies (kill -9 of the ORDER stream's leader): clients fail over, a new leader is elected, events keep flowing",
        );
        const leader = await natsCluster.streamLeader("ORDER");
        const victim = natsCluster.node(leader ?? "n1");
        const before = (await jsm.streams.info("ORDER")).state.last_seq;
        const killedAt = Date.now();
        await victim.kill();
        const recovered = await waitFor(
          "ORDER to grow again",
          async () => {
            const info = await jsm.streams.info("ORDER").catch(() => undefined);
            return info && info.state.last_seq >= before + 10 ? info : undefined;
          },
          60_000,
          stop.signal,
        );
        const recoveryMs = Date.now() - killedAt;
        const newLeader = await natsCluster.streamLeader("ORDER");
        result(
          { kind: "step", step: "broker-killed", ok: true, killed: victim.name, newLeader, recoveryMs },
          `killed ${victim.name}; ORDER led by ${newLeader ?? "?"}; flow recovered in ${(recoveryMs / 1000).toFixed(1)} s (seq ${before} -> ${recovered.state.last_seq})`,
        );
        explain("The node restarts and catches up");
        await victim.start();
        await natsCluster.waitReady();
        result(
          { kind: "step", step: "broker-restarted", ok: true, node: victim.name },
          `${victim.name} is back in the cluster`,
        );
      }

      const remaining = duration - (Date.now() - started);
      if (remaining > 0 && !stop.signal.aborted) {
        explain(`Running until ${Math.round(duration / 1000)} s (Ctrl-C stops everything now)`);
        await delay(remaining, undefined, { signal: stop.signal }).catch(() => undefined);
      }

      // 6. Wrap up: stop producing, let the consumers drain, report.
      explain("Stopping the producer and letting the consumers drain");
      producerStop.abort();
      await producing.catch(() => undefined);
      await waitFor(
        "consumers to drain",
        async () => {
          const s = await snapshot(jsm, watched).catch(() => undefined);
          if (!s) return undefined;
          last = s;
          return s.consumers.every((k) => k.pending === 0 && k.ackPending === 0) ? s : undefined;
        },
        30_000,
        new AbortController().signal,
      ).catch(() => undefined);
      clearInterval(ticker);
      ticker = undefined;
      screen.done();
      const notified = notifications.handled();
      const lagLeft = last.consumers.reduce((n, k) => n + k.pending + k.ackPending, 0);
      const summary = {
        kind: "summary",
        checkoutsAcked: acked,
        checkoutsFailed: failed,
        fulfilled: fulfillment.handled(),
        notified,
        deadLetters: last.deadLetters,
        lagLeft,
        stored: last.subjects,
        ok: steps.every((s) => s.ok),
      };
      emit(summary);
      say(
        `\n${c.bold("Summary")}: ${acked} checkouts acked (${failed} failed), ${summary.fulfilled} fulfilled, ${notified} notifications, ${last.deadLetters} dead letters, lag left ${lagLeft}`,
      );
      return summary.ok ? ExitCode.OK : ExitCode.FAILED;
    } finally {
      if (ticker) clearInterval(ticker);
      stop.abort();
      ctx.signal.removeEventListener("abort", onAbort);
      for (const cl of cleanups.reverse()) {
        await cl.fn().catch((err: unknown) => logger.warn({ err, what: cl.what }, "cleanup failed"));
      }
      const leftover = [...(natsCluster?.nodes ?? []), ...(server ? [server] : [])].filter((n) => n.running);
      emit({ kind: "stopped", ok: leftover.length === 0, processes: leftover.map((n) => n.pid) });
      say(
        leftover.length === 0
          ? `${c.dim("everything the demo started is stopped; logs: ")}${logFile}`
          : c.red(`still running: ${leftover.map((n) => n.pid).join(", ")}`),
      );
    }
  },
};

export const demoCommands = [demo];
