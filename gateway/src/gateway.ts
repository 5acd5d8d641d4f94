import { randomBytes, X509Certificate } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import { type Catalog, ContractValidator, getCatalog } from "@jetkit/contracts";
import { createProducer, type Producer } from "@jetkit/producers";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection, type NodeConnectionOptions } from "@nats-io/transport-node";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { type Logger, pino } from "pino";
import { Auditor } from "./audit.js";
import { coalescingPublisher } from "./coalesce.js";
import { GatewayErrorCodes, gatewayError } from "./errors.js";
import { buildApp } from "./http/app.js";
import { DEFAULT_LIMITS, type GatewayContext, type Limits } from "./http/context.js";
import { buildAdminApp } from "./http/health.js";
import { type Identity, identityOf, type PrincipalSource } from "./identity.js";
import { Metrics } from "./metrics.js";
import { type AuthCallout, startAuthCallout } from "./nats-auth/callout.js";
import { PolicyStore } from "./policy/store.js";
import { RateLimiter, SharedRateLimiter } from "./rate-limit.js";
import { secureContextOptions, type TlsFiles } from "./tls/material.js";
import { TlsReloader } from "./tls/reloader.js";

/** Everything `startGateway` needs. Paths may be relative to the working directory. */
export interface GatewayConfig {
  /** Where to listen. Default: 127.0.0.1, port 8443 (0 picks a free port). */
  listen?: { host?: string; port?: number };
  /**
   * The admin listener (plain HTTP: /healthz, /readyz, /metrics). Default: 127.0.0.1, port 9464
   * (0 picks a free port); `false` turns it off. Keep it on loopback or a private network.
   */
  admin?: { host?: string; port?: number } | false;
  /** Server certificate, key, client CA bundle(s) and CRLs; `watch` reloads them on change (default true). */
  tls: TlsFiles & { watch?: boolean };
  /** How the principal is read from the client certificate. Default: `spiffe-or-dn`, any trust domain. */
  identity?: { source?: PrincipalSource; trustDomains?: string[] };
  /** The RBAC policy file (YAML); `dryRun` logs and audits what would be denied but allows it. */
  policy: { file: string; dryRun?: boolean; watch?: boolean };
  /** The NATS connection of the gateway (its own credentials, not the clients'). */
  nats: { servers: string | string[]; name?: string; tls?: NodeConnectionOptions["tls"] };
  /**
   * Serve NATS auth callout from this process (nats-server >= 2.10), so nats-server decides every
   * direct client connection with this gateway's identity rules and policy (see the README).
   */
  authCallout?: {
    /** The connection of the callout service: a user listed in the server's auth_callout `users`. */
    nats: { servers: string | string[]; user?: string; pass?: string; tls?: NodeConnectionOptions["tls"] };
    /** Seed (`SA...`) of the account nkey the server's auth_callout `issuer` names. */
    issuerSeed: string;
    /** Seed (`SX...`) of the curve key named as the server's auth_callout `xkey` (encrypted requests and answers). */
    xkeySeed?: string;
    /** The account authorised clients are placed in. */
    account: string;
    /** Principals given a user without limits (e.g. the gateway's own certificate). */
    trusted?: string[];
    /** Durables each principal may use directly. */
    durables?: Record<string, string[]>;
  };
  /** Request limits. */
  limits?: Partial<Limits>;
  /**
   * Rate limits shared by every replica on the same NATS (a token bucket per principal in a KV
   * bucket, leased a few tokens at a time); without it each replica limits on its own.
   */
  sharedRateLimit?: { bucket?: string; leaseTokens?: number; leaseMs?: number };
  /** Key that signs ack tokens; share it between gateway replicas. Default: random per process. */
  ackTokenSecret?: string;
  /** Debounce of file-change reloads (policy, TLS), ms. Default: 200. */
  reloadDebounceMs?: number;
  /** Parent logger. Default: pino at level info. */
  logger?: Logger;
  /** The contract catalog. Default: the packaged one. */
  catalog?: Catalog;
}

/** A running gateway. */
export interface Gateway {
  /** `https://host:port` */
  readonly url: string;
  readonly port: number;
  readonly app: FastifyInstance;
  /** `http://host:port` of the admin listener; undefined when it is off. */
  readonly adminUrl: string | undefined;
  readonly adminApp: FastifyInstance | undefined;
  readonly policy: PolicyStore;
  readonly tls: TlsReloader;
  readonly metrics: Metrics;
  readonly producer: Producer;
  /** The auth callout service, when `authCallout` is configured. */
  readonly authCallout: AuthCallout | undefined;
  /** The rate limiter in force: a `RateLimiter` per replica, or a `SharedRateLimiter`. */
  readonly rateLimiter: GatewayContext["rateLimiter"];
  /** Re-reads the TLS files now (also done on change and SIGHUP). */
  reloadTls(): boolean;
  /** Re-reads the policy now (also done on change and SIGHUP). */
  reloadPolicy(): boolean;
  /** Stops accepting, closes connections, flushes audit events, closes NATS. */
  close(): Promise<void>;
}

