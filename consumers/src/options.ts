import type { Catalog, EventSpec, EventType } from "@jetkit/contracts";
import { JetkitError } from "@jetkit/contracts";
import type { NatsConnection } from "@nats-io/nats-core";
import type { MeterProvider, TracerProvider } from "@opentelemetry/api";
import type { Logger } from "pino";
import { ConsumerErrorCodes } from "./errors.js";

/** How long the SDK waits before a failed message is delivered again (nak delay). */
export interface BackoffOptions {
  /** Delay after the first failed delivery, in ms. Default: 500. */
  initialMs: number;
  /** Upper bound of any delay, in ms. Default: 30000. */
  maxMs: number;
  /** Each further failed delivery multiplies the delay by this. Default: 2. */
  multiplier: number;
  /** Fraction (0..1) of the delay taken off at random, so failed messages spread out. Default: 0.2. */
  jitter: number;
}

/** The effect records that make a handler's effect happen once (JetStream KV). */
export interface IdempotencyOptions {
  /** KV bucket name. Default: `jetkit-idempotency` (keys are prefixed with the durable name). */
  bucket: string;
  /** How long a record is kept, in ms; a duplicate older than this runs the handler again. Default: 24 h. */
  ttlMs: number;
  /**
   * Replicas of the bucket when the SDK creates it. Default: 3 when connected to a cluster, else
   * 1. An R1 bucket on a cluster stops every consumer that uses it while its one node is down.
   */
  replicas?: number;
}

/**
 * A partitioned consumer group: the durable's work is split into `partitions` by partition key,
 * every partition is owned by one process at a time, and its messages run in stream order there,
 * also across crashes and rebalances (see consumers/README.md, "Partitioned consumer groups").
 */
export interface GroupOptions {
  /** Partitions (the most processes that can share the work). Every member must agree. Default: 16. */
  partitions: number;
  /**
   * Static membership: the member names, each owning a fixed share of the partitions
   * (partition p belongs to `members[p % members.length]`). Instances with the same `member`
   * name are hot standbys of each other. Left out: elastic membership, where every process is a
   * member and the partitions are spread again whenever one joins or leaves.
   */
  members?: readonly string[];
  /** This process's member name (static groups: required, one of `members`). */
  member?: string;
  /**
   * How long a partition stays with an owner that stopped renewing it, in ms; a member that dies
   * hands its partitions over after this. Default: 5000.
   */
  leaseMs: number;
  /** KV bucket of membership, ownership and checkpoints. Default: `jetkit-groups`. */
  bucket: string;
  /** Replicas of the bucket when the SDK creates it. Default: 3 on a cluster, else 1. */
  replicas?: number;
}

/** Where dead letters go. */
export interface DeadLetterOptions {
  /** Stream that captures `dlq.>`. Default: `DLQ`. */
  stream: string;
  /**
   * Watch the JetStream MAX_DELIVERIES advisories of this durable and dead-letter messages whose
   * last delivery the SDK never saw (a process crash). Default: true.
   */
  advisories: boolean;
}

/** An HTTP readiness probe: `GET /healthz` answers 200 when ready, 503 otherwise, with the lag as JSON. */
export interface HealthOptions {
  /** TCP port; 0 picks a free one (see `consumer.healthUrl`). */
  port: number;
  /** Address to listen on. Default: 127.0.0.1. */
  host: string;
}

/** Options of {@link createConsumer}. Only `durable` and one of `events`/`subjects`/handlers are needed. */
export interface ConsumerOptions {
  /** NATS server URL(s). Ignored when `connection` is given. Default: `nats://127.0.0.1:4222`. */
  servers: string | string[];
  /** An open connection to use instead of connecting; the consumer then never closes it. */
  connection?: NatsConnection;
  /** Connection name shown by the server. Default: `jetkit-consumer-<durable>`. */
  name?: string;
  /**
   * Durable consumer name; every process with the same name shares the work (competing consumers).
   * Letters, digits, `-` and `_`.
   */
  durable: string;
  /** Event types to consume; their subjects become the consumer's filter subjects. */
  events?: readonly EventType<unknown>[];
  /** Subjects (wildcards allowed) to consume, instead of or besides `events`. */
  subjects?: readonly string[];
  /** Handlers running at once in this process. Default: 16. */
  concurrency: number;
  /**
   * Messages pulled ahead of the handlers (JetStream `max_messages` of a pull). Keep it small
   * enough that a pulled message is handled within `ackWaitMs`. Default: max(2 × concurrency, 32).
   */
  batch: number;
  /**
   * How long one pull request lives on the server, in ms (`expires` of JetStream pulls; the
   * server's idle heartbeat is derived from it). After a leader change or a network blip the old
   * pull is lost silently; missed heartbeats reveal it and the SDK re-creates the consume loop,
   * so this bounds how long a consumer can stall. Default: 5000 (nats.js's own default is 30000).
   */
  pullExpiresMs: number;
  /** Deliveries of one message before it is dead-lettered (JetStream `max_deliver`). Default: 5. */
  maxDeliver: number;
  /** Nak delays after a handler failure. */
  backoff: Partial<BackoffOptions>;
  /** How long the server waits for an ack before redelivering, in ms (`ack_wait`). Default: 30000. */
  ackWaitMs: number;
  /** Unacknowledged messages allowed across all processes of the durable (`max_ack_pending`). Default: 1000. */
  maxAckPending: number;
  /** Where a new durable starts: every stored message, or only new ones. Default: `all`. */
  deliverPolicy: "all" | "new";
  /** Turn on the idempotency store (true for defaults). Default: off. */
  idempotency?: boolean | Partial<IdempotencyOptions>;
  /**
   * `per-key`: events with the same partition key (ce-partitionkey, else the contract's key field)
   * run one at a time in stream order, different keys in parallel. A failing event is retried in
   * place (holding its key) instead of being nak'd, so a later event of the key never overtakes it.
   */
  ordering?: "per-key";
  /**
   * Partitioned consumer group (true for defaults): per-key order across processes and through
   * crashes. Implies `ordering: "per-key"` and, unless set to false, `idempotency`.
   */
  group?: boolean | Partial<GroupOptions>;
  /** Dead-letter settings. */
  deadLetter?: Partial<DeadLetterOptions>;
  /** Check every event against its contract's rules before the handler (protovalidate). Default: true. */
  validate: boolean;
  /** Optional HTTP readiness probe. */
  health?: Partial<HealthOptions>;
  /** Logger; default: pino at level `info` (or $JETKIT_LOG_LEVEL). */
  logger?: Logger;
  /** Tracer provider; default: the global one from @opentelemetry/api. */
  tracerProvider?: TracerProvider;
  /** Meter provider; default: the global one from @opentelemetry/api. */
  meterProvider?: MeterProvider;
  /** Catalog to resolve events; default: the packaged contracts. */
  catalog?: Catalog;
  /**
   * Where an event of a type the catalog does not know is looked up by its `ce-dataschema`
   * (`jetkit:registry/<version>#<type>`): `new RegistryResolver(nc)` of `@jetkit/cli` fetches each
   * registry version once. Such events go to the `onRegistered` handler instead of the DLQ.
   */
  registry?: RegistryLookup;
}

/** Resolves a `ce-dataschema` to the registered contracts it names (undefined for a URI of another form). */
export interface RegistryLookup {
  resolve(dataschema: string): Promise<{ version: number; catalog: Catalog; spec: EventSpec } | undefined>;
}

/** Options with defaults applied. */
export interface ResolvedOptions
  extends Omit<ConsumerOptions, "backoff" | "idempotency" | "deadLetter" | "health" | "group"> {
  group: GroupOptions | undefined;
  backoff: BackoffOptions;
  idempotency: IdempotencyOptions | undefined;
  deadLetter: DeadLetterOptions;
  health: HealthOptions | undefined;
}