/** The identity of the verified client certificate of `req`'s TLS socket. */
export function certificateIdentity(opts: {
  source: PrincipalSource;
  trustDomains?: readonly string[];
}): (req: FastifyRequest) => Identity {
  // A connection's peer certificate cannot change (TLS 1.3 has no renegotiation): read it once
  // per connection, not on every keep-alive request.
  const bySocket = new WeakMap<TLSSocket, Identity | Error>();
  // and once per certificate, not per connection: reconnecting clients present the same DER,
  // whose identity (under fixed identity options) cannot change; the handshake already checked
  // its validity and revocation. Bounded: cleared when full.
  const byFingerprint = new Map<string, Identity | Error>();
  return (req) => {
    const socket = req.raw.socket as TLSSocket;
    const known = bySocket.get(socket);
    if (known instanceof Error) throw known;
    if (known) return known;
    try {
      const id = readIdentity(socket);
      bySocket.set(socket, id);
      return id;
    } catch (err) {
      bySocket.set(socket, err as Error);
      throw err;
    }
  };

  function readIdentity(socket: TLSSocket): Identity {
    // rejectUnauthorized makes this unreachable for real sockets; kept as defence in depth.
    if (typeof socket.getPeerX509Certificate !== "function" || !socket.authorized) {
      throw gatewayError(
        GatewayErrorCodes.UNAUTHENTICATED,
        "a verified client certificate is required; connect with a certificate signed by the gateway's CA.",
      );
    }
    const cert = socket.getPeerX509Certificate();
    if (!(cert instanceof X509Certificate)) {
      throw gatewayError(GatewayErrorCodes.UNAUTHENTICATED, "no client certificate was presented.");
    }
    const fp = cert.fingerprint256;
    const known = byFingerprint.get(fp);
    if (known instanceof Error) throw known;
    if (known) return known;
    if (byFingerprint.size >= 10_000) byFingerprint.clear();
    try {
      const id = identityOf(
        cert,
        opts.trustDomains ? { source: opts.source, trustDomains: opts.trustDomains } : opts,
      );
      byFingerprint.set(fp, id);
      return id;
    } catch (err) {
      byFingerprint.set(fp, err as Error);
      throw err;
    }
  }
}

/**
 * @internal The routes' shared state. Exported for tests, which swap `authenticate` to drive the
 * app in-process with `inject`.
 */
export async function createContext(
  config: GatewayConfig,
  producer: Producer,
  policy: PolicyStore,
  metrics: Metrics,
  log: Logger,
  catalog: Catalog,
  limits: Limits,
): Promise<{ ctx: GatewayContext; auditor: Auditor }> {
  const nc = producer.connection;
  // the events and audit records of the requests read in one I/O phase leave in one socket write
  const coalesced = coalescingPublisher(producer);
  const auditor = new Auditor(catalog, log, coalesced, metrics);
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const rate = { perSecond: limits.ratePerSecond, burst: limits.rateBurst };
  let rateLimiter: GatewayContext["rateLimiter"] = new RateLimiter(rate);
  if (config.sharedRateLimit && limits.ratePerSecond > 0) {
    const shared = new SharedRateLimiter({
      ...rate,
      ...config.sharedRateLimit,
      js,
      jsm,
      logger: log.child({ component: "rate-limit" }),
    });
    await shared.ensureBucket().catch((err: unknown) => {
      throw gatewayError(
        GatewayErrorCodes.CONFIG,
        `sharedRateLimit: cannot create or open the KV bucket ${config.sharedRateLimit?.bucket ?? "jetkit-gateway-rate"}: ${(err as Error).message}. Give the gateway's NATS user JetStream rights on it, or create it.`,
        {},
        err,
      );
    });
    rateLimiter = shared;
  }
  let connected = true;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") connected = false;
      else if (s.type === "reconnect") connected = true;
    }
  })();
  const ctx: GatewayContext = {
    catalog,
    validator: new ContractValidator(catalog),
    decide: (p, a, s) => policy.decide(p, a, s),
    publisher: coalesced,
    nc,
    js,
    jsm,
    auditor,
    metrics,
    limits,
    rateLimiter,
    dryRun: config.policy.dryRun ?? false,
    log,
    authenticate: certificateIdentity({
      source: config.identity?.source ?? "spiffe-or-dn",
      ...(config.identity?.trustDomains ? { trustDomains: config.identity.trustDomains } : {}),
    }),
    ackSecret: config.ackTokenSecret ? Buffer.from(config.ackTokenSecret) : randomBytes(32),
    natsReady: () => !nc.isClosed() && connected,
  };
  return { ctx, auditor };
}