const NAME = /^[A-Za-z0-9_-]{1,200}$/;

function configError(message: string, details: Record<string, unknown> = {}): JetkitError {
  return new JetkitError(ConsumerErrorCodes.CONFIG, message, { details });
}

/** Applies defaults and checks the options; throws `JK_CONSUMER_CONFIG` naming the bad option. */
export function resolveOptions(opts: Partial<ConsumerOptions>): ResolvedOptions {
  if (!opts.durable || !NAME.test(opts.durable)) {
    throw configError(
      `option durable "${opts.durable ?? ""}" is missing or invalid: use letters, digits, - and _ (it names the JetStream durable consumer).`,
      { option: "durable" },
    );
  }
  const concurrency = opts.concurrency ?? 16;
  const positive = (name: string, v: number) => {
    if (!Number.isFinite(v) || v < 1) {
      throw configError(`option ${name} must be a number >= 1, got ${v}.`, { option: name });
    }
  };
  positive("concurrency", concurrency);
  const batch = opts.batch ?? Math.max(2 * concurrency, 32);
  positive("batch", batch);
  const maxDeliver = opts.maxDeliver ?? 5;
  positive("maxDeliver", maxDeliver);
  const pullExpiresMs = opts.pullExpiresMs ?? 5000;
  if (!Number.isFinite(pullExpiresMs) || pullExpiresMs < 1000) {
    throw configError(`option pullExpiresMs must be a number >= 1000 (ms), got ${pullExpiresMs}.`, {
      option: "pullExpiresMs",
    });
  }
  const ackWaitMs = opts.ackWaitMs ?? 30_000;
  if (ackWaitMs < 1000) {
    throw configError(`option ackWaitMs must be at least 1000 ms, got ${ackWaitMs}.`, {
      option: "ackWaitMs",
    });
  }
  const backoff: BackoffOptions = {
    initialMs: opts.backoff?.initialMs ?? 500,
    maxMs: opts.backoff?.maxMs ?? 30_000,
    multiplier: opts.backoff?.multiplier ?? 2,
    jitter: opts.backoff?.jitter ?? 0.2,
  };
  if (backoff.initialMs < 0 || backoff.maxMs < backoff.initialMs || backoff.multiplier < 1) {
    throw configError("option backoff needs 0 <= initialMs <= maxMs and multiplier >= 1.", {
      option: "backoff",
    });
  }
  if (backoff.jitter < 0 || backoff.jitter > 1) {
    throw configError(`option backoff.jitter must be within 0..1, got ${backoff.jitter}.`, {
      option: "backoff.jitter",
    });
  }
  const group = resolveGroup(opts.group);
  if (group && opts.ordering !== undefined && opts.ordering !== "per-key") {
    throw configError(
      `option group needs ordering "per-key" (the default with a group), got "${String(opts.ordering)}".`,
      {
        option: "ordering",
      },
    );
  }
  let idempotency: IdempotencyOptions | undefined;
  // A group replays a dead member's unfinished messages: with effect records they run once.
  const wantIdempotency = opts.idempotency ?? (group ? true : undefined);
  if (wantIdempotency) {
    const o = wantIdempotency === true ? {} : wantIdempotency;
    idempotency = {
      bucket: o.bucket ?? "jetkit-idempotency",
      ttlMs: o.ttlMs ?? 24 * 3600_000,
      ...(o.replicas !== undefined ? { replicas: o.replicas } : {}),
    };
    if (!NAME.test(idempotency.bucket)) {
      throw configError(`option idempotency.bucket "${idempotency.bucket}" is not a valid KV bucket name.`, {
        option: "idempotency.bucket",
      });
    }
  }
  if (opts.ordering !== undefined && opts.ordering !== "per-key") {
    throw configError(`option ordering must be "per-key" or left out, got "${String(opts.ordering)}".`, {
      option: "ordering",
    });
  }
  const resolved: ResolvedOptions = {
    servers: opts.servers ?? "nats://127.0.0.1:4222",
    durable: opts.durable,
    concurrency,
    batch,
    pullExpiresMs,
    maxDeliver,
    ackWaitMs,
    maxAckPending: opts.maxAckPending ?? 1000,
    deliverPolicy: opts.deliverPolicy ?? "all",
    backoff,
    idempotency,
    group,
    deadLetter: { stream: opts.deadLetter?.stream ?? "DLQ", advisories: opts.deadLetter?.advisories ?? true },
    validate: opts.validate ?? true,
    health: opts.health ? { port: opts.health.port ?? 0, host: opts.health.host ?? "127.0.0.1" } : undefined,
  };
  if (opts.connection) resolved.connection = opts.connection;
  if (opts.name) resolved.name = opts.name;
  if (opts.events) resolved.events = opts.events;
  if (opts.subjects) resolved.subjects = opts.subjects;
  if (opts.ordering) resolved.ordering = opts.ordering;
  if (group) resolved.ordering = "per-key";
  if (opts.logger) resolved.logger = opts.logger;
  if (opts.tracerProvider) resolved.tracerProvider = opts.tracerProvider;
  if (opts.meterProvider) resolved.meterProvider = opts.meterProvider;
  if (opts.catalog) resolved.catalog = opts.catalog;
  if (opts.registry) resolved.registry = opts.registry;
  return resolved;
}

const MEMBER = /^[A-Za-z0-9_-]{1,100}$/;

function resolveGroup(g: ConsumerOptions["group"]): GroupOptions | undefined {
  if (!g) return undefined;
  const o = g === true ? {} : g;
  const partitions = o.partitions ?? 16;
  if (!Number.isInteger(partitions) || partitions < 1 || partitions > 1024) {
    throw configError(`option group.partitions must be an integer within 1..1024, got ${partitions}.`, {
      option: "group.partitions",
    });
  }
  const leaseMs = o.leaseMs ?? 5000;
  if (!Number.isFinite(leaseMs) || leaseMs < 1000) {
    throw configError(`option group.leaseMs must be at least 1000 ms, got ${leaseMs}.`, {
      option: "group.leaseMs",
    });
  }
  const bucket = o.bucket ?? "jetkit-groups";
  if (!NAME.test(bucket)) {
    throw configError(`option group.bucket "${bucket}" is not a valid KV bucket name.`, {
      option: "group.bucket",
    });
  }
  if (o.member !== undefined && !MEMBER.test(o.member)) {
    throw configError(
      `option group.member "${o.member}" is invalid: use letters, digits, - and _ (up to 100).`,
      {
        option: "group.member",
      },
    );
  }
  const resolved: GroupOptions = { partitions, leaseMs, bucket };
  if (o.replicas !== undefined) resolved.replicas = o.replicas;
  if (o.member !== undefined) resolved.member = o.member;
  if (o.members !== undefined) {
    const members = [...o.members];
    const bad = members.find((m) => !MEMBER.test(m));
    if (members.length === 0 || bad !== undefined || new Set(members).size !== members.length) {
      throw configError(
        "option group.members must list distinct member names (letters, digits, - and _) for a static group, or be left out for an elastic one.",
        { option: "group.members" },
      );
    }
    if (members.length > partitions) {
      throw configError(
        `option group.members lists ${members.length} members for ${partitions} partitions: some would own nothing. Raise group.partitions or list fewer members.`,
        { option: "group.members" },
      );
    }
    if (o.member === undefined || !members.includes(o.member)) {
      throw configError(
        `option group.member must name this process's member in a static group (one of ${members.join(", ")}), got ${o.member ?? "nothing"}.`,
        { option: "group.member" },
      );
    }
    resolved.members = members;
  }
  return resolved;
}