/** Starts the mTLS gateway: HTTPS (TLS 1.3, client certificates required), policy, audit, NATS. */
export async function startGateway(config: GatewayConfig): Promise<Gateway> {
  const log = config.logger ?? pino({ level: "info" });
  const catalog = config.catalog ?? getCatalog();
  const limits: Limits = { ...DEFAULT_LIMITS, ...config.limits };
  if (config.limits?.ratePerSecond !== undefined && config.limits.rateBurst === undefined) {
    limits.rateBurst = Math.max(1, limits.ratePerSecond * 2);
  }
  const metrics = new Metrics();
  const debounceMs = config.reloadDebounceMs ?? 200;
  const policy = new PolicyStore({
    onReload: (result) => metrics.policyReload(result),
    file: config.policy.file,
    catalog,
    logger: log.child({ component: "policy" }),
    watch: config.policy.watch ?? true,
    debounceMs,
  });
  const tlsOptions = secureContextOptions(config.tls);
  let producer: Producer;
  try {
    producer = await createProducer({
      servers: config.nats.servers,
      name: config.nats.name ?? "gateway",
      logger: log,
      catalog,
      // the gateway validates every event itself, to answer with the field that is wrong
      validate: false,
      ...(config.nats.tls ? { tls: config.nats.tls } : {}),
    });
  } catch (err) {
    policy.close();
    throw err;
  }
  const { ctx, auditor } = await createContext(config, producer, policy, metrics, log, catalog, limits);
  const app = buildApp(ctx, {
    https: { ...tlsOptions, requestCert: true, rejectUnauthorized: true },
    // keep-alive clients (the benchmark, SSE) must not be cut by the default 72 s
    keepAliveTimeout: 65_000,
  });
  const tls = new TlsReloader(
    app.server as unknown as import("node:tls").Server,
    config.tls,
    log,
    metrics,
    config.tls.watch ?? true,
    debounceMs,
  );
  metrics.certificateExpiry("server", () => tls.serverNotAfter);
  const onHup = () => tls.reload();
  process.on("SIGHUP", onHup);
  const adminApp = config.admin === false ? undefined : buildAdminApp(ctx);
  let adminUrl: string | undefined;
  let calloutNc: NatsConnection | undefined;
  let authCallout: AuthCallout | undefined;
  try {
    const ac = config.authCallout;
    if (ac) {
      calloutNc = await connect({
        servers: ac.nats.servers,
        name: "gateway-auth-callout",
        ...(ac.nats.user ? { user: ac.nats.user } : {}),
        ...(ac.nats.pass ? { pass: ac.nats.pass } : {}),
        ...(ac.nats.tls ? { tls: ac.nats.tls } : {}),
      });
      authCallout = startAuthCallout({
        nc: calloutNc,
        issuerSeed: ac.issuerSeed,
        ...(ac.xkeySeed ? { xkeySeed: ac.xkeySeed } : {}),
        account: ac.account,
        policy: () => policy.policy,
        catalog,
        identity: {
          source: config.identity?.source ?? "spiffe-or-dn",
          ...(config.identity?.trustDomains ? { trustDomains: config.identity.trustDomains } : {}),
        },
        trusted: (p) => ac.trusted?.includes(p) ?? false,
        durables: (p) => ac.durables?.[p] ?? [],
        logger: log,
      });
      await calloutNc.flush();
    }
    await app.listen({ host: config.listen?.host ?? "127.0.0.1", port: config.listen?.port ?? 8443 });
    if (adminApp && config.admin !== false) {
      const adminHost = config.admin?.host ?? "127.0.0.1";
      await adminApp.listen({ host: adminHost, port: config.admin?.port ?? 9464 });
      const adminPort = (adminApp.server.address() as AddressInfo).port;
      adminUrl = `http://${adminHost.includes(":") ? `[${adminHost}]` : adminHost}:${adminPort}`;
    }
  } catch (err) {
    process.off("SIGHUP", onHup);
    tls.close();
    policy.close();
    await app.close();
    await adminApp?.close();
    await authCallout?.stop();
    await calloutNc?.close();
    await producer.close();
    await metrics.close();
    throw err;
  }
  const port = (app.server.address() as AddressInfo).port;
  const host = config.listen?.host ?? "127.0.0.1";
  log.info(
    { port, host, admin: adminUrl, dry_run: ctx.dryRun, policy_file: config.policy.file },
    "gateway listening",
  );
  return {
    url: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    port,
    app,
    adminUrl,
    adminApp,
    policy,
    tls,
    metrics,
    producer,
    authCallout,
    rateLimiter: ctx.rateLimiter,
    reloadTls: () => tls.reload(),
    reloadPolicy: () => policy.reload(),
    async close() {
      process.off("SIGHUP", onHup);
      tls.close();
      policy.close();
      app.server.closeAllConnections?.();
      await app.close();
      await adminApp?.close();
      await authCallout?.stop();
      await calloutNc?.close();
      await auditor.flush();
      await producer.close();
      await metrics.close();
    },
  };
}
